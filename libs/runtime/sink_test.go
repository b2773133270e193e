package runtime_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// scripted is an in-memory sink whose i-th call for a payload returns script[payload][i] (nil
// after the script ends), recording successful writes and batch boundaries.
type scripted struct {
	runtime.SinkBase
	mu      sync.Mutex
	script  map[string][]error
	calls   map[string]int
	written []string
	batches []string // "first-last" offsets per ProcessBatch call
	done    chan string
}

func newScripted(script map[string][]error) *scripted {
	return &scripted{script: script, calls: map[string]int{}, done: make(chan string, 100)}
}

func (s *scripted) Process(_ context.Context, r *runtime.SinkRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := string(r.Payload())
	n := s.calls[p]
	s.calls[p]++
	if n < len(s.script[p]) && s.script[p][n] != nil {
		return s.script[p][n]
	}
	s.written = append(s.written, p)
	s.done <- p
	return nil
}

func (s *scripted) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		<-s.done
	}
}

func (s *scripted) snapshot() ([]string, map[string]int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := map[string]int{}
	for k, v := range s.calls {
		calls[k] = v
	}
	return slices.Clone(s.written), calls, slices.Clone(s.batches)
}

// batched adds ProcessBatch with per-record results from the same script; with whole set it
// writes all or nothing, like a bulk INSERT.
type batched struct {
	*scripted
	whole bool
}

func (b batched) ProcessBatch(ctx context.Context, rs []*runtime.SinkRecord) error {
	b.mu.Lock()
	b.batches = append(b.batches, fmt.Sprintf("%d-%d", rs[0].Message.Offset, rs[len(rs)-1].Message.Offset))
	if b.whole {
		defer b.mu.Unlock()
		for _, r := range rs {
			p := string(r.Payload())
			n := b.calls[p]
			b.calls[p]++
			if n < len(b.script[p]) && b.script[p][n] != nil {
				return b.script[p][n]
			}
		}
		for _, r := range rs {
			b.written = append(b.written, string(r.Payload()))
			b.done <- string(r.Payload())
		}
		return nil
	}
	b.mu.Unlock()
	errs := make([]error, len(rs))
	failed := false
	for i, r := range rs {
		errs[i] = b.Process(ctx, r)
		failed = failed || errs[i] != nil
	}
	if failed {
		return &runtime.BatchError{Errs: errs}
	}
	return nil
}

func setupSink(t *testing.T, name string) (*runtime.SinkConfig, func(...string)) {
	b := runtimetest.StartBroker(t)
	topic := "/default/" + name
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, name, topic)
	return cfg, func(ps ...string) { runtimetest.Produce(t, b, topic, runtimetest.Payloads(ps...)...) }
}

