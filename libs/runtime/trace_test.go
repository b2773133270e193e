package runtime_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

type spanSink struct {
	runtime.SinkBase
	mu  sync.Mutex
	got []trace.SpanContext
	ch  chan struct{}
}

func (s *spanSink) Process(ctx context.Context, r *runtime.SinkRecord) error {
	s.mu.Lock()
	s.got = append(s.got, trace.SpanContextFromContext(r.Context()))
	s.mu.Unlock()
	s.ch <- struct{}{}
	return nil
}

// The source's publish span travels in the "traceparent" attribute; the sink continues it.
func TestTraceparentFromSourceToSink(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer func() { otel.SetTracerProvider(prev); tp.Shutdown(context.Background()) }()

	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/traced")
	col := runtimetest.Collect(t, b, "/default/traced", "r")
	sink := &spanSink{ch: make(chan struct{}, 1)}
	rs := runtimetest.StartSink(t, runtimetest.SinkConfig(b, "traced-sink", "/default/traced"), sink)
	src := &streaming{in: make(chan runtime.SourceRecord[int])}
	rsrc := runtimetest.StartSource(t, runtimetest.SourceConfig(b, "traced-src", "/default/traced"), src, true)
	src.in <- runtime.SourceRecord[int]{Payload: []byte("x")}
	<-sink.ch
	m := col.WaitFor(t, "1 message", func(ms []*danube.Message) bool { return len(ms) == 1 })[0]
	if err := rsrc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	var publish sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "publish /default/traced" {
			publish = s
		}
	}
	if publish == nil {
		t.Fatalf("no publish span among %d", len(rec.Ended()))
	}
	want := "00-" + publish.SpanContext().TraceID().String() + "-" + publish.SpanContext().SpanID().String() + "-01"
	if m.Attributes[telemetry.TraceParent] != want {
		t.Fatalf("traceparent %q, want %q", m.Attributes[telemetry.TraceParent], want)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if got := sink.got[0]; got.TraceID() != publish.SpanContext().TraceID() {
		t.Fatalf("sink span trace %s, want %s", got.TraceID(), publish.SpanContext().TraceID())
	}
}
