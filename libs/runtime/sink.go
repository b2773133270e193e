package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/batch"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Dead-letter attributes added to the original ones (the broker's own DLQ uses the same names).
const (
	AttrOriginalTopic        = "x-original-topic"
	AttrOriginalSubscription = "x-original-subscription"
	AttrOriginalOffset       = "x-original-topic-offset"
	AttrFailureReason        = "x-failure-reason"
	AttrConnector            = "x-connector"
)

// Span options built once (each would allocate per message).
var (
	consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)
	producerSpan = trace.WithSpanKind(trace.SpanKindProducer)
)

// acker is what a sink needs from the consumer that delivered a message (*danube.Consumer).
type acker interface {
	Ack(ctx context.Context, m *danube.Message) error
	Nack(ctx context.Context, m *danube.Message, delay time.Duration, reason string) error
}

// delivery is a message and the consumer that must ack it.
type delivery struct {
	cons acker
	msg  *danube.Message
}

type sinkRunner struct {
	cfg       *SinkConfig
	conn      SinkConnector
	batcher   BatchSinkConnector // nil when conn only has Process
	env       *env
	policy    retry.Policy
	dlq       *danube.Producer
	tracer    trace.Tracer
	settle    *settler
	busy      *liveness
	gate      *gate
	tracing   bool     // an exporter records spans: start one per record
	spanNames sync.Map // partition → span name
	in        *intake
	lastOK    atomic.Int64    // unix nanoseconds of the last record written
	streaming bool            // records go to concurrent Process calls (stream), not batches (loop)
	stop      context.Context // ends on SIGTERM: no retry starts after it
	parked    []delivery      // loop only: canaries that failed, processed before new intake
}

