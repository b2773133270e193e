package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

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
	cfg     *SinkConfig
	conn    SinkConnector
	batcher BatchSinkConnector // nil when conn only has Process
	env     *env
	policy  retry.Policy
	dlq     *danube.Producer
	tracer  trace.Tracer
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
	r := &sinkRunner{cfg: cfg, conn: conn, env: e, policy: cfg.Retry(), tracer: telemetry.Tracer()}
	r.batcher, _ = conn.(BatchSinkConnector)

	// work outlives ctx by the shutdown timeout so that batches in progress can finish and be acked.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	timeout := cfg.ShutdownTimeout.D()
	if timeout <= 0 {
		timeout = defaultShutdown
	}
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(timeout, cancelWork) })
	defer stopTimer()

	if err := conn.Initialize(work); err != nil {
		return fmt.Errorf("runtime: initialize connector %q: %w", cfg.ConnectorName, err)
	}
	e.watch(conn.HealthCheck)
	defer func() {
		if serr := conn.Shutdown(work); serr != nil {
			err = errors.Join(err, fmt.Errorf("runtime: shut down connector %q: %w", cfg.ConnectorName, serr))
		}
	}()

	if cfg.DLQTopic != "" {
		r.dlq, err = e.client.NewProducer(work, danube.ProducerOptions{Topic: cfg.DLQTopic, Name: cfg.ConnectorName + "-dlq", Dispatch: danube.Reliable})
		if err != nil {
			return fmt.Errorf("runtime: DLQ_TOPIC=%q: create producer: %w", cfg.DLQTopic, err)
		}
		defer r.dlq.Close()
	}

	subType, _ := danube.ParseSubscriptionType(cfg.SubscriptionType) // validated by config
	intake, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	merged := make(chan delivery)
	var wg sync.WaitGroup
	var consumers []*danube.Consumer
	defer func() {
		stopIntake()
		wg.Wait()
		for _, c := range consumers {
			c.Close()
		}
	}()
	for _, topic := range cfg.Topics {
		c, err := r.subscribe(intake, topic, subType)
		if err != nil {
			if stopped(err) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		consumers = append(consumers, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m, ok := <-c.Messages():
					if !ok {
						return
					}
					select {
					case merged <- delivery{c, m}:
					case <-intake.Done():
						return
					}
				case <-intake.Done():
					return
				}
			}
		}()
	}
	e.danube.Set(nil)
	e.log.Info("sink started", "topics", cfg.Topics, "subscription", cfg.SubscriptionName, "type", subType.String(), "batch_size", cfg.BatchSize)
	return r.loop(ctx, work, merged)
}

