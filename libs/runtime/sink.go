package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/sink"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// ErrDeliveryGap is what a sink with GAP_POLICY=stop returns (wrapped) when Danube skipped
// messages of its subscription; MainSink exits with ExitGap for it.
var ErrDeliveryGap = sink.ErrDeliveryGap

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
		return host.UnlessStopped(ctx, err)
	}
	defer func() { err = errors.Join(err, shutdown()) }()
	// A background reconnect, a failed resume or a gap under GAP_POLICY=stop stops the sink like a
	// fatal record does.
	run, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	fatal := func(err error) { stopRun(err) }
	g.OnFatal(fatal)
	defer func() {
		if cause := context.Cause(run); err == nil && ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
	}()
	h := &sink.Host{Host: e.host(busy, policy), Gate: g, Stop: ctx, Ready: e.ready, Fatal: fatal,
		Configure: func(ctx context.Context, topics []string) error {
			return configureSubscription(ctx, e, cfg, policy, topics)
		},
	}
	chain, err := e.transforms(cfg.Transforms.Chain())
	if err != nil {
		return err
	}
	recs := sinkRecords{conn: conn, chain: chain, schemas: cfg.reader(e.client)}
	recs.batcher, _ = conn.(BatchSinkConnector)
	sc := engineConfig(cfg)
	if cc, ok := conn.(ConcurrentSinkConnector); ok && cc.Concurrent() && cfg.MaxInFlight > 1 {
		recs.batcher, sc.Workers = nil, cfg.MaxInFlight // records are streamed one at a time to concurrent Process calls
	} else if cfg.MaxInFlight > 1 && recs.batcher == nil {
		e.log.Warn("MAX_IN_FLIGHT above 1 has no effect: this connector writes one record at a time", "max_in_flight", cfg.MaxInFlight)
	}
	return sink.Run(run, work, sc, h, recs)
}

// engineConfig is what the sink's stages are told of cfg.
func engineConfig(cfg *SinkConfig) *sink.Config {
	return &sink.Config{Name: cfg.ConnectorName, Topics: cfg.Topics, Subscription: cfg.SubscriptionName,
		SubscriptionType: cfg.SubscriptionType, KeyFilters: cfg.KeyFilters, BatchSize: cfg.BatchSize,
		BatchTimeout: cfg.BatchTimeout.D(), BatchIdle: cfg.BatchIdle.D(), Workers: 1, DLQTopic: cfg.DLQTopic,
		NackDelay: cfg.NackDelay.D(), AckTimeout: cmp.Or(cfg.AckTimeout.D(), danube.DefaultFailurePolicy.AckTimeout),
		GapConfirm: cfg.GapConfirm.D(), GapStop: cfg.GapPolicy == GapStop, Retry: cfg.Retry(),
		Exhausted: sink.Exhausted(cfg.RetryExhausted)}
}

// sinkRecords is a SinkConnector as the sink's stages see it.
type sinkRecords struct {
	conn    SinkConnector
	batcher BatchSinkConnector // nil: one record per Process call
	chain   *transform.Chain   // TRANSFORMS; nil: none
	schemas *sinkSchemas       // nil: SCHEMA_DECODE and SCHEMA_VALIDATE off
}

func (sinkRecords) Init(ctx context.Context, rec *SinkRecord, m *danube.Message) {
	*rec = SinkRecord{Message: m, Partition: m.Topic, ctx: ctx}
}

func (sinkRecords) Class(err error) class.Class { return class.Class(ClassOf(err)) }

// Process prepares recs (schemas, TRANSFORMS), then writes the records left.
func (s sinkRecords) Process(ctx context.Context, recs []*SinkRecord, errs []error) {
	if s.chain == nil && s.schemas == nil {
		s.write(ctx, recs, errs)
		return
	}
	left, at := s.prepareRecords(ctx, recs, errs)
	if len(left) == len(recs) {
		s.write(ctx, recs, errs)
		return
	}
	if len(left) > 0 {
		sub := make([]error, len(left))
		s.write(ctx, left, sub)
		for j, i := range at {
			errs[i] = sub[j]
		}
	}
}

// write calls ProcessBatch, or Process record by record; after a fatal error the rest of the
// records are not tried.
func (s sinkRecords) write(ctx context.Context, recs []*SinkRecord, errs []error) {
	if s.batcher == nil {
		for i, rec := range recs {
			errs[i] = s.conn.Process(rec.Context(), rec)
			if errs[i] != nil && ClassOf(errs[i]) == ClassFatal {
				for k := i + 1; k < len(recs); k++ {
					errs[k] = errs[i]
				}
				return
			}
		}
		return
	}
	err := s.batcher.ProcessBatch(ctx, recs)
	var be *BatchError
	switch {
	case err == nil:
	case errors.As(err, &be) && len(be.Errs) == len(recs):
		copy(errs, be.Errs)
	default:
		if be != nil {
			err = Fatal(fmt.Errorf("ProcessBatch returned %d results for %d records: %w", len(be.Errs), len(recs), err))
		}
		for i := range errs {
			errs[i] = err
		}
	}
}