// RunSink runs conn until ctx ends (graceful: stop intake, flush batches, ack, within
// SHUTDOWN_TIMEOUT_MS; returns nil) or a fatal error (returns it; nothing unprocessed is acked).
// Every record is acked only after conn reported it written, dead-lettered or — by RETRY_EXHAUSTED
// policy — nacked.
func RunSink(ctx context.Context, cfg *SinkConfig, conn SinkConnector, opts ...Option) (err error) {
	if ctx.Err() != nil {
		return nil
	}
	if conn == nil {
		return errors.New("runtime: RunSink needs a connector, got nil")
	}
	e, err := newEnv(&cfg.Common, "sink", opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	r := &sinkRunner{cfg: cfg, conn: conn, env: e, policy: cfg.Retry(), tracer: telemetry.Tracer(), busy: newLiveness(cfg.LivenessTimeout.D()),
		tracing: telemetry.Tracing()}
	r.batcher, _ = conn.(BatchSinkConnector)
	e.live(r.busy.Check)

	// work outlives ctx by the shutdown timeout so that batches in progress can finish and be acked.
	work, cancelWork := workContext(ctx, cfg.ShutdownTimeout.D())
	defer cancelWork()
	g, shutdown, err := e.start(ctx, work, cfg.ConnectorName, conn, r.busy, r.policy)
	if err != nil {
		if stopped(err) && ctx.Err() != nil { // stopped while waiting for the external system
			return nil
		}
		return err
	}
	r.gate = g
	defer func() { err = errors.Join(err, shutdown()) }()
	r.stop = ctx
	// A background reconnect that fails fatally stops the sink like a fatal record does.
	run, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	g.fatal = func(err error) { stopRun(err) }
	defer func() {
		if cause := context.Cause(run); err == nil && ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
	}()

	if cfg.DLQTopic != "" {
		r.dlq, err = r.dlqProducer(ctx)
		if err != nil {
			if stopped(err) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		defer r.dlq.Close()
	}

	intakeCtx, stopIntake := context.WithCancel(run)
	defer stopIntake()
	// Buffered so that the consumers fill the next batch while the loop processes this one.
	merged := make(chan delivery, max(cfg.BatchSize, cfg.MaxInFlight))
	r.in = newIntake(intakeCtx, r, merged)
	r.in.fatal = func(err error) { stopRun(err) }
	if t := cfg.SubscriptionType; t == danube.Exclusive || t == danube.Failover {
		confirm := cmp.Or(cfg.GapConfirm.D(), 2*cmp.Or(cfg.AckTimeout.D(), danube.DefaultFailurePolicy.AckTimeout))
		r.in.gaps = newGaps(cfg.SubscriptionName, cfg.GapPolicy, confirm, e.log, e.metrics.DeliveryGap, func(err error) { stopRun(err) })
		if e.server != nil {
			e.cleanup = append(e.cleanup, e.server.AddReadiness(cfg.ConnectorName+"/gaps", r.in.gaps.flag.Check))
		}
	}
	defer func() {
		stopIntake()
		r.in.close()
	}()
	// Registered after the consumers' cleanup, so it runs before it: every pending ack and nack is
	// sent (within the shutdown timeout) while the consumers are still open.
	r.settle = newSettler(work, e, r.in.replay)
	defer r.settle.close()
	if e.server != nil {
		e.cleanup = append(e.cleanup, e.server.AddReadiness(cfg.ConnectorName+"/delivery", r.in.flag.Check))
	}
	if err := r.in.subscribe(intakeCtx, true); err != nil {
		if stopped(err) && ctx.Err() != nil {
			return nil
		}
		return err
	}
	e.danube.Set(nil)
	subType := cfg.SubscriptionType.String()
	if cc, ok := conn.(ConcurrentSinkConnector); ok && cc.Concurrent() && cfg.MaxInFlight > 1 {
		r.batcher, r.streaming = nil, true // records are streamed one at a time to concurrent Process calls
		e.log.Info("sink started", "topics", cfg.Topics, "subscription", cfg.SubscriptionName, "type", subType, "max_in_flight", cfg.MaxInFlight)
		return r.stream(run, work, merged, cfg.MaxInFlight)
	}
	if cfg.MaxInFlight > 1 && r.batcher == nil {
		e.log.Warn("MAX_IN_FLIGHT above 1 has no effect: this connector writes one record at a time", "max_in_flight", cfg.MaxInFlight)
	}
	e.log.Info("sink started", "topics", cfg.Topics, "subscription", cfg.SubscriptionName, "type", subType, "batch_size", cfg.BatchSize)
	return r.loop(run, work, merged)
}

// dlqProducer creates the dead-letter producer, retrying like subscribe: the broker may still be
// starting, and a sink without its DLQ must not start.
func (r *sinkRunner) dlqProducer(ctx context.Context) (p *danube.Producer, err error) {
	err = r.env.retryDanube(ctx, r.policy, "create dead-letter producer", nil, func(ctx context.Context) error {
		p, err = r.env.client.NewProducer(ctx, danube.ProducerOptions{Topic: r.cfg.DLQTopic, Name: r.cfg.ConnectorName + "-dlq", Dispatch: danube.Reliable})
		if err != nil {
			return fmt.Errorf("runtime: DLQ_TOPIC=%q: create producer: %w", r.cfg.DLQTopic, err)
		}
		return nil
	})
	return p, err
}

// subscribe retries until the subscription is granted, or ctx ends (an Exclusive subscription
// held by another consumer name refuses it). A missing topic is created first, as a reliable topic, and subscribed to at
// once: a new subscription starts at the tail, so waiting for the topic's first producer would
// lose what it publishes before the next attempt.
func (r *sinkRunner) subscribe(ctx context.Context, topic, name string) (c *danube.Consumer, err error) {
	opts := danube.ConsumerOptions{
		Topic: topic, Name: name, Subscription: r.cfg.SubscriptionName, Type: r.cfg.SubscriptionType, KeyFilters: r.cfg.KeyFilters,
	}
	err = r.env.retryDanube(ctx, r.policy, "subscribe", nil, func(ctx context.Context) error {
		c, err = r.env.client.Subscribe(ctx, opts)
		if status.Code(err) == grpccodes.NotFound {
			if cerr := r.createTopic(ctx, topic); cerr != nil {
				return fmt.Errorf("runtime: DANUBE_TOPIC=%q does not exist and creating it failed: %w", topic, cerr)
			}
			c, err = r.env.client.Subscribe(ctx, opts)
		}
		if err != nil {
			return fmt.Errorf("runtime: subscribe to DANUBE_TOPIC=%q as SUBSCRIPTION_NAME=%q: %w", topic, r.cfg.SubscriptionName, err)
		}
		return nil
	})
	return c, err
}

// createTopic creates topic as a reliable topic: a producer's creation does it on the broker.
func (r *sinkRunner) createTopic(ctx context.Context, topic string) error {
	p, err := r.env.client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: r.cfg.ConnectorName + "-create", Dispatch: danube.Reliable})
	if err != nil {
		return err
	}
	r.env.log.Info("created the missing topic, so that nothing published before the subscription is missed", "topic", topic)
	return p.Close()
}

