package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// gated is a ConcurrentSinkConnector whose Process blocks on the record's gate (if any) and logs
// every call start and every write per routing key.
type gated struct {
	runtime.SinkBase
	n       int
	mu      sync.Mutex
	gates   map[string]chan struct{} // payload → closed when it may be written
	script  map[string][]error       // payload → results of its first calls
	calls   map[string]int
	log     []string            // "start p" and "ok p", in order
	byKey   map[string][]string // key → payloads written, in order
	active  int
	maxSeen int
	ctxErr  map[string]error // payload → its ctx.Err() when it was written
	done    chan string
	changed chan struct{} // a token after every call start
}

func newGated(n int) *gated {
	return &gated{n: n, gates: map[string]chan struct{}{}, script: map[string][]error{}, calls: map[string]int{},
		byKey: map[string][]string{}, ctxErr: map[string]error{}, done: make(chan string, 1000),
		changed: make(chan struct{}, 1)}
}

func (g *gated) Concurrent() bool { return true }

func (g *gated) Process(ctx context.Context, r *runtime.SinkRecord) error {
	p := string(r.Payload())
	g.mu.Lock()
	g.active++
	g.maxSeen = max(g.maxSeen, g.active)
	g.log = append(g.log, "start "+p)
	n := g.calls[p]
	g.calls[p]++
	gate := g.gates[p]
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
	defer func() {
		g.mu.Lock()
		g.active--
		g.mu.Unlock()
	}()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n < len(g.script[p]) && g.script[p][n] != nil {
		return g.script[p][n]
	}
	g.log = append(g.log, "ok "+p)
	g.byKey[r.Message.Key] = append(g.byKey[r.Message.Key], p)
	g.ctxErr[p] = ctx.Err()
	g.done <- p
	return nil
}

func (g *gated) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		<-g.done
	}
}

// until blocks until cond (checked under the lock) holds, re-checking after every call start.
func (g *gated) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		g.mu.Lock()
		ok := cond()
		g.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-g.changed:
		case <-timeout:
			g.mu.Lock()
			defer g.mu.Unlock()
			t.Fatalf("timed out waiting for %s; calls: %q", what, g.log)
		}
	}
}

func keyed(key string, ps ...string) []danube.ProducerMessage {
	out := runtimetest.Payloads(ps...)
	for i := range out {
		out[i].Key = key
	}
	return out
}

// A record that takes long must not hold back the records behind it (no batch barrier): while
// "slow-0" is held, 20 records of other keys are written and acked, MAX concurrency is used, and
// "slow-1" waits for "slow-0".
func TestSinkStreamsPastASlowRecord(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/stream"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "stream", topic)
	cfg.BatchSize = 10 // a batch runtime would wait for slow-0 before taking record 11
	g := newGated(4)
	cfg.MaxInFlight = g.n
	release := make(chan struct{})
	g.gates["slow-0"] = release
	// The first three other records are held until all three are in flight next to slow-0: the
	// sink must keep 4 calls busy.
	three := make(chan struct{})
	for _, p := range []string{"a-0", "b-0", "c-0"} {
		g.gates[p] = three
	}
	free := sync.OnceFunc(func() { close(release) })
	freeThree := sync.OnceFunc(func() { close(three) })
	r := runtimetest.StartSink(t, cfg, g)
	t.Cleanup(func() { freeThree(); free() }) // registered after StartSink's: runs before its stop
	msgs := keyed("slow", "slow-0")
	for i := range 5 {
		for _, k := range []string{"a", "b", "c", "d"} {
			msgs = append(msgs, keyed(k, fmt.Sprintf("%s-%d", k, i))...)
		}
	}
	msgs = append(msgs, keyed("slow", "slow-1")...)
	runtimetest.Produce(t, b, topic, msgs...)

	// Wait until slow-0 and the three held records are in flight together, then let those three go.
	g.until(t, "4 calls in flight", func() bool { return g.active == 4 })
	freeThree()
	g.wait(t, 20) // every other record while slow-0 is still held
	r.WaitMetric(t, `connector_records_processed_total{connector="stream"}`, 20)
	g.mu.Lock()
	if slices.Contains(g.log, "start slow-1") {
		t.Errorf("slow-1 started while slow-0 was in flight: %q", g.log)
	}
	g.mu.Unlock()
	free()
	g.wait(t, 2)
	r.WaitMetric(t, `connector_records_processed_total{connector="stream"}`, 22)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxSeen != 4 {
		t.Errorf("at most %d calls at once, want 4 (the connector's concurrency)", g.maxSeen)
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		want := []string{k + "-0", k + "-1", k + "-2", k + "-3", k + "-4"}
		if !slices.Equal(g.byKey[k], want) {
			t.Errorf("key %s written %q, want %q", k, g.byKey[k], want)
		}
	}
	if want := []string{"slow-0", "slow-1"}; !slices.Equal(g.byKey["slow"], want) {
		t.Errorf("key slow written %q, want %q", g.byKey["slow"], want)
	}
}

