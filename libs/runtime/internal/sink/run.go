package sink

import (
	"context"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// Run runs the stages until run ends (graceful: what is in hand is finished within work) or one of
// them fails for good. A setup that failed only because the sink was stopped is no error.
func Run[R any](run, work context.Context, cfg *Config, h *Host, recs Records[R]) error {
	sub := &subscriber{cfg: cfg, host: h}
	p := newProcessor(cfg, h, recs)
	if cfg.DLQTopic != "" {
		prod, err := sub.dlqProducer(run)
		if err != nil {
			return host.UnlessStopped(h.Stop, err)
		}
		defer prod.Close()
		p.dlq = &deadLetters{prod: prod, topic: cfg.DLQTopic, subscription: cfg.Subscription, connector: cfg.Name, nackDelay: cfg.NackDelay, host: h}
	}
	intakeCtx, stopIntake := context.WithCancel(run)
	replay := newReplayFilter(maxWindow)
	// Buffered so that the consumers fill the next batch while the loop processes this one.
	in := &intake{ctx: intakeCtx, out: make(chan delivery, max(cfg.BatchSize, cfg.Workers)), open: sub.open, name: cfg.Name,
		keyShared: cfg.SubscriptionType == danube.KeyShared, replay: replay, gaps: newSinkGaps(cfg, h), metrics: h.Metrics, fatal: h.Fatal}
	defer func() {
		stopIntake()
		in.stop()
	}()
	// Closed before the consumers: every pending ack and nack is sent (within the shutdown timeout)
	// while they are still open.
	p.settle = newSettler(work, h, replay)
	defer p.settle.close()
	in.settle = p.settle
	if p.dlq != nil {
		p.dlq.settle = p.settle
	}
	p.holds = newHolds(in, h.Log, h.Metrics)
	h.ready(cfg.Name+"/delivery", p.holds.flag.Check)
	if err := in.start(intakeCtx); err != nil {
		return host.UnlessStopped(h.Stop, err)
	}
	h.Danube.Set(nil)
	log := h.Log.With("topics", cfg.Topics, "subscription", cfg.Subscription, "type", cfg.SubscriptionType.String())
	if cfg.Workers > 1 {
		log.Info("sink started", "max_in_flight", cfg.Workers)
		return p.stream(run, work, in.out, cfg.Workers)
	}
	log.Info("sink started", "batch_size", cfg.BatchSize)
	return newBatchLoop(p, in.out, cfg).run(run, work)
}

// maxWindow is the broker's upper bound on max_unacked_messages: the most a sink holds.
const maxWindow = 10000

// newSinkGaps returns the gap check of an Exclusive or Failover subscription (nil for the others,
// whose consumers see a part of the offsets only).
func newSinkGaps(cfg *Config, h *Host) *gaps {
	if t := cfg.SubscriptionType; t != danube.Exclusive && t != danube.Failover {
		return nil
	}
	confirm := cfg.GapConfirm
	if confirm <= 0 {
		confirm = 2 * cfg.AckTimeout
	}
	g := newGaps(cfg.Subscription, cfg.GapStop, confirm, h.Log, h.Metrics.DeliveryGap, h.Fatal)
	h.ready(cfg.Name+"/gaps", g.flag.Check)
	return g
}