func (r *sinkRunner) loop(ctx, work context.Context, in <-chan delivery) error {
	b := batch.New[delivery](r.cfg.BatchSize, r.cfg.BatchTimeout.D()).WithIdle(r.cfg.BatchIdle.D())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var tc <-chan time.Time
		if d, ok := b.Deadline(); ok {
			timer.Reset(time.Until(d))
			tc = timer.C
		}
		var ready []*batch.Batch[delivery]
		if len(r.parked) > 0 {
			d := r.parked[0]
			r.parked = r.parked[1:]
			ready = b.Add(d.msg.Topic, d.msg.Offset, d, time.Now())
		} else {
			select {
			case <-ctx.Done():
				r.env.log.Info("stopping: flushing pending batches", "records", b.Len())
				for _, bt := range b.Drain() {
					if err := r.handle(work, bt.Items); err != nil {
						return err
					}
				}
				return nil
			case d := <-in:
				r.env.metrics.Received(1)
				ready = b.Add(d.msg.Topic, d.msg.Offset, d, time.Now())
			case now := <-tc:
				ready = b.Expired(now)
			}
		}
		for _, bt := range ready {
			if err := r.handle(work, bt.Items); err != nil {
				r.env.metrics.Dropped(b.Len())
				return err
			}
		}
	}
}

