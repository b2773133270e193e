package sinkhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

// Connector is the HTTP sink: a runtime.BatchSinkConnector around a webhook.Sender; in
// BATCH_MODE=single it is also a runtime.ConcurrentSinkConnector, so with MAX_IN_FLIGHT above 1
// records stream to that many concurrent requests with no batch barrier.
type Connector struct {
	runtime.SinkBase
	sender     *webhook.Sender
	concurrent bool
}

// Option customises New.
type Option func(*options)

type options struct {
	hooks  webhook.Hooks
	logger *slog.Logger
}

// WithHooks observes every HTTP attempt, retry wait and breaker change (metrics, progress displays).
func WithHooks(h webhook.Hooks) Option { return func(o *options) { o.hooks = h } }

// WithLogger sets the logger for the engine's warnings (disabled TLS verification, breaker
// state); default: slog.Default() tagged with the connector's name.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// New builds the connector for cfg (already loaded and validated by config.Load).
func New(cfg *Config, opts ...Option) (*Connector, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	wc, err := cfg.webhookConfig()
	if err != nil {
		return nil, err
	}
	wc.Hooks, wc.Logger = o.hooks, o.logger
	if wc.Logger == nil {
		wc.Logger = slog.Default().With("connector", cfg.ConnectorName)
	}
	s, err := webhook.New(wc)
	if err != nil {
		return nil, err
	}
	return &Connector{sender: s, concurrent: cfg.BatchMode == Single}, nil
}

// NewConnector is New in the shape runtime.MainSink wants: it logs with the runtime's logger
// (LOG_LEVEL, LOG_FORMAT), so the engine's warnings look like every other line.
func NewConnector(cfg *Config, res runtime.Resources) (runtime.SinkConnector, error) {
	return New(cfg, WithLogger(res.Logger))
}

// Concurrent is true in BATCH_MODE=single: the runtime then runs MAX_IN_FLIGHT Process calls at
// once, in routing-key order. Array bodies are built from runtime batches.
func (c *Connector) Concurrent() bool { return c.concurrent }

// Process delivers one record; it is safe for concurrent use.
func (c *Connector) Process(ctx context.Context, r *runtime.SinkRecord) error {
	return c.classify(c.sender.Deliver(ctx, []webhook.Message{message(r)})[0])
}

// ProcessBatch delivers a runtime batch with up to MAX_IN_FLIGHT concurrent requests and reports
// each record's outcome, so the runtime acks what was delivered and retries or dead-letters the rest.
func (c *Connector) ProcessBatch(ctx context.Context, recs []*runtime.SinkRecord) error {
	msgs := make([]webhook.Message, len(recs))
	for i, r := range recs {
		msgs[i] = message(r)
	}
	errs := c.sender.Deliver(ctx, msgs)
	failed := false
	for i, err := range errs {
		errs[i] = c.classify(err)
		failed = failed || err != nil
	}
	if !failed {
		return nil
	}
	return &runtime.BatchError{Errs: errs}
}

// classify turns an engine outcome into the runtime's error classes.
func (c *Connector) classify(err error) error {
	if err == nil {
		return nil
	}
	var e *webhook.Error
	if errors.As(err, &e) && !e.Retryable() {
		return runtime.InvalidData(fmt.Errorf("endpoint rejected the message: %w", err))
	}
	if errors.As(err, &e) && e.After > 0 {
		return runtime.RetryableAfter(err, e.After)
	}
	return runtime.Retryable(err)
}

// HealthCheck fails while the circuit breaker is open, so /readyz shows that the endpoint is down.
func (c *Connector) HealthCheck(context.Context) error {
	if st := c.sender.BreakerState(); st == "open" {
		return fmt.Errorf("webhook endpoint failing: circuit breaker %s", st)
	}
	return nil
}

// Shutdown releases idle connections.
func (c *Connector) Shutdown(context.Context) error { return c.sender.Close() }

// message converts a runtime record; the W3C trace context of the record rides along as headers.
func message(r *runtime.SinkRecord) webhook.Message {
	m := r.Message
	var headers map[string]string
	if trace.SpanContextFromContext(r.Context()).IsValid() { // most messages carry no trace: no map
		headers = make(map[string]string, 2)
		telemetry.Inject(r.Context(), headers)
	}
	return webhook.Message{
		Topic: m.Topic, Offset: m.Offset, ProducerID: m.ProducerID, RequestID: m.RequestID, Key: m.Key,
		Payload: m.Payload, Attributes: m.Attributes, PublishTime: m.PublishTime, Headers: headers,
	}
}
