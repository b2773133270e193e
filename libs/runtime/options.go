package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Option configures RunSink and RunSource.
type Option func(*options)

type options struct {
	client    *danube.Client
	logger    *slog.Logger
	telemetry *telemetry.Server
}

// WithClient makes the runner use c instead of building its own from the config. The runner does
// not close it. Readiness then reflects only subscribe and send outcomes, not the client's
// reconnect events (those go to the hooks c was built with).
func WithClient(c *danube.Client) Option { return func(o *options) { o.client = c } }

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
	danube   *telemetry.Flag
	cleanup  []func()
	name     string
	server   *telemetry.Server
}

// watch registers the connector's own health check, once Initialize returned (so a connector need
// not guard Initialize against a concurrent HealthCheck).
func (e *env) watch(health telemetry.Check) {
	if e.server != nil {
		e.cleanup = append(e.cleanup, e.server.AddReadiness(e.name+"/external", health))
	}
}

func newEnv(c *Common, kind string, opts []Option) (*env, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	e := &env{log: o.logger, danube: &telemetry.Flag{}}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e.log = e.log.With("connector", c.ConnectorName, "kind", kind)
	if o.telemetry != nil {
		m, err := telemetry.NewMetrics(o.telemetry.MeterProvider(), c.ConnectorName)
		if err != nil {
			return nil, err
		}
		e.metrics = m
		e.name, e.server = c.ConnectorName, o.telemetry
		e.cleanup = append(e.cleanup, o.telemetry.AddReadiness(c.ConnectorName+"/danube", e.danube.Check))
	}
	if o.client != nil {
		e.client = o.client
		return e, nil
	}
	copts := append(c.ClientOptions(), danube.WithLogger(e.log), danube.WithBackoff(c.Retry()), danube.WithHooks(danube.Hooks{
		OnReconnect: func(ev danube.ReconnectEvent) {
			if ev.Err != nil {
				e.danube.Set(fmt.Errorf("%s %s: %w", ev.Kind, ev.Topic, ev.Err))
			} else {
				e.danube.Set(nil)
			}
		},
		OnSend: func(ev danube.SendEvent) {
			if ev.Err != nil {
				e.danube.Set(fmt.Errorf("send to %s: %w", ev.Topic, ev.Err))
			} else {
				e.danube.Set(nil)
			}
		},
		OnAck: func(ev danube.AckEvent) {
			if ev.Err == nil {
				e.danube.Set(nil)
			}
		},
		OnRetry: func(ev danube.RetryEvent) {
			e.danube.Set(fmt.Errorf("%s %s: retrying: %w", ev.Op, ev.Topic, ev.Err))
		},
	}))
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