// handle processes one batch (records of one partition, in offset order) to completion: every
// record ends written (its ack queued), dead-lettered, nacked, or — on a fatal error or stop
// policy — left unacked while the error is returned. Acks are sent by the settler, so the next
// batch starts while they are in flight.
func (r *sinkRunner) handle(ctx context.Context, items []delivery) error {
	start := time.Now()
	n := len(items)
	st := newBatchState(n)
	recs, spans, pending := st.recs, st.spans, st.pending
	for i, d := range items {
		rc := &st.slab[i]
		rc.Message, rc.Partition = d.msg, d.msg.Topic
		rc.ctx = telemetry.Extract(ctx, d.msg.Attributes) // the producer's trace, when it sent one
		if r.tracing {
			rc.ctx, spans[i] = r.tracer.Start(rc.ctx, r.spanName(d.msg.Topic), consumerSpan)
		}
		recs[i] = rc
		pending[i] = i
	}
	defer func() {
		for _, s := range spans {
			if s != nil {
				s.End()
			}
		}
		r.env.metrics.Batch(n, time.Since(start).Seconds())
	}()

	// Whether anything else is written after these records first failed tells a poison record
	// (others get through) from an outage (nothing does).
	failedAt := time.Now().UnixNano()
	holding := false // an outage (intake paused) or a held poison record: retry without limit
	for attempt := 1; ; attempt++ {
		var errs []error
		gen := r.gate.run(func() { errs = r.process(ctx, recs, pending, st) })
		var again []int
		var last, lost error
		for j, i := range pending {
			err := errs[j]
			if err == nil {
				r.written(items[i])
				continue
			}
			if spans[i] != nil {
				spans[i].RecordError(err)
				spans[i].SetStatus(codes.Error, err.Error())
			}
			class := ClassOf(err)
			r.env.metrics.Failed(1, class.String())
			switch class {
			case ClassFatal:
				r.env.metrics.Dropped(len(pending) - j)
				return fmt.Errorf("runtime: fatal error on message %s: %w", recs[i].MessageID(), err)
			case ClassInvalidData:
				if r.dlq != nil {
					r.deadLetter(ctx, items[i], err)
					continue
				}
				if err := r.invalid(ctx, items[i], err); err != nil {
					return err
				}
			case ClassDisconnected:
				again, lost = append(again, i), err
			default:
				again, last = append(again, i), err
			}
		}
		if len(again) == 0 {
			r.gate.ok()
			return nil
		}
		pending = again
		if ctx.Err() != nil { // shutdown timeout: leave unacked, they are redelivered
			r.env.metrics.Dropped(len(again))
			return nil
		}
		if lost != nil {
			// The connection is gone, not the records: pause intake, reconnect, then repeat them
			// all without spending a retry.
			r.in.pause(lost)
			if err := r.gate.reconnect(ctx, gen, lost); err != nil {
				if ClassOf(err) == ClassFatal || !stopped(err) {
					return err
				}
				r.env.metrics.Dropped(len(again))
				return nil
			}
			continue
		}
		if !holding && r.decide(attempt, failedAt) {
			cause := fmt.Errorf("retries exhausted after %d attempts: %w", attempt, last)
			switch {
			case r.cfg.RetryExhausted.pausesOnOutage() && !r.isolated(failedAt) && !r.otherWritten(ctx, failedAt, items):
				r.in.pause(last)
				holding = true
			default:
				var held []int
				for _, i := range again {
					hold, err := r.exhausted(ctx, items[i], cause)
					if err != nil {
						return err
					}
					if hold {
						held = append(held, i)
						r.in.holdPoison(recs[i].MessageID(), last.Error())
						r.env.log.Error("poison message: it keeps failing while other messages are written; it is held "+
							"and retried, and Danube will stop the subscription once it used up its delivery attempts "+
							"(RETRY_EXHAUSTED=dlq with DLQ_TOPIC dead-letters such messages)", "message", recs[i].MessageID(), "err", last)
					}
				}
				if len(held) == 0 {
					return nil
				}
				pending, holding = held, true
			}
		}
		wait := r.policy.Forever().Delay(attempt, last)
		r.env.metrics.Retried(len(pending))
		r.env.log.Warn("processing failed; retrying", "records", len(pending), "attempt", attempt, "wait", wait, "err", last)
		// After SIGTERM no new attempt: the records stay unacked and Danube redelivers them.
		if retry.Sleep(r.stopping(ctx), wait) != nil {
			r.env.metrics.Dropped(len(pending))
			return nil
		}
	}
}

// decide reports whether failing records must now be classified (an outage pauses intake, a poison
// record follows RETRY_EXHAUSTED): when their retries ran out, or — retrying without limit, or
// with long waits — after three attempts or half the broker's ack timeout, whichever comes first:
// past the ack timeout the broker re-sends them, spending their delivery attempts.
func (r *sinkRunner) decide(attempt int, failedAt int64) bool {
	if !r.policy.Allows(attempt) {
		return true
	}
	ackTimeout := cmp.Or(r.cfg.AckTimeout.D(), danube.DefaultFailurePolicy.AckTimeout)
	return r.cfg.RetryExhausted.pausesOnOutage() &&
		(r.cfg.MaxRetries < 0 && attempt >= 3 || time.Since(time.Unix(0, failedAt)) >= ackTimeout/2)
}

// written queues the ack of a record the connector wrote; a write is also the sign that the
// external system is up: intake resumes if it was paused, and a held poison record is cleared.
// The record's payload is dropped: an ack needs only the message's identity, and a batch's
// payloads would otherwise stay in memory until its last ack is queued, while the next batch
// fills (10 MiB for 10,000 rows of 1 KiB).
func (r *sinkRunner) written(d delivery) {
	d.msg.Payload = nil
	r.lastOK.Store(time.Now().UnixNano())
	r.in.resume()
	if r.in.hasPoison() {
		r.in.holdPoison(messageID(d.msg), "")
	}
	r.settle.ack(d)
}

