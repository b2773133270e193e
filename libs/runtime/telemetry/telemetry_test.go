package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerSharedByTwoConnectors(t *testing.T) {
	s, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		http.DefaultClient.CloseIdleConnections()
	}()
	base := "http://" + addr.String()

	sink, _ := telemetry.NewMetrics(s.MeterProvider(), "sink-1")
	src, _ := telemetry.NewMetrics(s.MeterProvider(), "source-1")
	sink.Received(3)
	sink.Processed(2)
	sink.Failed(1, "invalid_data")
	sink.DeadLettered(1)
	sink.Batch(2, 0.01)
	src.Received(5)
	src.Lag(42)

	code, body := get(t, base+"/metrics")
	for _, want := range []string{
		`connector_records_received_total{connector="sink-1"} 3`,
		`connector_records_received_total{connector="source-1"} 5`,
		`connector_records_processed_total{connector="sink-1"} 2`,
		`connector_records_failed_total{class="invalid_data",connector="sink-1"} 1`,
		`connector_records_dead_lettered_total{connector="sink-1"} 1`,
		`connector_records_in_flight{connector="sink-1"} 0`,
		`connector_records_in_flight{connector="source-1"} 5`,
		`connector_batch_size_count{connector="sink-1"} 1`,
		`connector_source_lag{connector="source-1"} 42`,
		`connector_processing_duration_seconds_count{connector="sink-1"} 1`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}

	if code, body = get(t, base+"/readyz"); code != 503 || body != "starting: no readiness checks registered yet\n" {
		t.Fatalf("readyz with no checks %d %q", code, body)
	}
	var danube, leader telemetry.Flag
	s.AddReadiness("sink-1/danube", danube.Check)
	remove := s.AddReadiness("source-1/leadership", leader.Check)
	danube.Set(nil)
	code, body = get(t, base+"/readyz")
	if code != 503 || body != "source-1/leadership: starting\n" {
		t.Fatalf("readyz %d %q", code, body)
	}
	leader.Set(errors.New("waiting for leadership"))
	if code, body = get(t, base+"/readyz"); code != 503 || body != "source-1/leadership: waiting for leadership\n" {
		t.Fatalf("readyz %d %q", code, body)
	}
	leader.Set(nil)
	if code, body = get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("readyz %d %q", code, body)
	}
	remove()
	danube.Set(errors.New("broker unreachable"))
	if code, body = get(t, base+"/readyz"); code != 503 || body != "sink-1/danube: broker unreachable\n" {
		t.Fatalf("readyz %d %q", code, body)
	}
	if code, body = get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("t").Start(context.Background(), "publish")
	attrs := map[string]string{"k": "v"}
	telemetry.Inject(ctx, attrs)
	want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
	if attrs[telemetry.TraceParent] != want {
		t.Fatalf("traceparent %q, want %q", attrs[telemetry.TraceParent], want)
	}
	got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), attrs))
	if !got.IsRemote() || got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("extracted %+v", got)
	}
	if ctx := telemetry.Extract(context.Background(), map[string]string{}); trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("span from nothing")
	}
	// No span, nothing injected.
	empty := map[string]string{}
	telemetry.Inject(context.Background(), empty)
	if len(empty) != 0 {
		t.Fatalf("injected %v", empty)
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	var f telemetry.LogFormat
	if err := f.UnmarshalText([]byte("TEXT")); err != nil || f != telemetry.Text {
		t.Fatal(f, err)
	}
	if err := f.UnmarshalText([]byte("xml")); err == nil || err.Error() != `want "json" or "text"` {
		t.Fatal(err)
	}
	telemetry.NewLogger(&buf, slog.LevelWarn, telemetry.Text).Info("hidden")
	telemetry.NewLogger(&buf, slog.LevelInfo, telemetry.Text).Info("shown", "k", 1)
	telemetry.NewLogger(&buf, slog.LevelInfo, telemetry.JSON).Info("json")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `msg=shown k=1`) || !strings.Contains(lines[1], `"msg":"json"`) {
		t.Fatalf("%q", lines)
	}
}

func TestSetupTracingNoopWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := telemetry.SetupTracing(context.Background(), "x")
	if err != nil || shutdown(context.Background()) != nil {
		t.Fatal(err)
	}
}

// A nil *Metrics records nothing and never panics, so runners need no telemetry server.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *telemetry.Metrics
	m.Received(1)
	m.Processed(1)
	m.Failed(1, "fatal")
	m.Retried(1)
	m.DeadLettered(1)
	m.Published(1)
	m.Dropped(1)
	m.Reconnected()
	m.Batch(1, 0.5)
	m.Lag(3)
}
