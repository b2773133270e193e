package runtime

import (
	"cmp"
	"context"
	"errors"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// RunSink runs conn until ctx ends (graceful: stop intake, flush batches, ack, within
// SHUTDOWN_TIMEOUT_MS; returns nil) or a fatal error (returns it; nothing unprocessed is acked).
// Every record is acked only after conn reported it written, dead-lettered or — by RETRY_EXHAUSTED
// policy — nacked.
//
// Records flow one way through the stages: intake (the Danube consumers) → schedule (batches, or
// per-key order for a ConcurrentSinkConnector) → process (the connector, under the reconnect gate,
// until each record is written or disposed of by dispose) → settle (acks and nacks).
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
	busy := newLiveness(cfg.LivenessTimeout.D())
	e.live(busy.Check)
	policy := cfg.Retry()
	// work outlives ctx by the shutdown timeout so that batches in progress can finish and be acked.
	work, cancelWork := workContext(ctx, cfg.ShutdownTimeout.D())
	defer cancelWork()
	g, shutdown, err := e.start(ctx, work, cfg.ConnectorName, conn, busy, policy)
	if err != nil {
		return unlessStopped(ctx, err)
	}
	defer func() { err = errors.Join(err, shutdown()) }()
	// A background reconnect or a failed resume stops the sink like a fatal record does.
	run, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	g.fatal = func(err error) { stopRun(err) }
	defer func() {
		if cause := context.Cause(run); err == nil && ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
	}()
	p := &processor{conn: conn, gate: g, busy: busy, env: e, nackDelay: cfg.NackDelay.D(), tracer: telemetry.Tracer(),
		tracing: telemetry.Tracing(), stop: ctx, policy: disposal{retry: policy, exhausted: cfg.RetryExhausted,
			dlq: cfg.DLQTopic != "", ackTimeout: cmp.Or(cfg.AckTimeout.D(), danube.DefaultFailurePolicy.AckTimeout)}}
	p.batcher, _ = conn.(BatchSinkConnector)
	return runStages(run, work, cfg, p, func(err error) { stopRun(err) })
}

// runStages builds the stages around p and runs them until run ends or one fails; a setup that
// failed only because the sink was stopped (p.stop ended) is no error.
func runStages(run, work context.Context, cfg *SinkConfig, p *processor, fatal func(error)) error {
	e := p.env
	sub := &subscriber{cfg: cfg, env: e, policy: p.policy.retry}
	if cfg.DLQTopic != "" {
		prod, err := sub.dlqProducer(run)
		if err != nil {
			return unlessStopped(p.stop, err)
		}
		defer prod.Close()
		p.dlq = &deadLetters{prod: prod, topic: cfg.DLQTopic, subscription: cfg.SubscriptionName, connector: cfg.ConnectorName, nackDelay: p.nackDelay, env: e}
	}
	intakeCtx, stopIntake := context.WithCancel(run)
	replay := newReplayFilter(maxWindow)
	// Buffered so that the consumers fill the next batch while the loop processes this one.
	in := &intake{ctx: intakeCtx, out: make(chan delivery, max(cfg.BatchSize, cfg.MaxInFlight)), open: sub.open, name: cfg.ConnectorName,
		keyShared: cfg.SubscriptionType == danube.KeyShared, replay: replay, gaps: newSinkGaps(cfg, e, fatal), metrics: e.metrics, fatal: fatal}
	defer func() {
		stopIntake()
		in.stop()
	}()
	// Closed before the consumers: every pending ack and nack is sent (within the shutdown timeout)
	// while they are still open.
	p.settle = newSettler(work, e, replay)
	defer p.settle.close()
	in.settle = p.settle
	if p.dlq != nil {
		p.dlq.settle = p.settle
	}
	p.holds = newHolds(in, e.log, e.metrics)
	e.ready(cfg.ConnectorName+"/delivery", p.holds.flag.Check)
	if err := in.start(intakeCtx); err != nil {
		return unlessStopped(p.stop, err)
	}
	e.danube.Set(nil)
	return schedule(run, work, cfg, p, in.out)
}

// schedule hands the records to p: streamed to concurrent calls for a ConcurrentSinkConnector,
// in batches otherwise.
func schedule(run, work context.Context, cfg *SinkConfig, p *processor, in <-chan delivery) error {
	e, subType := p.env, cfg.SubscriptionType.String()
	if cc, ok := p.conn.(ConcurrentSinkConnector); ok && cc.Concurrent() && cfg.MaxInFlight > 1 {
		p.batcher = nil // records are streamed one at a time to concurrent Process calls
		e.log.Info("sink started", "topics", cfg.Topics, "subscription", cfg.SubscriptionName, "type", subType, "max_in_flight", cfg.MaxInFlight)
		return p.stream(run, work, in, cfg.MaxInFlight)
	}
	if cfg.MaxInFlight > 1 && p.batcher == nil {
		e.log.Warn("MAX_IN_FLIGHT above 1 has no effect: this connector writes one record at a time", "max_in_flight", cfg.MaxInFlight)
	}
	e.log.Info("sink started", "topics", cfg.Topics, "subscription", cfg.SubscriptionName, "type", subType, "batch_size", cfg.BatchSize)
	return newBatchLoop(p, in, cfg).run(run, work)
}

// newSinkGaps returns the gap check of an Exclusive or Failover subscription (nil for the others,
// whose consumers see a part of the offsets only).
func newSinkGaps(cfg *SinkConfig, e *env, fatal func(error)) *gaps {
	if t := cfg.SubscriptionType; t != danube.Exclusive && t != danube.Failover {
		return nil
	}
	confirm := cmp.Or(cfg.GapConfirm.D(), 2*cmp.Or(cfg.AckTimeout.D(), danube.DefaultFailurePolicy.AckTimeout))
	g := newGaps(cfg.SubscriptionName, cfg.GapPolicy, confirm, e.log, e.metrics.DeliveryGap, fatal)
	e.ready(cfg.ConnectorName+"/gaps", g.flag.Check)
	return g
}

// unlessStopped returns err, or nil when it only says that ctx ended (stopped while waiting).
func unlessStopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && stopped(err) {
		return nil // stopped while waiting: not a failure
	}
	return err
}