// subscribe retries until the topic exists and the subscription is granted, or ctx ends: a sink may
// start before its topic's first producer.
func (r *sinkRunner) subscribe(ctx context.Context, topic string, t danube.SubscriptionType) (*danube.Consumer, error) {
	for attempt := 1; ; attempt++ {
		c, err := r.env.client.Subscribe(ctx, danube.ConsumerOptions{
			Topic: topic, Name: r.cfg.ConnectorName, Subscription: r.cfg.SubscriptionName, Type: t, KeyFilters: r.cfg.KeyFilters,
		})
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("runtime: subscribe to DANUBE_TOPIC=%q as SUBSCRIPTION_NAME=%q: %w", topic, r.cfg.SubscriptionName, err)
		r.env.danube.Set(err)
		d := r.policy.Next(attempt)
		r.env.log.Warn("subscribe failed; retrying", "topic", topic, "attempt", attempt, "wait", d, "err", err)
		if serr := retry.Sleep(ctx, d); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
}

func (r *sinkRunner) loop(ctx, work context.Context, in <-chan delivery) error {
	b := batch.New[delivery](r.cfg.BatchSize, r.cfg.BatchTimeout.D())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var tc <-chan time.Time
		if d, ok := b.Deadline(); ok {
			timer.Reset(time.Until(d))
			tc = timer.C
		}
		var ready []*batch.Batch[delivery]
		select {
		case <-ctx.Done():
			r.env.log.Info("stopping: flushing pending batches", "records", b.Len())
			for _, bt := range b.Drain() {
				if err := r.handle(work, bt); err != nil {
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
		for _, bt := range ready {
			if err := r.handle(work, bt); err != nil {
				r.env.metrics.Dropped(b.Len())
				return err
			}
		}
	}
}

// handle processes one batch to completion: every record ends acked (written or dead-lettered),
// nacked, or — on a fatal error or stop policy — left unacked while the error is returned.
func (r *sinkRunner) handle(ctx context.Context, bt *batch.Batch[delivery]) error {
	start := time.Now()
	n := len(bt.Items)
	recs := make([]*SinkRecord, n)
	spans := make([]trace.Span, n)
	for i, d := range bt.Items {
		rc := &SinkRecord{Message: d.msg, Partition: d.msg.Topic}
		rc.ctx, spans[i] = r.tracer.Start(telemetry.Extract(ctx, d.msg.Attributes), "process "+d.msg.Topic, consumerSpan)
		recs[i] = rc
	}
	defer func() {
		for _, s := range spans {
			s.End()
		}
		r.env.metrics.Batch(n, time.Since(start).Seconds())
	}()

	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	for attempt := 1; ; attempt++ {
		errs := r.process(ctx, recs, pending)
		var again []int
		var last error
		for j, i := range pending {
			err := errs[j]
			if err == nil {
				r.ack(ctx, bt.Items[i])
				continue
			}
			spans[i].RecordError(err)
			spans[i].SetStatus(codes.Error, err.Error())
			class := ClassOf(err)
			r.env.metrics.Failed(1, class.String())
			switch class {
			case ClassFatal:
				r.env.metrics.Dropped(len(pending) - j)
				return fmt.Errorf("runtime: fatal error on message %s: %w", recs[i].MessageID(), err)
			case ClassInvalidData:
				if r.dlq != nil {
					r.deadLetter(ctx, bt.Items[i], err)
					continue
				}
				if err := r.exhausted(ctx, bt.Items[i], err); err != nil {
					return err
				}
			default:
				again, last = append(again, i), err
			}
		}
		if len(again) == 0 {
			return nil
		}
		if !r.policy.Allows(attempt) || ctx.Err() != nil {
			for _, i := range again {
				if err := r.exhausted(ctx, bt.Items[i], last); err != nil {
					return err
				}
			}
			return nil
		}
		wait := r.policy.Delay(attempt, last)
		r.env.metrics.Retried(len(again))
		r.env.log.Warn("processing failed; retrying", "records", len(again), "attempt", attempt, "wait", wait, "err", last)
		if retry.Sleep(ctx, wait) != nil { // shutdown timeout: leave unacked, they are redelivered
			r.env.metrics.Dropped(len(again))
			return nil
		}
		pending = again
	}
}

// process runs the connector on recs[pending...] and returns one result per pending record.
func (r *sinkRunner) process(ctx context.Context, recs []*SinkRecord, pending []int) []error {
	errs := make([]error, len(pending))
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

func (r *sinkRunner) ack(ctx context.Context, d delivery) {
	if err := d.cons.Ack(ctx, d.msg); err != nil {
		// Written but not acked: Danube redelivers it (at-least-once).
		r.env.log.Warn("ack failed; the message will be redelivered", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
	}
	r.env.metrics.Processed(1)
}

// exhausted applies RETRY_EXHAUSTED to a record that cannot be written now.
func (r *sinkRunner) exhausted(ctx context.Context, d delivery, cause error) error {
	if r.cfg.RetryExhausted == StopOnExhausted {
		return fmt.Errorf("runtime: retries exhausted on %s offset %d (RETRY_EXHAUSTED=stop): %w", d.msg.Topic, d.msg.Offset, cause)
	}
	if err := d.cons.Nack(ctx, d.msg, r.cfg.NackDelay.D(), cause.Error()); err != nil {
		r.env.log.Warn("nack failed; the broker redelivers after its ack timeout", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
	}
	r.env.metrics.Dropped(1)
	return nil
}

// deadLetter publishes the original message with its attributes plus the failure reason, then acks.
func (r *sinkRunner) deadLetter(ctx context.Context, d delivery, cause error) {
	attrs := maps.Clone(d.msg.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 5)
	}
	attrs[AttrOriginalTopic] = d.msg.Topic
	attrs[AttrOriginalSubscription] = r.cfg.SubscriptionName
	attrs[AttrOriginalOffset] = strconv.FormatUint(d.msg.Offset, 10)
	attrs[AttrFailureReason] = cause.Error()
	attrs[AttrConnector] = r.cfg.ConnectorName
	if _, err := r.dlq.Send(ctx, danube.ProducerMessage{Payload: d.msg.Payload, Key: d.msg.Key, Attributes: attrs}); err != nil {
		r.env.log.Error("dead-letter publish failed; nacking", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
		_ = r.exhausted(ctx, d, cause)
		return
	}
	r.env.metrics.Published(1)
	r.env.log.Warn("record dead-lettered", "topic", d.msg.Topic, "offset", d.msg.Offset, "dlq", r.cfg.DLQTopic, "reason", cause)
	if err := d.cons.Ack(ctx, d.msg); err != nil {
		r.env.log.Warn("ack after dead-letter failed; it may be dead-lettered twice", "topic", d.msg.Topic, "offset", d.msg.Offset, "err", err)
	}
	r.env.metrics.DeadLettered(1)
}