// otherWritten looks for a record written after failedAt, the sign of a poison record rather than
// an outage: a streaming sink gives its other workers RETRY_BACKOFF_MS to write one; a sink that
// writes one record or batch at a time tries a canary.
func (r *sinkRunner) otherWritten(ctx context.Context, failedAt int64, failing []delivery) bool {
	if !r.streaming {
		return r.canaryWritten(ctx, failing)
	}
	if retry.Sleep(ctx, max(r.policy.Base, 10*time.Millisecond)) != nil {
		return false
	}
	return r.isolated(failedAt)
}

// canaryWritten is the poison test of a sink that writes one record or batch at a time, where no
// other record is written while one fails: it takes the next record from intake (if one comes
// within RETRY_BACKOFF_MS) and writes it out of turn. Written, it proves that the external system
// takes records, so the failing ones are poison; failing too, it is parked and processed in turn
// after them. A redelivery of a failing record is no canary.
func (r *sinkRunner) canaryWritten(ctx context.Context, failing []delivery) bool {
	t := time.NewTimer(max(r.policy.Base, 10*time.Millisecond))
	defer t.Stop()
	var d delivery
	select {
	case d = <-r.in.out:
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
	r.env.metrics.Received(1)
	for _, f := range failing {
		if f.msg.Topic == d.msg.Topic && f.msg.Offset == d.msg.Offset {
			r.parked = append(r.parked, d)
			return false
		}
	}
	rec := NewSinkRecord(d.msg)
	rec.ctx = telemetry.Extract(ctx, d.msg.Attributes)
	var err error
	r.gate.run(func() {
		leave := r.busy.enter()
		defer leave()
		if r.batcher == nil {
			err = r.conn.Process(rec.Context(), rec)
			return
		}
		err = r.batcher.ProcessBatch(ctx, []*SinkRecord{rec})
	})
	if err != nil {
		r.parked = append(r.parked, d)
		return false
	}
	r.written(d)
	return true
}

// stopping returns the context that ends on SIGTERM (the run's), or ctx where there is none.
func (r *sinkRunner) stopping(ctx context.Context) context.Context {
	if r.stop == nil {
		return ctx
	}
	return r.stop
}

// isolated reports whether some record was written after failedAt (unix nanoseconds).
func (r *sinkRunner) isolated(failedAt int64) bool { return r.lastOK.Load() > failedAt }

// process runs the connector on recs[pending...] and returns one result per pending record.
func (r *sinkRunner) process(ctx context.Context, recs []*SinkRecord, pending []int, st *batchState) []error {
	done := r.busy.enter()
	defer done()
	errs := st.errs[:len(pending)]
	clear(errs)
	if r.batcher == nil {
		for j, i := range pending {
			errs[j] = r.conn.Process(recs[i].Context(), recs[i])
			if errs[j] != nil && ClassOf(errs[j]) == ClassFatal {
				for k := j + 1; k < len(pending); k++ {
					errs[k] = errs[j]
				}
				break
			}
		}
		return errs
	}
	sub := recs
	if len(pending) != len(recs) {
		sub = make([]*SinkRecord, len(pending))
		for j, i := range pending {
			sub[j] = recs[i]
		}
	}
	err := r.batcher.ProcessBatch(ctx, sub)
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

// exhausted applies RETRY_EXHAUSTED to a record whose retries ran out; hold reports that it stays
// in the sink and is retried.
func (r *sinkRunner) exhausted(ctx context.Context, d delivery, cause error) (hold bool, err error) {
	switch r.cfg.RetryExhausted.resolve(r.cfg.DLQTopic) {
	case StopOnExhausted:
		return false, fmt.Errorf("runtime: %s offset %d (RETRY_EXHAUSTED=stop): %w", d.msg.Topic, d.msg.Offset, cause)
	case DeadLetterOnExhausted:
		if r.dlq != nil {
			r.deadLetter(ctx, d, cause)
			return false, nil
		}
	case HoldOnExhausted:
		return true, nil
	}
	r.settle.nack(d, r.cfg.NackDelay.D(), cause.Error())
	return false, nil
}

// invalid handles a record the connector rejected as invalid data when there is no DLQ_TOPIC:
// retrying cannot help, so it goes back to Danube (nack) — or, with RETRY_EXHAUSTED=stop, stops
// the sink — and says loudly that Danube's poison policy will decide its fate.
func (r *sinkRunner) invalid(ctx context.Context, d delivery, cause error) error {
	if r.cfg.RetryExhausted == StopOnExhausted {
		_, err := r.exhausted(ctx, d, cause)
		return err
	}
	r.env.log.Error("invalid message nacked: without DLQ_TOPIC it goes back to Danube, which stops the subscription "+
		"once it used up its delivery attempts; set DLQ_TOPIC to dead-letter such messages", "message", messageID(d.msg), "err", cause)
	r.settle.nack(d, r.cfg.NackDelay.D(), cause.Error())
	return nil
}

// deadLetter publishes the original message with its attributes plus the failure reason, then
// queues its ack. If the publish fails the record is nacked: never a silent drop.
func (r *sinkRunner) deadLetter(ctx context.Context, d delivery, cause error) {
	attrs := maps.Clone(d.msg.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 5)
	}
	attrs[AttrOriginalTopic] = d.msg.Topic
	attrs[AttrOriginalSubscription] = r.cfg.SubscriptionName
	attrs[AttrOriginalOffset] = strconv.FormatUint(d.msg.Offset, 10)
	attrs[AttrFailureReason] = truncate(cause.Error(), maxReason)
	attrs[AttrConnector] = r.cfg.ConnectorName
	msg := danube.ProducerMessage{Payload: d.msg.Payload, Key: d.msg.Key, Attributes: attrs}
	if size := danube.MessageSize(msg); size > danube.MaxMessageSize {
		// The broker would refuse it however often it is sent: say so, and leave it to Danube.
		r.env.log.Error("cannot dead-letter: the message with its attributes is over the broker's size limit; nacking",
			"message", messageID(d.msg), "bytes", size, "reason", cause)
		r.settle.nack(d, r.cfg.NackDelay.D(), cause.Error())
		return
	}
	if _, err := r.dlq.Send(ctx, msg); err != nil {
		r.env.log.Error("dead-letter publish failed; nacking", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
		r.settle.nack(d, r.cfg.NackDelay.D(), cause.Error())
		return
	}
	r.env.metrics.Published(1)
	r.env.log.Warn("record dead-lettered", "topic", d.msg.Topic, "offset", d.msg.Offset, "dlq", r.cfg.DLQTopic, "reason", cause)
	r.settle.deadLettered(d)
}

// batchState is a batch's working memory, in one allocation; a batch of one (every record of a
// streaming sink) uses the inline arrays.
type batchState struct {
	slab    []SinkRecord
	recs    []*SinkRecord
	spans   []trace.Span
	pending []int
	errs    []error

	slab1    [1]SinkRecord
	recs1    [1]*SinkRecord
	spans1   [1]trace.Span
	pending1 [1]int
	errs1    [1]error
}

func newBatchState(n int) *batchState {
	st := &batchState{}
	if n == 1 {
		st.slab, st.recs, st.spans, st.pending, st.errs = st.slab1[:], st.recs1[:], st.spans1[:], st.pending1[:], st.errs1[:]
		return st
	}
	st.slab, st.recs, st.spans = make([]SinkRecord, n), make([]*SinkRecord, n), make([]trace.Span, n)
	st.pending, st.errs = make([]int, n), make([]error, n)
	return st
}

// spanName returns "process <partition>", built once per partition.
func (r *sinkRunner) spanName(partition string) string {
	if v, ok := r.spanNames.Load(partition); ok {
		return v.(string)
	}
	name := "process " + partition
	r.spanNames.Store(partition, name)
	return name
}

// maxReason bounds the failure reason a dead letter carries: an error that quotes a whole response
// must not push the message over the broker's size limit.
const maxReason = 4 << 10

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
