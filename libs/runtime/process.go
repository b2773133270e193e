package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Span options built once (each would allocate per message).
var (
	consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)
	producerSpan = trace.WithSpanKind(trace.SpanKindProducer)
)

// processor is a sink's process stage: it runs the connector on a batch under the reconnect gate
// until every record is written or disposed of (see dispose), and hands each outcome to settle.
type processor struct {
	conn      SinkConnector
	batcher   BatchSinkConnector // nil: the connector writes one record at a time
	gate      *gate
	busy      *liveness
	env       *env
	policy    disposal
	holds     *holds
	settle    *settler
	dlq       *deadLetters // nil: no DLQ_TOPIC
	nackDelay time.Duration
	tracer    trace.Tracer
	tracing   bool            // an exporter records spans: start one per record
	stop      context.Context // ends on SIGTERM: no retry starts after it
	spanNames sync.Map        // partition → span name
}

// probe looks, while records keep failing since failedAt, for other records getting written: the
// sign of poison rather than an outage.
type probe func(ctx context.Context, failedAt int64, failing []delivery) bool

// handle processes one batch (records of one partition, in offset order) to completion: every
// record ends written (its ack queued), dead-lettered, nacked, or, on a stop, left unacked while the
// error is returned. Acks are sent by the settler, so the next batch starts while they are in
// flight.
func (p *processor) handle(ctx context.Context, items []delivery, others probe) error {
	st := p.begin(ctx, items)
	defer p.end(st)
	failedAt := time.Now().UnixNano()
	held := false // paused for an outage or holding poison: retry without limit
	for attempt := 1; ; attempt++ {
		var errs []error
		gen := p.gate.run(func() { errs = p.process(ctx, st) })
		again, last, lost, err := p.sortOut(ctx, st, errs)
		if err != nil || len(again) == 0 {
			if err == nil {
				p.gate.ok()
			}
			return err
		}
		st.pending = again
		if ctx.Err() != nil { // shutdown timeout: leave unacked, they are redelivered
			p.env.metrics.Dropped(len(again))
			return nil
		}
		if lost != nil {
			// The connection is gone, not the records: close intake, reconnect, then repeat them
			// all without spending a retry.
			p.holds.outage(lost)
			if err := p.gate.reconnect(ctx, gen, lost); err != nil {
				if ClassOf(err) == ClassFatal || !stopped(err) {
					return err
				}
				p.env.metrics.Dropped(len(again))
				return nil
			}
			continue
		}
		f := failure{class: ClassRetryable, attempt: attempt, elapsed: time.Since(time.Unix(0, failedAt)), held: held}
		if held, err = p.exhausted(ctx, st, f, failedAt, last, others); err != nil || len(st.pending) == 0 {
			return err
		}
		wait := p.policy.retry.Forever().Delay(attempt, last)
		p.env.metrics.Retried(len(st.pending))
		p.env.log.Warn("processing failed; retrying", "records", len(st.pending), "attempt", attempt, "wait", wait, "err", last)
		// After SIGTERM no new attempt: the records stay unacked and Danube redelivers them.
		if backoff.Sleep(p.stopping(ctx), wait) != nil {
			p.env.metrics.Dropped(len(st.pending))
			return nil
		}
	}
}

// sortOut queues the written records' acks and disposes of the failed ones that retrying cannot
// help; it returns those to try again, with the last retryable error and the last lost connection.
func (p *processor) sortOut(ctx context.Context, st *batchState, errs []error) (again []int, last, lost, err error) {
	for j, i := range st.pending {
		e := errs[j]
		if e == nil {
			p.written(st.items[i])
			continue
		}
		st.fail(i, e)
		class := ClassOf(e)
		p.env.metrics.Failed(1, class.String())
		if class == ClassRetryable {
			again, last = append(again, i), e
			continue
		}
		switch d := st.items[i]; p.policy.dispose(failure{class: class}) {
		case actReconnect:
			again, lost = append(again, i), e
		case actDeadLetter:
			p.dlq.send(ctx, d, e)
		case actNackInvalid:
			p.env.log.Error("invalid message nacked: without DLQ_TOPIC it goes back to Danube, which stops the subscription "+
				"once it used up its delivery attempts; set DLQ_TOPIC to dead-letter such messages", "message", messageID(d.msg), "err", e)
			p.settle.nack(d, p.nackDelay, e.Error())
		default: // actStop
			if class == ClassFatal {
				p.env.metrics.Dropped(len(st.pending) - j)
				return nil, nil, nil, fmt.Errorf("runtime: fatal error on message %s: %w", st.recs[i].MessageID(), e)
			}
			return nil, nil, nil, fmt.Errorf("runtime: %s offset %d (RETRY_EXHAUSTED=stop): %w", d.msg.Topic, d.msg.Offset, e)
		}
	}
	return again, last, lost, nil
}

