package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesink"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesource"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

func appendLines(t *testing.T, path string, lines ...string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := f.Stat()
	return st.Size()
}

func newFileSource(cfg *runtime.SourceConfig, dir string) runtime.SourceConnector[filesource.Offset] {
	c, _ := filesource.New(&filesource.Config{SourceConfig: *cfg, Input: filepath.Join(dir, "in"), Checkpoint: filepath.Join(dir, "cp")}, runtime.NewResources(&cfg.Common))
	return c
}

// One source, many destination topics (per-record Topic), routing keys kept, and the committed
// position is the ordered watermark: the checkpoint reaches the end only after all were acked.
func TestSourceManyTopicsOrderedWatermark(t *testing.T) {
	b := runtimetest.StartBroker(t)
	for _, tp := range []string{"/default/users", "/default/orders", "/default/fallback"} {
		runtimetest.CreateTopic(t, b, tp)
	}
	users := runtimetest.Collect(t, b, "/default/users", "r")
	orders := runtimetest.Collect(t, b, "/default/orders", "r")
	fallback := runtimetest.Collect(t, b, "/default/fallback", "r")
	dir := t.TempDir()
	cfg := runtimetest.SourceConfig(b, "cdc", "/default/fallback")
	r := runtimetest.StartSource(t, cfg, newFileSource(cfg, dir), true)
	end := appendLines(t, filepath.Join(dir, "in"),
		`{"topic":"/default/users","key":"u1","v":1}`,
		`{"topic":"/default/orders","key":"o1","v":2}`,
		`{"topic":"/default/users","key":"u1","v":3}`,
		`{"v":4}`,
	)
	u := users.WaitFor(t, "2 users", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	orders.WaitFor(t, "1 order", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	fallback.WaitFor(t, "1 fallback", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	if u[0].Key != "u1" || !strings.Contains(string(u[1].Payload), `"v":3`) {
		t.Fatalf("users got key %q payloads %q", u[0].Key, users.Payloads())
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	cp, _ := os.ReadFile(filepath.Join(dir, "cp"))
	if string(cp) != strconv.FormatInt(end, 10) {
		t.Fatalf("checkpoint %q, want %d (end of input)", cp, end)
	}
}

// streaming is a push source: Poll blocks on a channel (no sleep), each record has a per-record
// callback (like an MQTT PUBACK) and a position.
type streaming struct {
	runtime.SourceBase
	in       chan runtime.SourceRecord[int]
	mu       sync.Mutex
	acked    []string
	commits  []int
	inflight int
	maxSeen  int
}

func (s *streaming) Poll(ctx context.Context) ([]runtime.SourceRecord[int], error) {
	select {
	case r := <-s.in:
		s.mu.Lock()
		if s.inflight > s.maxSeen {
			s.maxSeen = s.inflight
		}
		s.inflight++
		s.mu.Unlock()
		p := string(r.Payload)
		r.OnAck = func(err error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.inflight--
			if err == nil {
				s.acked = append(s.acked, p)
			}
		}
		return []runtime.SourceRecord[int]{r}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *streaming) Commit(_ context.Context, ps []int) error {
	s.mu.Lock()
	s.commits = append(s.commits, ps...)
	s.mu.Unlock()
	return nil
}

func TestSourcePerRecordAckAndBoundedInFlight(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/iot")
	col := runtimetest.Collect(t, b, "/default/iot", "r")
	cfg := runtimetest.SourceConfig(b, "mqtt", "/default/iot")
	cfg.MaxInFlight = 2
	s := &streaming{in: make(chan runtime.SourceRecord[int])}
	r := runtimetest.StartSource(t, cfg, s, true)
	var want []string
	for i := range 20 {
		p := "m" + strconv.Itoa(i)
		want = append(want, p)
		s.in <- runtime.NewSourceRecord("", []byte(p), i)
	}
	col.WaitFor(t, "20 messages", func(ms []*danube.Message) bool { return len(ms) >= 20 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Equal(s.acked, want) || !slices.Equal(col.Payloads(), want) {
		t.Fatalf("acked %q, received %q", s.acked, col.Payloads())
	}
	if len(s.commits) != 20 || s.commits[19] != 19 || !slices.IsSorted(s.commits) {
		t.Fatalf("commits %v", s.commits)
	}
	if s.maxSeen > cfg.MaxInFlight {
		t.Fatalf("%d records in flight at a Poll, MAX_IN_FLIGHT=%d", s.maxSeen, cfg.MaxInFlight)
	}
}

// Two replicas with a leadership lock: the second stays not ready (and reads nothing) until the
// first stops.
func TestSourceNotReadyWhileWaitingForLeadership(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/ha")
	col := runtimetest.Collect(t, b, "/default/ha", "r")
	dir := t.TempDir()
	mk := func(name string) (*runtime.SourceConfig, runtime.SourceConnector[filesource.Offset]) {
		cfg := runtimetest.SourceConfig(b, name, "/default/ha")
		c, _ := filesource.New(&filesource.Config{SourceConfig: *cfg, Input: filepath.Join(dir, "in"), Checkpoint: filepath.Join(dir, "cp"), Lock: filepath.Join(dir, "lock")}, runtime.NewResources(&cfg.Common))
		return cfg, c
	}
	cfg1, c1 := mk("replica-1")
	leader := runtimetest.StartSource(t, cfg1, c1, true)
	cfg2, c2 := mk("replica-2")
	standby := runtimetest.StartSource(t, cfg2, c2, false)
	appendLines(t, filepath.Join(dir, "in"), `{"n":1}`)
	col.WaitFor(t, "first line", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	err := standby.Telemetry.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "replica-2/external: waiting for leadership") {
		t.Fatalf("standby readiness: %v", err)
	}
	if err := leader.Stop(); err != nil {
		t.Fatal(err)
	}
	standby.WaitReady(t)
	appendLines(t, filepath.Join(dir, "in"), `{"n":2}`)
	got := col.WaitFor(t, "second line", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	if len(got) != 2 || string(got[1].Payload) != `{"n":2}` {
		t.Fatalf("received %q (the standby must resume from the leader's checkpoint)", col.Payloads())
	}
	if err := standby.Stop(); err != nil {
		t.Fatal(err)
	}
}

// A sink and a source in one process share one metrics and health server.
func TestSharedTelemetryServer(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/bridge")
	srv, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	dir := t.TempDir()
	srcCfg := runtimetest.SourceConfig(b, "import", "/default/bridge")
	sinkCfg := runtimetest.SinkConfig(b, "export", "/default/bridge")
	sink, _ := filesink.New(&filesink.Config{SinkConfig: *sinkCfg, Path: filepath.Join(dir, "out")}, runtime.NewResources(&sinkCfg.Common))
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	probe := &runtimetest.Running{Telemetry: srv}
	go func() { errs <- runtime.RunSink(ctx, sinkCfg, sink, runtime.WithTelemetry(srv)) }()
	probe.WaitReady(t) // subscribed: a new subscription starts at the tail
	go func() { errs <- runtime.RunSource(ctx, srcCfg, newFileSource(srcCfg, dir), runtime.WithTelemetry(srv)) }()
	appendLines(t, filepath.Join(dir, "in"), `{"a":1}`, `{"a":2}`)
	probe.WaitMetric(t, `connector_records_processed_total{connector="export"}`, 2)
	probe.WaitMetric(t, `connector_records_processed_total{connector="import"}`, 2)
	if err := srv.Ready(context.Background()); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if lag := probe.Metric(t, `connector_source_lag{connector="import"}`); lag != 0 {
		t.Fatalf("source lag %v after reading everything", lag)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out"))
	if string(out) != "{\"a\":1}\n{\"a\":2}\n" {
		t.Fatalf("sink wrote %q", out)
	}
	cancel()
	if err := errors.Join(<-errs, <-errs); err != nil {
		t.Fatal(err)
	}
	if err := srv.Ready(context.Background()); err == nil || err.Error() != "starting: no readiness checks registered yet" {
		t.Fatalf("after both stopped: %v", err)
	}
}

// A publish Danube will never accept stops the source at once with the topic, the record and the
// broker's answer, instead of retrying until the shutdown timeout; nothing after it is committed.
func TestSourcePermanentRejectionIsFatal(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/rejects")
	cfg := runtimetest.SourceConfig(b, "rejecting", "/default/rejects")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 2)}
	r := runtimetest.StartSource(t, cfg, s, true)
	b.FailNext("/danube.ProducerService/SendMessage", 1, codes.InvalidArgument)
	s.in <- runtime.NewSourceRecord("", []byte("too big"), 41)
	err := r.Wait()
	want := `runtime: Danube refused a record for topic "/default/rejects" for good (position 41, 7 bytes): ` +
		`danube: send to topic "/default/rejects" (producer "rejecting"): rpc error: code = InvalidArgument desc = ` +
		`injected fault: /danube.ProducerService/SendMessage fails with InvalidArgument (0 more); ` +
		`set DLQ_TOPIC to dead-letter such records and go on`
	if err == nil || err.Error() != want || !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.commits) != 0 || len(s.acked) != 0 {
		t.Fatalf("commits %v, acked %v after a rejected record", s.commits, s.acked)
	}
}

// A topic Danube refuses to create for good (here a partition of a topic that exists
// non-partitioned) stops the source with the reason, instead of retrying forever.
func TestSourceTopicClashIsFatal(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/clash")
	cfg := runtimetest.SourceConfig(b, "clashing", "/default/clash")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 1)}
	r := runtimetest.StartSource(t, cfg, s, true)
	s.in <- runtime.NewSourceRecord("/default/clash-part-0", []byte("x"), 1)
	err := r.Wait()
	if err == nil || !errors.Is(err, runtime.ErrFatal) || status.Code(err) != codes.AlreadyExists ||
		!strings.Contains(err.Error(), `runtime: create producer on "/default/clash-part-0": `) ||
		!strings.HasSuffix(err.Error(), `(Danube refuses to create a topic named like a partition of an existing `+
			`non-partitioned topic, or the reverse: "/default/clash" and its -part-N names cannot both exist)`) {
		t.Fatalf("got %v", err)
	}
}

// finite is a bounded source: its records in one Poll, then ErrSourceDone with them.
type finite struct {
	runtime.SourceBase
	payloads []string
	mu       sync.Mutex
	commits  []int
}

func (f *finite) Poll(context.Context) ([]runtime.SourceRecord[int], error) {
	recs := make([]runtime.SourceRecord[int], len(f.payloads))
	for i, p := range f.payloads {
		recs[i] = runtime.NewSourceRecord("", []byte(p), i)
	}
	return recs, fmt.Errorf("end of input: %w", runtime.ErrSourceDone)
}

func (f *finite) Commit(_ context.Context, ps []int) error {
	f.mu.Lock()
	f.commits = append(f.commits, ps...)
	f.mu.Unlock()
	return nil
}

// A source that returns ErrSourceDone ends the run by itself, with nil, only once Danube acked
// every record and the last position is committed.
func TestSourceDoneDrainsAndReturnsNil(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/bounded")
	col := runtimetest.Collect(t, b, "/default/bounded", "r")
	cfg := runtimetest.SourceConfig(b, "bounded", "/default/bounded")
	f := &finite{payloads: []string{"a", "b", "c", "d", "e"}}
	r := runtimetest.StartSource(t, cfg, f, false)
	if err := r.Wait(); err != nil {
		t.Fatalf("run ended with %v, want nil", err)
	}
	col.WaitFor(t, "5 messages", func(ms []*danube.Message) bool { return len(ms) >= 5 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(col.Payloads(), f.payloads) || len(f.commits) == 0 || f.commits[len(f.commits)-1] != 4 {
		t.Fatalf("received %q, commits %v; want every record and a last commit of 4", col.Payloads(), f.commits)
	}
}