// A record that is retried keeps its key's later records waiting: k-1 is not started before k-0
// was written, while other keys flow.
func TestSinkStreamKeepsKeyOrderThroughRetries(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/stream-retry"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "stream-retry", topic)
	cfg.MaxRetries = -1
	g := newGated(4)
	cfg.MaxInFlight = g.n
	transient := runtime.Retryable(errors.New("503"))
	g.script["k-0"] = []error{transient, transient, transient}
	r := runtimetest.StartSink(t, cfg, g)
	msgs := append(keyed("k", "k-0", "k-1", "k-2"), keyed("other", "o-0", "o-1")...)
	runtimetest.Produce(t, b, topic, msgs...)
	g.wait(t, 5)
	r.WaitMetric(t, `connector_records_processed_total{connector="stream-retry"}`, 5)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if want := []string{"k-0", "k-1", "k-2"}; !slices.Equal(g.byKey["k"], want) {
		t.Fatalf("key k written %q, want %q", g.byKey["k"], want)
	}
	if g.calls["k-0"] != 4 || g.calls["k-1"] != 1 {
		t.Fatalf("calls %v, want k-0 4 times, k-1 once", g.calls)
	}
	if i, j := slices.Index(g.log, "ok k-0"), slices.Index(g.log, "start k-1"); j < i {
		t.Fatalf("k-1 started before k-0 was written: %q", g.log)
	}
}

// On stop the records in flight are finished (their context is not cancelled) and acked before
// RunSink returns.
func TestSinkStreamDrainsRecordsInFlight(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/stream-drain"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "stream-drain", topic)
	g := newGated(4)
	cfg.MaxInFlight = g.n
	release := make(chan struct{})
	g.gates["held"] = release
	r := runtimetest.StartSink(t, cfg, g)
	runtimetest.Produce(t, b, topic, keyed("x", "held")...)
	g.until(t, "held in flight", func() bool { return slices.Contains(g.log, "start held") })
	stopped := make(chan error, 1)
	go func() { stopped <- r.Stop() }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err, ok := g.ctxErr["held"]; !ok || err != nil {
		t.Fatalf("held written %v with context error %v, want written with a live context", ok, err)
	}
	if st, _ := b.SubscriptionStats(topic, cfg.SubscriptionName); st.Unacked != 0 || st.PendingRedelivery != 0 || st.Backlog != 0 {
		t.Fatalf("subscription %+v after the stop, want everything acked before RunSink returned", st)
	}
}

// A fatal error stops the streaming sink with the error; records not started are not written.
func TestSinkStreamFatalStops(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/stream-fatal"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "stream-fatal", topic)
	g := newGated(2)
	cfg.MaxInFlight = g.n
	g.script["boom"] = []error{runtime.Fatal(errors.New("disk full"))}
	r := runtimetest.StartSink(t, cfg, g)
	runtimetest.Produce(t, b, topic, keyed("k", "boom", "after")...)
	err := r.Wait()
	want := "runtime: fatal error on message topic:/default/stream-fatal/producer:"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "/offset:0: disk full") {
		t.Fatalf("got %v, want %s…/offset:0: disk full", err, want)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls["after"] != 0 {
		t.Fatalf("the record after the fatal one was processed: %q", g.log)
	}
}

// The retry, dead-letter and RETRY_EXHAUSTED rules apply to streamed records as to batches.
func TestSinkStreamRetryExhaustedDeadLetters(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/stream-dlq")
	cfg := runtimetest.SinkConfig(b, "stream-dlq", "/default/stream-dlq")
	cfg.MaxRetries = 1
	cfg.RetryBackoff = config.Millis(200 * time.Millisecond) // "b" is written between a's two attempts
	cfg.RetryExhausted = runtime.DeadLetterOnExhausted
	cfg.DLQTopic = "/default/stream-dlq-dead"
	g := newGated(4)
	cfg.MaxInFlight = g.n
	g.script["a"] = []error{errors.New("endpoint down"), errors.New("endpoint still down"), errors.New("endpoint still down")}
	g.script["bad"] = []error{runtime.InvalidData(errors.New("not a row"))}
	r := runtimetest.StartSink(t, cfg, g)
	dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
	runtimetest.Produce(t, b, "/default/stream-dlq", runtimetest.Payloads("a", "bad")...)
	waitUntil(t, "a's first failure", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.calls["a"] >= 1
	})
	// "b" is written while "a" keeps failing: "a" is poison, not an outage.
	runtimetest.Produce(t, b, "/default/stream-dlq", runtimetest.Payloads("b")...)
	g.wait(t, 1)
	got := dlq.WaitFor(t, "two dead letters", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	reasons := map[string]string{}
	for _, m := range got {
		reasons[string(m.Payload)] = m.Attributes[runtime.AttrFailureReason]
	}
	if reasons["a"] != "retries exhausted after 2 attempts: endpoint still down" || reasons["bad"] != "not a row" {
		t.Fatalf("dead-letter reasons %q", reasons)
	}
	r.WaitMetric(t, `connector_records_dead_lettered_total{connector="stream-dlq"}`, 2)
	r.WaitMetric(t, `connector_records_processed_total{connector="stream-dlq"}`, 1)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