func TestSinkRetriesThenAcks(t *testing.T) {
	cfg, produce := setupSink(t, "retry")
	transient := runtime.Retryable(errors.New("503"))
	s := newScripted(map[string][]error{"a": {transient, transient}})
	r := runtimetest.StartSink(t, cfg, s)
	produce("a", "b")
	s.wait(t, 2)
	r.WaitMetric(t, `connector_records_processed_total{connector="retry"}`, 2)
	written, calls, _ := s.snapshot()
	if !slices.Equal(written, []string{"a", "b"}) || calls["a"] != 3 || calls["b"] != 1 {
		t.Fatalf("written %q calls %v", written, calls)
	}
	if got := r.Metric(t, `connector_records_retried_total{connector="retry"}`); got != 2 {
		t.Fatalf("retried = %v", got)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSinkRetryExhaustedNacksForRedelivery(t *testing.T) {
	cfg, produce := setupSink(t, "nack")
	cfg.MaxRetries = 1
	transient := runtime.Retryable(errors.New("503"))
	// Two attempts fail (first delivery exhausted, nacked), the redelivery succeeds.
	s := newScripted(map[string][]error{"a": {transient, transient}})
	r := runtimetest.StartSink(t, cfg, s)
	produce("a")
	s.wait(t, 1)
	_, calls, _ := s.snapshot()
	if calls["a"] != 3 {
		t.Fatalf("calls %v, want 3 (2 before the nack, 1 after redelivery)", calls)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSinkRetryExhaustedStopExitsWithError(t *testing.T) {
	cfg, produce := setupSink(t, "stop")
	cfg.MaxRetries = 1
	cfg.RetryExhausted = runtime.StopOnExhausted
	s := newScripted(map[string][]error{"a": {errors.New("db down"), errors.New("db down")}})
	r := runtimetest.StartSink(t, cfg, s)
	produce("a")
	err := r.Wait()
	want := "runtime: /default/stop offset 0 (RETRY_EXHAUSTED=stop): retries exhausted after 2 attempts: db down"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestSinkInvalidWithoutDLQFollowsExhaustedPolicy(t *testing.T) {
	cfg, produce := setupSink(t, "nodlq")
	cfg.RetryExhausted = runtime.StopOnExhausted
	s := newScripted(map[string][]error{"bad": {runtime.InvalidData(errors.New("not a row"))}})
	r := runtimetest.StartSink(t, cfg, s)
	produce("bad")
	if err := r.Wait(); err == nil || !strings.Contains(err.Error(), "not a row") || !errors.Is(err, runtime.ErrInvalidData) {
		t.Fatalf("got %v", err)
	}
}

func TestSinkBatchPartialFailure(t *testing.T) {
	cfg, produce := setupSink(t, "partial")
	cfg.BatchSize = 4
	cfg.BatchTimeout = config.Millis(time.Minute) // the first batch is all four, however slow the machine
	cfg.DLQTopic = "/default/partial-dlq"
	s := newScripted(map[string][]error{
		"b": {runtime.InvalidData(errors.New("bad row"))},
		"c": {runtime.Retryable(errors.New("busy"))},
	})
	r := runtimetest.StartSink(t, cfg, batched{scripted: s})
	produce("a", "b", "c", "d")
	s.wait(t, 3)
	r.WaitMetric(t, `connector_records_dead_lettered_total{connector="partial"}`, 1)
	written, calls, batches := s.snapshot()
	// a and d written in the first call, c alone in the retry; b dead-lettered, never retried.
	if !slices.Equal(written, []string{"a", "d", "c"}) || calls["b"] != 1 || !slices.Equal(batches, []string{"0-3", "2-2"}) {
		t.Fatalf("written %q calls %v batches %q", written, calls, batches)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// keeper is a batch sink that keeps the records of its first call and, at each later call, notes
// their payloads.
type keeper struct {
	*scripted
	first []*runtime.SinkRecord
	seen  chan []string // the first call's payloads, as each later call begins
}

func (k *keeper) ProcessBatch(ctx context.Context, rs []*runtime.SinkRecord) error {
	if k.first == nil {
		k.first = rs
	} else {
		var ps []string
		for _, r := range k.first {
			ps = append(ps, cmp.Or(string(r.Payload()), "<dropped>"))
		}
		k.seen <- ps
	}
	return batched{scripted: k.scripted}.ProcessBatch(ctx, rs)
}

// Once a record is written the runtime drops its payload (its ack needs only the message's
// identity); a record that failed keeps it, for its retry and the dead-letter topic.
func TestSinkDropsPayloadOfWrittenRecords(t *testing.T) {
	cfg, produce := setupSink(t, "drops")
	cfg.BatchSize = 3
	cfg.BatchTimeout = config.Millis(time.Second)
	s := newScripted(map[string][]error{"b": {runtime.Retryable(errors.New("busy"))}})
	k := &keeper{scripted: s, seen: make(chan []string, 10)}
	r := runtimetest.StartSink(t, cfg, k)
	produce("a", "b", "c")
	s.wait(t, 3)
	r.WaitMetric(t, `connector_records_processed_total{connector="drops"}`, 3)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	// a and c written by the first call, b failed: as b is retried alone, only b has its payload.
	if got := <-k.seen; !slices.Equal(got, []string{"<dropped>", "b", "<dropped>"}) {
		t.Fatalf("payloads of the first batch when b is retried: %q", got)
	}
}

// Batches align to offsets: after a crash in batch 3-5 the restarted sink forms exactly 3-5 again
// (what makes ClickHouse insert deduplication work).
func TestSinkBatchBoundariesSurviveRestart(t *testing.T) {
	cfg, produce := setupSink(t, "aligned")
	cfg.BatchSize = 3
	cfg.BatchTimeout = config.Millis(time.Second) // batches fill by size even on a loaded machine
	crash := runtime.Fatal(errors.New("crash"))
	s := newScripted(map[string][]error{"m4": {crash}})
	r := runtimetest.StartSink(t, cfg, batched{s, true})
	produce("m0", "m1", "m2", "m3", "m4", "m5", "m6")
	if err := r.Wait(); !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("first run: %v", err)
	}
	_, _, first := s.snapshot()
	if !slices.Equal(first, []string{"0-2", "3-5"}) {
		t.Fatalf("first run batches %q", first)
	}
	s2 := newScripted(nil)
	r2 := runtimetest.StartSink(t, cfg, batched{s2, true})
	s2.wait(t, 4) // m3..m6
	written, _, batches := s2.snapshot()
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(batches, []string{"3-5", "6-6"}) || !slices.Equal(written, []string{"m3", "m4", "m5", "m6"}) {
		t.Fatalf("after restart batches %q written %q", batches, written)
	}
}

func TestSinkSeveralTopics(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/t1")
	runtimetest.CreateTopic(t, b, "/default/t2")
	cfg := runtimetest.SinkConfig(b, "multi", "/default/t1")
	cfg.Topics = append(cfg.Topics, "/default/t2")
	s := newScripted(nil)
	r := runtimetest.StartSink(t, cfg, s)
	runtimetest.Produce(t, b, "/default/t1", runtimetest.Payloads("one")...)
	runtimetest.Produce(t, b, "/default/t2", runtimetest.Payloads("two")...)
	s.wait(t, 2)
	written, _, _ := s.snapshot()
	slices.Sort(written)
	if !slices.Equal(written, []string{"one", "two"}) {
		t.Fatalf("written %q", written)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

var _ = danube.Reliable

// RETRY_EXHAUSTED=dlq: a record whose retries ran out goes to DLQ_TOPIC with the last error as the
// reason and is acked; the sink keeps running and writes what follows.
func TestSinkRetryExhaustedDeadLetters(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/exhaust")
	cfg := runtimetest.SinkConfig(b, "exhaust", "/default/exhaust")
	cfg.MaxRetries = 1
	// The canary that tells poison from an outage waits RETRY_BACKOFF_MS for the next record: long
	// enough that b has arrived however loaded the machine, or a would count as an outage.
	cfg.RetryBackoff, cfg.RetryMaxBackoff = config.Millis(500*time.Millisecond), config.Millis(500*time.Millisecond)
	cfg.RetryExhausted = runtime.DeadLetterOnExhausted
	cfg.DLQTopic = "/default/exhaust-dlq"
	s := newScripted(map[string][]error{"a": {errors.New("endpoint down"), errors.New("endpoint still down")}})
	r := runtimetest.StartSink(t, cfg, s) // creates the DLQ topic
	dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
	runtimetest.Produce(t, b, "/default/exhaust", runtimetest.Payloads("a", "b")...)
	s.wait(t, 1)
	got := dlq.WaitFor(t, "the exhausted record", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	want := "retries exhausted after 2 attempts: endpoint still down"
	if string(got[0].Payload) != "a" || got[0].Attributes[runtime.AttrFailureReason] != want {
		t.Fatalf("dead letter %q reason %q, want %q", got[0].Payload, got[0].Attributes[runtime.AttrFailureReason], want)
	}
	r.WaitMetric(t, `connector_records_dead_lettered_total{connector="exhaust"}`, 1)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if written, calls, _ := s.snapshot(); !slices.Equal(written, []string{"b"}) || calls["a"] != 2 {
		t.Fatalf("written %q, calls %v", written, calls)
	}
	// Acked: a restarted sink does not get it again.
	s2 := newScripted(nil)
	r2 := runtimetest.StartSink(t, cfg, s2)
	runtimetest.Produce(t, b, "/default/exhaust", runtimetest.Payloads("c")...)
	s2.wait(t, 1)
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if written, _, _ := s2.snapshot(); !slices.Equal(written, []string{"c"}) {
		t.Fatalf("after restart written %q, want only c", written)
	}
}

// With a shared client (WithClient) the Danube readiness follows the client's reconnect events,
// as it does for a client the runner builds itself.
func TestSinkSharedClientReadinessFollowsReconnects(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/shared")
	cfg := runtimetest.SinkConfig(b, "shared", "/default/shared")
	var conn runtime.Connection
	client := runtimetest.Client(t, b, danube.WithHooks(conn.Hooks(danube.Hooks{})))
	s := newScripted(nil)
	r := runtimetest.StartSink(t, cfg, s, runtime.WithClient(client, &conn))
	// The restarted broker refuses the resubscription for a while.
	b.FailNext("/danube.ConsumerService/Subscribe", 1000, codes.Unavailable)
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		err := r.Telemetry.Ready(context.Background())
		if err != nil && strings.HasPrefix(err.Error(), "shared/danube: ") && strings.Contains(err.Error(), "Unavailable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness never reported the failing resubscription: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.FailNext("/danube.ConsumerService/Subscribe", 0, codes.OK)
	r.WaitReady(t)
	runtimetest.Produce(t, b, "/default/shared", runtimetest.Payloads("after")...)
	s.wait(t, 1)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// The dead-letter producer is created with the same retries as the subscription: a broker that
// refuses it for a while delays the start instead of failing it.
func TestSinkRetriesDeadLetterProducer(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/dlqretry")
	cfg := runtimetest.SinkConfig(b, "dlqretry", "/default/dlqretry")
	cfg.DLQTopic = "/default/dlqretry-dlq"
	b.FailNext("/danube.ProducerService/CreateProducer", 2, codes.Internal)
	s := newScripted(map[string][]error{"bad": {runtime.InvalidData(errors.New("not a row"))}})
	r := runtimetest.StartSink(t, cfg, s) // fails the test if the sink stops before ready
	dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
	runtimetest.Produce(t, b, "/default/dlqretry", runtimetest.Payloads("bad")...)
	got := dlq.WaitFor(t, "the invalid record", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	if string(got[0].Payload) != "bad" || got[0].Attributes[runtime.AttrFailureReason] != "not a row" {
		t.Fatalf("dead letter %q attributes %v", got[0].Payload, got[0].Attributes)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// stuck blocks in Process until released.
type stuck struct {
	runtime.SinkBase
	in, release chan struct{}
}

func (s *stuck) Process(ctx context.Context, _ *runtime.SinkRecord) error {
	s.in <- struct{}{}
	<-s.release
	return nil
}

// /healthz fails while a connector call runs longer than LIVENESS_TIMEOUT_MS, and passes again
// when it returns; an idle sink is live.
func TestSinkLivenessCatchesAStuckConnector(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/stuck")
	cfg := runtimetest.SinkConfig(b, "stuck", "/default/stuck")
	cfg.LivenessTimeout = config.Millis(time.Millisecond)
	s := &stuck{in: make(chan struct{}, 1), release: make(chan struct{})}
	r := runtimetest.StartSink(t, cfg, s)
	if err := r.Telemetry.Live(context.Background()); err != nil {
		t.Fatalf("idle sink not live: %v", err)
	}
	runtimetest.Produce(t, b, "/default/stuck", runtimetest.Payloads("x")...)
	<-s.in
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		err := r.Telemetry.Live(context.Background())
		if err != nil && strings.HasPrefix(err.Error(), "stuck/loop: a connector call has been running for ") &&
			strings.HasSuffix(err.Error(), " (LIVENESS_TIMEOUT_MS=1)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("liveness never failed: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	close(s.release)
	r.WaitMetric(t, `connector_records_processed_total{connector="stuck"}`, 1)
	if err := r.Telemetry.Live(context.Background()); err != nil {
		t.Fatalf("live after the call returned: %v", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Zero options work: no telemetry server (nil metrics), no logger, the runner's own client.
func TestSinkRunsWithoutOptions(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/bare")
	cfg := runtimetest.SinkConfig(b, "bare", "/default/bare")
	// Create the subscription first: a new one starts at the tail.
	pre, err := runtimetest.Client(t, b).Subscribe(context.Background(), danube.ConsumerOptions{
		Topic: "/default/bare", Name: cfg.ConnectorName, Subscription: cfg.SubscriptionName})
	if err != nil {
		t.Fatal(err)
	}
	pre.Close()
	s := newScripted(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runtime.RunSink(ctx, cfg, s) }()
	runtimetest.Produce(t, b, "/default/bare", runtimetest.Payloads("one", "two")...)
	s.wait(t, 2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
