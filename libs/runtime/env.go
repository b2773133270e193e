package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

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

// host is what the engines use of e; busy marks their connector calls, policy paces retries.
func (e *env) host(busy *liveness, policy retry.Policy) host.Host {
	return host.Host{Client: e.client, Log: e.log, Metrics: e.metrics, Danube: e.danube, Busy: busy,
		Retry: func(ctx context.Context, what string, retryable func(error) bool, op func(context.Context) error) error {
			return e.retryDanube(ctx, policy, what, retryable, op)
		}}
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
