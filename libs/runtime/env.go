package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
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

// env is what a runner sets up around a connector: client, logger, metrics and readiness.
type env struct {
	client   *danube.Client
	ownsConn bool
	log      *slog.Logger
	metrics  *telemetry.Metrics
	danube   *telemetry.Flag // the Connection's flag: shared by the runners of one client
	cleanup  []func()
	name     string
	server   *telemetry.Server
	refusal  *refusal
}

// live registers a liveness check of this runner.
func (e *env) live(c telemetry.Check) {
	if e.server != nil {
		e.cleanup = append(e.cleanup, e.server.AddLiveness(e.name+"/loop", c))
	}
}

// ready registers a readiness check named name, removed on close.
func (e *env) ready(name string, c telemetry.Check) {
	if e.server != nil {
		e.cleanup = append(e.cleanup, e.server.AddReadiness(name, c))
	}
}

// workContext returns the context a runner works in. It outlives ctx by timeout (defaultShutdown
// when zero), so that what is in progress when ctx ends — a batch, acks, commits — can finish.
func workContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = defaultShutdown
	}
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(timeout, cancel) })
	return work, func() { stop(); cancel() }
}

// initialize calls conn.Initialize (in work) until it succeeds. An external system that is not
// reachable yet (a Disconnected error: in a compose stack the connector often starts before its
// database) is waited for with backoff until ctx ends, the reason on /readyz and in the log; any
// other error is one waiting cannot fix (credentials, a missing table) and is returned at once.
func (e *env) initialize(ctx, work context.Context, name string, conn lifecycle, policy retry.Policy) error {
	var waiting telemetry.Flag
	unwatch := func() {}
	defer func() { unwatch() }()
	err := policy.Forever().Do(ctx, func(context.Context) error {
		return conn.Initialize(work)
	}, func(err error) bool {
		return ClassOf(err) == ClassDisconnected
	}, func(attempt int, wait time.Duration, err error) {
		if attempt == 1 && e.server != nil {
			unwatch = e.server.AddReadiness(e.name+"/external", waiting.Check)
		}
		waiting.Set(fmt.Errorf("waiting for the external system: %w", err))
		e.log.Warn("external system not reachable yet; waiting", "attempt", attempt, "wait", wait, "err", err)
	})
	if err != nil {
		return fmt.Errorf("runtime: initialize connector %q: %w", name, err)
	}
	if e.server != nil {
		e.log.Info("external system reachable; connector initialized")
	}
	return nil
}

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

func newEnv(c *Common, kind string, opts []Option) (*env, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	conn := o.conn
	if conn == nil {
		conn = &Connection{}
	}
	e := &env{log: o.logger, danube: &conn.flag}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("connector", c.ConnectorName, "kind", kind)
	e.refusal = &refusal{log: e.log, failAfter: c.DanubeFailAfter.D()}
	if o.telemetry != nil {
		m, err := telemetry.NewMetrics(o.telemetry.MeterProvider(), c.ConnectorName)
		if err != nil {
			return nil, err
		}
		e.metrics = m
		e.cleanup = append(e.cleanup, func() { _ = m.Close() })
		e.name, e.server = c.ConnectorName, o.telemetry
		e.cleanup = append(e.cleanup, o.telemetry.AddReadiness(c.ConnectorName+"/danube", e.danube.Check))
		m.WatchDanube(e.danube.Check)
	}
	if o.client != nil {
		e.client = o.client
		return e, nil
	}
	// The client retries a refused call a few times itself: its retry events say so at once.
	hooks := conn.Hooks(danube.Hooks{OnRetry: func(ev danube.RetryEvent) { e.refusal.observe(ev.Err) }})
	copts := append(c.ClientOptions(), danube.WithLogger(e.log), danube.WithHooks(hooks))
	cl, err := danube.NewClient(c.DanubeServiceURL, copts...)
	if err != nil {
		return nil, fmt.Errorf("DANUBE_SERVICE_URL=%q: %w", c.DanubeServiceURL, err)
	}
	e.client, e.ownsConn = cl, true
	return e, nil
}

func (e *env) close() error {
	for _, f := range e.cleanup {
		f()
	}
	if e.ownsConn {
		return e.client.Close()
	}
	return nil
}

// stopped reports whether err is only the context ending.
func stopped(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// retryDanube runs op (a call to Danube) until it succeeds, fails in a way retryable rejects (nil:
// none) or ctx ends, waiting the runtime's jittered backoff between attempts; failures show on the
// Danube readiness check. Refused credentials end it after DANUBE_FAIL_AFTER_MS.
func (e *env) retryDanube(ctx context.Context, policy retry.Policy, what string, retryable func(error) bool, op func(context.Context) error) error {
	err := policy.Forever().Do(ctx, op, func(err error) bool {
		e.refusal.observe(err)
		return !e.refusal.expired() && (retryable == nil || retryable(err))
	}, func(attempt int, wait time.Duration, err error) {
		e.danube.Set(err)
		e.log.Warn(what+" failed; retrying", "attempt", attempt, "wait", wait, "err", err)
	})
	if err == nil {
		e.refusal.ok()
	} else if e.refusal.expired() {
		err = fmt.Errorf("%w for DANUBE_FAIL_AFTER_MS=%d: %w", errRefused, e.refusal.failAfter.Milliseconds(), err)
	}
	return err
}