// exhausted applies dispose to the records still failing after attempt f.attempt: retry them,
// pause intake for an outage, or dispose of each by RETRY_EXHAUSTED. It leaves in st.pending the
// records to retry and reports whether they are now held (retried without limit).
func (p *processor) exhausted(ctx context.Context, st *batchState, f failure, failedAt int64, last error, others probe) (held bool, err error) {
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
			p.holds.hold(st.recs[i].MessageID(), last)
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
func (p *processor) written(d delivery) {
	d.msg.Payload = nil
	p.holds.written(d.msg)
	p.settle.ack(d)
}

// othersWritten is the probe of a sink whose records are processed concurrently: it gives the
// other calls RETRY_BACKOFF_MS to write one.
func (p *processor) othersWritten(ctx context.Context, failedAt int64, _ []delivery) bool {
	if backoff.Sleep(ctx, max(p.policy.retry.Base, 10*time.Millisecond)) != nil {
		return false
	}
	return p.holds.writtenSince(failedAt)
}

// stopping returns the context that ends on SIGTERM, or ctx where there is none.
func (p *processor) stopping(ctx context.Context) context.Context {
	if p.stop == nil {
		return ctx
	}
	return p.stop
}

// process runs the connector on st's pending records and returns one result per pending record.
func (p *processor) process(ctx context.Context, st *batchState) []error {
	done := p.busy.enter()
	defer done()
	errs := st.errs[:len(st.pending)]
	clear(errs)
	if p.batcher == nil {
		for j, i := range st.pending {
			errs[j] = p.conn.Process(st.recs[i].Context(), st.recs[i])
			if errs[j] != nil && ClassOf(errs[j]) == ClassFatal {
				for k := j + 1; k < len(st.pending); k++ {
					errs[k] = errs[j]
				}
				break
			}
		}
		return errs
	}
	sub := st.recs
	if len(st.pending) != len(st.recs) {
		sub = make([]*SinkRecord, len(st.pending))
		for j, i := range st.pending {
			sub[j] = st.recs[i]
		}
	}
	err := p.batcher.ProcessBatch(ctx, sub)
	var be *BatchError
	switch {
	case err == nil:
	case errors.As(err, &be) && len(be.Errs) == len(sub):
		copy(errs, be.Errs)
	default:
		if be != nil {
			err = Fatal(fmt.Errorf("ProcessBatch returned %d results for %d records: %w", len(be.Errs), len(sub), err))
		}
		for j := range errs {
			errs[j] = err
		}
	}
	return errs
}

// processOne runs the connector on one record out of turn (a canary), under the gate.
func (p *processor) processOne(ctx context.Context, d delivery) error {
	rec := NewSinkRecord(d.msg)
	rec.ctx = telemetry.Extract(ctx, d.msg.Attributes)
	var err error
	p.gate.run(func() {
		leave := p.busy.enter()
		defer leave()
		if p.batcher == nil {
			err = p.conn.Process(rec.Context(), rec)
			return
		}
		err = p.batcher.ProcessBatch(ctx, []*SinkRecord{rec})
	})
	return err
}

// begin builds a batch's records, each carrying the producer's trace (and a span when tracing).
func (p *processor) begin(ctx context.Context, items []delivery) *batchState {
	st := newBatchState(items)
	for i, d := range items {
		rc := &st.slab[i]
		rc.Message, rc.Partition = d.msg, d.msg.Topic
		rc.ctx = telemetry.Extract(ctx, d.msg.Attributes)
		if p.tracing {
			rc.ctx, st.spans[i] = p.tracer.Start(rc.ctx, p.spanName(d.msg.Topic), consumerSpan)
		}
		st.recs[i] = rc
		st.pending[i] = i
	}
	return st
}

// end ends the batch's spans and records its size and duration.
func (p *processor) end(st *batchState) {
	for _, s := range st.spans {
		if s != nil {
			s.End()
		}
	}
	p.env.metrics.Batch(len(st.items), time.Since(st.start).Seconds())
}

// spanName returns "process <partition>", built once per partition.
func (p *processor) spanName(partition string) string {
	if v, ok := p.spanNames.Load(partition); ok {
		return v.(string)
	}
	name := "process " + partition
	p.spanNames.Store(partition, name)
	return name
}

// batchState is a batch's working memory, in one allocation; a batch of one (every record of a
// streaming sink) uses the inline arrays.
type batchState struct {
	items   []delivery
	start   time.Time
	slab    []SinkRecord
	recs    []*SinkRecord
	spans   []trace.Span
	pending []int // indexes of the records not yet written or disposed of
	errs    []error

	slab1    [1]SinkRecord
	recs1    [1]*SinkRecord
	spans1   [1]trace.Span
	pending1 [1]int
	errs1    [1]error
}

func newBatchState(items []delivery) *batchState {
	st := &batchState{items: items, start: time.Now()}
	if n := len(items); n != 1 {
		st.slab, st.recs, st.spans = make([]SinkRecord, n), make([]*SinkRecord, n), make([]trace.Span, n)
		st.pending, st.errs = make([]int, n), make([]error, n)
		return st
	}
	st.slab, st.recs, st.spans, st.pending, st.errs = st.slab1[:], st.recs1[:], st.spans1[:], st.pending1[:], st.errs1[:]
	return st
}

// fail records err on record i's span.
func (st *batchState) fail(i int, err error) {
	if s := st.spans[i]; s != nil {
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	}
}

// failing returns the pending records.
func (st *batchState) failing() []delivery {
	out := make([]delivery, len(st.pending))
	for j, i := range st.pending {
		out[j] = st.items[i]
	}
	return out
}
