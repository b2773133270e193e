package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// A checkpoint record publishes nothing, yet its position is committed in source order: not before
// an earlier record still being published, and at once on an otherwise idle stream.
func TestCheckpointRecordAdvancesWatermark(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/cdc")
	col := runtimetest.Collect(t, b, "/default/cdc", "r")
	cfg := runtimetest.SourceConfig(b, "cdc-checkpoints", "/default/cdc")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 4)}
	r := runtimetest.StartSource(t, cfg, s, true)
	// The first publish fails twice (retried), while the checkpoint behind it is already polled.
	b.FailNext("/danube.ProducerService/SendMessage", 2, codes.Unavailable)
	s.in <- runtime.NewSourceRecord("", []byte("row-1"), 1)
	s.in <- runtime.Checkpoint(2)
	waitCommits(t, s, []int{1, 2})
	s.in <- runtime.Checkpoint(3) // idle, filtered stream: only keepalives
	waitCommits(t, s, []int{1, 2, 3})
	col.WaitFor(t, "row-1", func(ms []*danube.Message) bool { return len(ms) > 0 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := col.Payloads(); !slices.Equal(got, []string{"row-1"}) {
		t.Fatalf("published %q, want only row-1", got)
	}
}

func waitCommits(t *testing.T, s *streaming, want []int) {
	t.Helper()
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		s.mu.Lock()
		got := slices.Clone(s.commits)
		s.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			t.Fatalf("commits %v, want %v", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// flaky is an external system that can go down: while down, writes and reconnects fail.
type flaky struct {
	runtime.SinkBase
	down       atomic.Bool
	reconnects atomic.Int64
	mu         sync.Mutex
	written    []string
	calls      int
}

func (f *flaky) Process(_ context.Context, r *runtime.SinkRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down.Load() {
		return runtime.Disconnected(errors.New("connection reset by peer"))
	}
	f.written = append(f.written, string(r.Payload()))
	return nil
}

func (f *flaky) Reconnect(context.Context) error {
	f.reconnects.Add(1)
	if f.down.Load() {
		return errors.New("dial: connection refused")
	}
	return nil
}

func (f *flaky) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.written)
}

// A lost connection is not the records' fault: the sink reports not ready, reconnects with
// backoff and writes everything, in order, without spending a retry (MAX_RETRIES=0 with
// RETRY_EXHAUSTED=stop would stop it at the first retryable failure) and without exiting.
func TestSinkReconnectLosesNothing(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/reconnect"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "reconnecting", topic)
	cfg.MaxRetries, cfg.RetryExhausted = 0, runtime.StopOnExhausted
	f := &flaky{}
	r := runtimetest.StartSink(t, cfg, f)
	runtimetest.Produce(t, b, topic, runtimetest.Payloads("m0", "m1", "m2")...)
	waitWritten(t, f, 3)
	f.down.Store(true)
	runtimetest.Produce(t, b, topic, runtimetest.Payloads("m3", "m4", "m5")...)
	waitUntil(t, "reconnect attempts while down", func() bool { return f.reconnects.Load() >= 2 })
	err := r.Telemetry.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "reconnecting/external: external connection lost, reconnecting: dial: connection refused") {
		t.Fatalf("readiness while down: %v", err)
	}
	f.down.Store(false)
	waitWritten(t, f, 6)
	r.WaitReady(t)
	r.WaitMetric(t, `connector_reconnects_total{connector="reconnecting"}`, 1)
	if r.Done() {
		t.Fatalf("sink stopped: %v", r.Wait())
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := f.snapshot(); !slices.Equal(got, []string{"m0", "m1", "m2", "m3", "m4", "m5"}) {
		t.Fatalf("written %q, want m0..m5 once, in order", got)
	}
}

// A HealthCheck that finds the connection gone starts a reconnect on its own, so an idle sink
// heals before the next record needs it.
type idleProbe struct {
	flaky
	healthy atomic.Bool
}

func (p *idleProbe) HealthCheck(context.Context) error {
	if !p.healthy.Load() {
		return runtime.Disconnected(errors.New("keepalive timed out"))
	}
	return nil
}

func (p *idleProbe) Reconnect(ctx context.Context) error {
	p.healthy.Store(true)
	return p.flaky.Reconnect(ctx)
}

func TestHealthCheckDisconnectedReconnects(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/idle"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "idle", topic)
	p := &idleProbe{}
	p.healthy.Store(true)
	r := runtimetest.StartSink(t, cfg, p)
	p.healthy.Store(false)
	if err := r.Telemetry.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "keepalive timed out") {
		t.Fatalf("readiness with a dead connection: %v", err)
	}
	r.WaitReady(t) // the background reconnect restored it
	if p.reconnects.Load() != 1 {
		t.Fatalf("%d reconnects, want 1", p.reconnects.Load())
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// reconnectingSource loses its connection once in Poll and once in Commit.
type reconnectingSource struct {
	streaming
	pollLost, commitLost atomic.Bool
	reconnects           atomic.Int64
}

func (s *reconnectingSource) Poll(ctx context.Context) ([]runtime.SourceRecord[int], error) {
	if s.pollLost.CompareAndSwap(true, false) {
		return nil, runtime.Disconnected(errors.New("replication stream closed"))
	}
	return s.streaming.Poll(ctx)
}

func (s *reconnectingSource) Commit(ctx context.Context, ps []int) error {
	if s.commitLost.CompareAndSwap(true, false) {
		return runtime.Disconnected(errors.New("standby status update: broken pipe"))
	}
	return s.streaming.Commit(ctx, ps)
}

func (s *reconnectingSource) Reconnect(context.Context) error {
	s.reconnects.Add(1)
	return nil
}

func TestSourceReconnectLosesNothing(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/src-reconnect")
	col := runtimetest.Collect(t, b, "/default/src-reconnect", "r")
	cfg := runtimetest.SourceConfig(b, "src-reconnect", "/default/src-reconnect")
	s := &reconnectingSource{streaming: streaming{in: make(chan runtime.SourceRecord[int], 10)}}
	s.pollLost.Store(true)
	s.commitLost.Store(true)
	r := runtimetest.StartSource(t, cfg, s, false)
	for i := range 5 {
		s.in <- runtime.NewSourceRecord("", []byte(fmt.Sprint("r", i)), i)
	}
	col.WaitFor(t, "5 records", func(ms []*danube.Message) bool { return len(ms) >= 5 })
	waitUntil(t, "commit of position 4", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.commits) > 0 && s.commits[len(s.commits)-1] == 4
	})
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got, n := col.Payloads(), s.reconnects.Load(); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) || n != 2 {
		t.Fatalf("published %q after %d reconnects, want r0..r4 after 2", got, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.IsSorted(s.commits) || slices.Compact(slices.Clone(s.commits))[0] != 0 {
		t.Fatalf("commits %v: want every position from 0, in order", s.commits)
	}
}

// A connector's own instruments, made from Resources.Meter, are served on the runtime's /metrics
// with the connector's name.
func TestResourcesMeterServedOnMetrics(t *testing.T) {
	srv, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	res := runtime.NewResources(&runtime.Common{ConnectorName: "ch-1"}, runtime.WithTelemetry(srv))
	if res.Name != "ch-1" || res.Logger == nil || res.Tracer == nil {
		t.Fatalf("resources %+v", res)
	}
	rows, err := res.Meter.Int64Counter("clickhouse.rows.inserted")
	if err != nil {
		t.Fatal(err)
	}
	rows.Add(context.Background(), 42)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	var line string
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "clickhouse_rows_inserted_total{") {
			line = l
		}
	}
	if !strings.Contains(line, `connector="ch-1"`) || !strings.HasSuffix(line, " 42") {
		t.Fatalf("metrics line %q in:\n%s", line, rec.Body.String())
	}
}

