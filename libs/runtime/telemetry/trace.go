package telemetry

import (
	"context"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TraceParent is the Danube message attribute that carries the W3C trace context.
const TraceParent = "traceparent"

var propagator = propagation.TraceContext{}

// Inject writes ctx's span context into attrs as "traceparent" (and "tracestate" when present).
// attrs must be non-nil. Nothing is written when ctx has no valid span.
func Inject(ctx context.Context, attrs map[string]string) {
	propagator.Inject(ctx, propagation.MapCarrier(attrs))
}

// Extract returns ctx with the remote span context found in attrs, if any.
func Extract(ctx context.Context, attrs map[string]string) context.Context {
	if attrs[TraceParent] == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(attrs))
}

// Tracing reports whether spans are recorded: the global provider is an SDK provider (installed by
// SetupTracing, or by a test). Without one the runtime starts no span per record, and only passes
// an incoming traceparent on.
func Tracing() bool {
	_, sdk := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	return sdk
}

// Tracer is what the runtime creates its spans with (the global provider's).
func Tracer() trace.Tracer {
	return otel.Tracer("github.com/danube-messaging/danube-connect-go/libs/runtime")
}

// SetupTracing installs an OTLP trace exporter as the global provider when the standard
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable is set (protocol from
// OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" or the default "http/protobuf"; the exporters read the other
// OTEL_* variables themselves). Otherwise tracing stays a no-op. The returned func flushes and stops
// the exporter; it is never nil.
func SetupTracing(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return noop, nil
	}
	var exp sdktrace.SpanExporter
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return noop, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return noop, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	return tp.Shutdown, nil
}
