package runtime

import (
	"context"
	"errors"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/source"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// RunSource runs conn until ctx ends (graceful: stop polling, publish what was polled, wait for
// Danube's acks and commit, within SHUTDOWN_TIMEOUT_MS; returns nil) or a fatal error.
func RunSource[P any](ctx context.Context, cfg *SourceConfig, conn SourceConnector[P], opts ...Option) (err error) {
	if ctx.Err() != nil {
		return nil
	}
	if conn == nil {
		return errors.New("runtime: RunSource needs a connector, got nil")
	}
	e, err := newEnv(&cfg.Common, "source", opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	work, cancelWork := workContext(ctx, cfg.ShutdownTimeout.D())
	defer cancelWork()
	busy := newLiveness(cfg.LivenessTimeout.D()) // Commit calls (a Poll may block legitimately: it waits for data)
	e.live(busy.Check)
	policy := cfg.Retry()
	g, shutdown, err := e.start(ctx, work, cfg.ConnectorName, conn, busy, policy)
	if err != nil {
		return host.UnlessStopped(ctx, err)
	}
	defer func() { err = errors.Join(err, shutdown()) }()
	h := &source.Host{Host: e.host(busy, policy), Gate: g, Fatal: Fatal}
	sc := &source.Config{Name: cfg.ConnectorName, Topic: cfg.Topic, MaxInFlight: cfg.MaxInFlight, Order: source.Order(cfg.PublishOrder),
		Partitions: cfg.Partitions, DLQTopic: cfg.DLQTopic, PollInterval: cfg.PollInterval.D(), Retry: policy}
	chain, err := e.transforms(cfg.Transforms.Chain())
	if err != nil {
		return err
	}
	if sc.Schemas, err = cfg.engine(); err != nil {
		return err
	}
	sconn := sourceConn[P]{conn: conn, chain: chain, topic: cfg.Topic}
	sconn.lag, _ = conn.(LagReporter)
	return source.Run(ctx, work, sc, h, sconn)
}

// sourceConn is a SourceConnector as the source engine sees it.
type sourceConn[P any] struct {
	conn  SourceConnector[P]
	lag   LagReporter      // nil: the connector reports none
	chain *transform.Chain // TRANSFORMS; nil: none
	topic string           // DANUBE_TOPIC, what a record without a topic is published to
}

func (c sourceConn[P]) Poll(ctx context.Context) ([]source.Record[P], error) {
	recs, err := c.conn.Poll(ctx)
	if len(recs) == 0 {
		return nil, err
	}
	out := make([]source.Record[P], len(recs))
	for i := range recs {
		r := &recs[i]
		out[i] = source.Record[P]{Topic: r.Topic, Key: r.Key, Payload: r.Payload, Attributes: r.Attributes, OnAck: r.OnAck,
			Origin: r.Origin, Pos: r.pos, HasPos: r.hasPos, Checkpoint: r.checkpoint, Schema: r.Schema, Failed: r.Invalid}
		if c.chain != nil && r.Invalid == nil {
			transformSource(c.chain, c.topic, &out[i])
		}
	}
	return out, err
}

func (c sourceConn[P]) Commit(ctx context.Context, positions []P) error {
	return c.conn.Commit(ctx, positions)
}

func (sourceConn[P]) Class(err error) class.Class { return class.Class(ClassOf(err)) }

func (c sourceConn[P]) Lag() (int64, bool) {
	if c.lag == nil {
		return 0, false
	}
	return c.lag.Lag(), true
}
