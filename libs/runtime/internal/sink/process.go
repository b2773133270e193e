package sink

import (
	"context"
	"fmt"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// consumerSpan is built once (it would allocate per message).
var consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)

// processor is a sink's process stage: it runs the connector on a batch under the reconnect gate
// until every record is written or disposed of (see dispose), and hands each outcome to settle.
type processor[R any] struct {
	recs      Records[R]
	host      *Host
	policy    disposal
	holds     *holds
	settle    *settler
	dlq       *deadLetters // nil: no DLQ_TOPIC
	nackDelay time.Duration
	tracer    trace.Tracer
	tracing   bool     // an exporter records spans: start one per record
	spanNames sync.Map // partition → span name
}

func newProcessor[R any](cfg *Config, h *Host, recs Records[R]) *processor[R] {
	return &processor[R]{recs: recs, host: h, nackDelay: cfg.NackDelay, tracer: telemetry.Tracer(), tracing: telemetry.Tracing(),
		policy: disposal{retry: cfg.Retry, exhausted: cfg.Exhausted, dlq: cfg.DLQTopic != "", ackTimeout: cfg.AckTimeout}}
}

// probe looks, while records keep failing since failedAt, for other records getting written: the
// sign of poison rather than an outage.
type probe func(ctx context.Context, failedAt int64, failing []delivery) bool

// handle processes one batch (records of one partition, in offset order) to completion: every
// record ends written (its ack queued), dead-lettered, nacked, or, on a stop, left unacked while the
// error is returned. Acks are sent by the settler, so the next batch starts while they are in
// flight.
func (p *processor[R]) handle(ctx context.Context, items []delivery, others probe) error {
	st := p.begin(ctx, items)
	defer p.end(st)
	failedAt := time.Now().UnixNano()
	held := false // paused for an outage or holding poison: retry without limit
	for attempt := 1; ; attempt++ {
		var errs []error
		gen := p.host.Gate.Run(func() { errs = p.process(ctx, st) })
		again, last, lost, err := p.sortOut(ctx, st, errs)
		if err != nil || len(again) == 0 {
			if err == nil {
				p.host.Gate.OK()
			}
			return err
		}
		st.pending = again
		if ctx.Err() != nil { // shutdown timeout: leave unacked, they are redelivered
			p.host.Metrics.Dropped(len(again))
			return nil
		}
		if lost != nil {
			// The connection is gone, not the records: close intake, reconnect, then repeat them
			// all without spending a retry.
			p.holds.outage(lost)
			if err := p.host.Gate.Reconnect(ctx, gen, lost); err != nil {
				if p.recs.Class(err) == class.Fatal || !host.Stopped(err) {
					return err
				}
				p.host.Metrics.Dropped(len(again))
				return nil
			}
			continue
		}
		f := failure{class: class.Retryable, attempt: attempt, elapsed: time.Since(time.Unix(0, failedAt)), held: held}
		if held, err = p.exhausted(ctx, st, f, failedAt, last, others); err != nil || len(st.pending) == 0 {
			return err
		}
		wait := p.policy.retry.Forever().Delay(attempt, last)
		p.host.Metrics.Retried(len(st.pending))
		p.host.Log.Warn("processing failed; retrying", "records", len(st.pending), "attempt", attempt, "wait", wait, "err", last)
		// After SIGTERM no new attempt: the records stay unacked and Danube redelivers them.
		if backoff.Sleep(p.stopping(ctx), wait) != nil {
			p.host.Metrics.Dropped(len(st.pending))
			return nil
		}
	}
}

// sortOut queues the written records' acks and disposes of the failed ones that retrying cannot
// help; it returns those to try again, with the last retryable error and the last lost connection.
func (p *processor[R]) sortOut(ctx context.Context, st *batchState[R], errs []error) (again []int, last, lost, err error) {
	for j, i := range st.pending {
		e := errs[j]
		if e == nil {
			p.written(st.items[i])
			continue
		}
		st.fail(i, e)
		c := p.recs.Class(e)
		p.host.Metrics.Failed(1, c.String())
		if c == class.Retryable {
			again, last = append(again, i), e
			continue
		}
		switch d := st.items[i]; p.policy.dispose(failure{class: c}) {
		case actReconnect:
			again, lost = append(again, i), e
		case actDeadLetter:
			p.dlq.send(ctx, d, e)
		case actNackInvalid:
			p.host.Log.Error("invalid message nacked: without DLQ_TOPIC it goes back to Danube, which stops the subscription "+
				"once it used up its delivery attempts; set DLQ_TOPIC to dead-letter such messages", "message", d.msg.ID(), "err", e)
			p.settle.nack(d, p.nackDelay, e.Error())
		default: // actStop
			if c == class.Fatal {
				p.host.Metrics.Dropped(len(st.pending) - j)
				return nil, nil, nil, fmt.Errorf("runtime: fatal error on message %s: %w", st.items[i].msg.ID(), e)
			}
			return nil, nil, nil, fmt.Errorf("runtime: %s offset %d (RETRY_EXHAUSTED=stop): %w", d.msg.Topic, d.msg.Offset, e)
		}
	}
	return again, last, lost, nil
}

