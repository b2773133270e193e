package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Option configures RunSink and RunSource.
type Option func(*options)

type options struct {
	client    *danube.Client
	conn      *Connection
	logger    *slog.Logger
	telemetry *telemetry.Server
}

// WithClient makes the runner use c instead of building its own from the config, so several
// connectors in one process can share one client. The runner does not close it. conn is the
// Connection whose Hooks c was built with: the runner's Danube readiness then follows c's
// reconnect, send and ack events exactly as with a client it builds itself. With a nil conn the
// readiness only sees the runner's own subscribe and publish outcomes.
func WithClient(c *danube.Client, conn *Connection) Option {
	return func(o *options) { o.client, o.conn = c, conn }
}

// Connection is a Danube client's connection state as its events report it; readiness (/readyz)
// follows it. The zero value is "starting" (not ready) until the first event or the runner's first
// successful subscribe or producer.
type Connection struct {
	flag telemetry.Flag
	// byHealth is set while the state came from a failed health check: only a health check that
	// passes clears it then (an idle source sends nothing that would), and any other event wins.
	byHealth atomic.Bool
}

// set records an event's outcome (nil: healthy).
func (c *Connection) set(err error) {
	c.byHealth.Store(false)
	c.flag.Set(err)
}

// Hooks returns client hooks that keep c up to date and then call next's (for metrics or
// tracing). Pass them to danube.WithHooks when building a client shared through WithClient.
func (c *Connection) Hooks(next danube.Hooks) danube.Hooks {
	return danube.Hooks{
		OnReconnect: func(ev danube.ReconnectEvent) {
			if ev.Err != nil {
				c.set(fmt.Errorf("%s %s: %w", ev.Kind, ev.Topic, ev.Err))
			} else {
				c.set(nil)
			}
			if next.OnReconnect != nil {
				next.OnReconnect(ev)
			}
		},
		OnSend: func(ev danube.SendEvent) {
			if ev.Err != nil {
				c.set(fmt.Errorf("send to %s: %w", ev.Topic, ev.Err))
			} else {
				c.set(nil)
			}
			if next.OnSend != nil {
				next.OnSend(ev)
			}
		},
		OnAck: func(ev danube.AckEvent) {
			if ev.Err == nil {
				c.set(nil)
			}
			if next.OnAck != nil {
				next.OnAck(ev)
			}
		},
		OnRetry: func(ev danube.RetryEvent) {
			c.set(fmt.Errorf("%s %s: retrying: %w", ev.Op, ev.Topic, ev.Err))
			if next.OnRetry != nil {
				next.OnRetry(ev)
			}
		},
		OnHealth: func(ev danube.HealthEvent) {
			switch {
			case ev.Err != nil:
				c.flag.Set(fmt.Errorf("health check of %s %s: %w", ev.Kind, ev.Topic, ev.Err))
				c.byHealth.Store(true)
			case c.byHealth.CompareAndSwap(true, false):
				c.flag.Set(nil)
			}
			if next.OnHealth != nil {
				next.OnHealth(ev)
			}
		},
		OnReceive: next.OnReceive,
	}
}

// Check reports nil while connected; it is a telemetry.Check.
func (c *Connection) Check(ctx context.Context) error { return c.flag.Check(ctx) }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTelemetry registers the runner's metrics and health checks on s, so several connectors in one
// process share one /metrics, /healthz and /readyz.
func WithTelemetry(s *telemetry.Server) Option { return func(o *options) { o.telemetry = s } }

// NewResources returns what a connector constructor gets (MainSink and MainSource call it with the
// options they run with): the logger of WithLogger tagged with the connector's name, a meter on the
// telemetry server of WithTelemetry (a no-op meter without one) and the tracer.
func NewResources(c *Common, opts ...Option) Resources {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	res := Resources{Name: c.ConnectorName, Logger: o.logger, Tracer: telemetry.Tracer()}
	if res.Logger == nil {
		res.Logger = slog.New(slog.DiscardHandler)
	}
	res.Logger = res.Logger.With("connector", c.ConnectorName)
	var mp metric.MeterProvider = noop.NewMeterProvider()
	if o.telemetry != nil {
		mp = o.telemetry.MeterProvider()
	}
	res.Meter = telemetry.Labeled(mp.Meter(connectorScope), attribute.String("connector", c.ConnectorName))
	return res
}

// connectorScope is the instrumentation scope of connectors' own instruments.
const connectorScope = "github.com/danube-messaging/danube-connect-go/connector"