// With DANUBE_ADMIN_URL the sink sizes its subscription's window for its batches and applies the
// failure settings it was given.
func TestSinkConfiguresSubscriptionThroughAdmin(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/windowed"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "windowed", topic)
	cfg.DanubeAdminURL = "http://" + b.AdminAddr()
	cfg.BatchSize = 300
	cfg.PoisonPolicy, cfg.DLQTopic, cfg.MaxRedeliveries = runtime.PoisonDeadLetter, "/default/windowed-dlq", 8
	r := runtimetest.StartSink(t, cfg, newScripted(nil))
	admin, err := danube.NewAdmin(cfg.DanubeAdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// Requested and stored; a v0.15.1 broker (and so the development broker) dispatches with its
	// default window all the same.
	if n, err := admin.SubscriptionWindow(context.Background(), topic, cfg.SubscriptionName); err != nil || n != 600 {
		t.Fatalf("subscription window %d, %v; want 600", n, err)
	}
	p, err := admin.SubscriptionFailurePolicy(context.Background(), topic, cfg.SubscriptionName)
	if err != nil {
		t.Fatal(err)
	}
	if p.Poison != danube.PoisonDeadLetter || p.DeadLetterTopic != "/default/windowed-dlq" || p.MaxRedeliveries != 8 ||
		p.AckTimeout != 2*time.Second { // the test broker's, untouched
		t.Fatalf("failure policy %+v", p)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

func waitWritten(t *testing.T, f *flaky, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprint(n, " records written"), func() bool { return len(f.snapshot()) >= n })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(runtimetest.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