// exhausted applies dispose to the records still failing after attempt f.attempt: retry them,
// pause intake for an outage, or dispose of each by RETRY_EXHAUSTED. It leaves in st.pending the
// records to retry and reports whether they are now held (retried without limit).
func (p *processor[R]) exhausted(ctx context.Context, st *batchState[R], f failure, failedAt int64, last error, others probe) (held bool, err error) {
	act := p.policy.dispose(f)
	if act == actProbe {
		f.evidence = evidenceOutage
		if p.holds.writtenSince(failedAt) || others(ctx, failedAt, st.failing()) {
			f.evidence = evidencePoison
		}
		act = p.policy.dispose(f)
	}
	cause := fmt.Errorf("retries exhausted after %d attempts: %w", f.attempt, last)
	switch act {
	case actRetry:
		return f.held, nil
	case actPause:
		p.holds.outage(last)
		return true, nil
	case actStop:
		d := st.items[st.pending[0]]
		return false, fmt.Errorf("runtime: %s offset %d (RETRY_EXHAUSTED=stop): %w", d.msg.Topic, d.msg.Offset, cause)
	case actHold:
		for _, i := range st.pending {
			p.holds.hold(st.items[i].msg.ID(), last)
		}
		return true, nil
	}
	for _, i := range st.pending {
		if act == actDeadLetter {
			p.dlq.send(ctx, st.items[i], cause)
		} else {
			p.settle.nack(st.items[i], p.nackDelay, cause.Error())
		}
	}
	st.pending = nil
	return false, nil
}

// written queues the ack of a record the connector wrote. The record's payload is dropped: an ack
// needs only the message's identity, and a batch's payloads would otherwise stay in memory until
// its last ack is queued, while the next batch fills (10 MiB for 10,000 rows of 1 KiB).
func (p *processor[R]) written(d delivery) {
	d.msg.Payload = nil
	p.settle.ack(d) // first: a record of a closed consumer is remembered before holds reopens intake
	p.holds.written(d.msg)
}

// othersWritten is the probe of a sink whose records are processed concurrently: it gives the
// other calls RETRY_BACKOFF_MS to write one.
func (p *processor[R]) othersWritten(ctx context.Context, failedAt int64, _ []delivery) bool {
	if backoff.Sleep(ctx, max(p.policy.retry.Base, 10*time.Millisecond)) != nil {
		return false
	}
	return p.holds.writtenSince(failedAt)
}

// stopping returns the context that ends on SIGTERM, or ctx where there is none.
func (p *processor[R]) stopping(ctx context.Context) context.Context {
	if p.host.Stop == nil {
		return ctx
	}
	return p.host.Stop
}

// process runs the connector on st's pending records and returns one result per pending record.
func (p *processor[R]) process(ctx context.Context, st *batchState[R]) []error {
	leave := p.host.Busy.Enter()
	defer leave()
	errs := st.errs[:len(st.pending)]
	clear(errs)
	sub := st.recs
	if len(st.pending) != len(st.recs) {
		sub = make([]*R, len(st.pending))
		for j, i := range st.pending {
			sub[j] = st.recs[i]
		}
	}
	p.recs.Process(ctx, sub, errs)
	return errs
}

// processOne runs the connector on one record out of turn (a canary), under the gate.
func (p *processor[R]) processOne(ctx context.Context, d delivery) error {
	st := p.begin(ctx, []delivery{d})
	defer p.endSpans(st)
	var errs []error
	p.host.Gate.Run(func() { errs = p.process(ctx, st) })
	return errs[0]
}

// begin builds a batch's records, each carrying the producer's trace (and a span when tracing).
func (p *processor[R]) begin(ctx context.Context, items []delivery) *batchState[R] {
	st := newBatchState[R](items)
	for i, d := range items {
		rctx := telemetry.Extract(ctx, d.msg.Attributes) // the producer's trace, when it sent one
		if p.tracing {
			rctx, st.spans[i] = p.tracer.Start(rctx, p.spanName(d.msg.Topic), consumerSpan)
		}
		p.recs.Init(rctx, &st.slab[i], d.msg)
		st.recs[i] = &st.slab[i]
		st.pending[i] = i
	}
	return st
}

// end ends the batch's spans and records its size and duration.
func (p *processor[R]) end(st *batchState[R]) {
	p.endSpans(st)
	p.host.Metrics.Batch(len(st.items), time.Since(st.start).Seconds())
}

func (p *processor[R]) endSpans(st *batchState[R]) {
	for _, s := range st.spans {
		if s != nil {
			s.End()
		}
	}
}

// spanName returns "process <partition>", built once per partition.
func (p *processor[R]) spanName(partition string) string {
	if v, ok := p.spanNames.Load(partition); ok {
		return v.(string)
	}
	name := "process " + partition
	p.spanNames.Store(partition, name)
	return name
}

// batchState is a batch's working memory, in one allocation; a batch of one (every record of a
// streaming sink) uses the inline arrays.
type batchState[R any] struct {
	items   []delivery
	start   time.Time
	slab    []R
	recs    []*R
	spans   []trace.Span
	pending []int // indexes of the records not yet written or disposed of
	errs    []error

	slab1    [1]R
	recs1    [1]*R
	spans1   [1]trace.Span
	pending1 [1]int
	errs1    [1]error
}

func newBatchState[R any](items []delivery) *batchState[R] {
	st := &batchState[R]{items: items, start: time.Now()}
	if n := len(items); n != 1 {
		st.slab, st.recs, st.spans = make([]R, n), make([]*R, n), make([]trace.Span, n)
		st.pending, st.errs = make([]int, n), make([]error, n)
		return st
	}
	st.slab, st.recs, st.spans, st.pending, st.errs = st.slab1[:], st.recs1[:], st.spans1[:], st.pending1[:], st.errs1[:]
	return st
}

// fail records err on record i's span.
func (st *batchState[R]) fail(i int, err error) {
	if s := st.spans[i]; s != nil {
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	}
}

// failing returns the pending records.
func (st *batchState[R]) failing() []delivery {
	out := make([]delivery, len(st.pending))
	for j, i := range st.pending {
		out[j] = st.items[i]
	}
	return out
}
