package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// SourceSuite is the conformance suite for a source. The connector reads its real external system;
// the suite makes that system produce through Emit and reads Danube back.
type SourceSuite[P any] struct {
	// New returns a connector for cfg reading the shared external system, resuming from the position
	// earlier instances committed.
	New func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector[P]
	// Emit makes the external system produce these payloads, in order.
	Emit func(t *testing.T, payloads ...[]byte)
	// Reset empties the external system and its committed position between cases.
	Reset func(t *testing.T)
	// Payload returns the i-th payload (distinct for distinct i); what arrives in Danube must be it.
	Payload func(i int) []byte
	// Key, if set, returns the routing key the connector gives the i-th payload: the suite then
	// checks per-key order with publishes pipelined (PUBLISH_ORDER=key).
	Key func(i int) string
}

// Run runs every case as a subtest.
func (s SourceSuite[P]) Run(t *testing.T) {
	t.Run("PublishesInOrder", func(t *testing.T) { s.inOrder(t, runtime.OrderByKey) })
	t.Run("StrictOrder", func(t *testing.T) { s.inOrder(t, runtime.OrderStrict) })
	if s.Key != nil {
		t.Run("PerKeyOrderWhenPipelined", s.perKeyOrder)
	}
	t.Run("AtLeastOnceThroughCrashAndRestart", s.crash)
	t.Run("AtLeastOnceThroughBrokerRestart", s.brokerRestart)
	t.Run("NothingLostThroughLongBrokerOutage", s.longOutage)
	t.Run("GracefulDrainOnStop", s.drain)
}

// setup starts a case on b: it empties the external system, creates the case's topic (named after
// the case, unique per run: an external broker keeps it across runs) and subscribes a collector.
func (s SourceSuite[P]) setup(t *testing.T, b Broker, name string) (*runtime.SourceConfig, *Collector) {
	s.Reset(t)
	id := uniqueSuffix()
	topic := "/default/" + name + "-" + id
	CreateTopic(t, b, topic)
	return SourceConfig(b, name, topic), Collect(t, b, topic, "reader-"+id)
}

func (s SourceSuite[P]) emit(t *testing.T, from, to int) {
	var ps [][]byte
	for i := from; i < to; i++ {
		ps = append(ps, s.Payload(i))
	}
	s.Emit(t, ps...)
}

func (s SourceSuite[P]) want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, string(s.Payload(i)))
	}
	return out
}

func has(want []string) func([]*danube.Message) bool {
	return func(ms []*danube.Message) bool {
		var got []string
		for _, m := range ms {
			got = append(got, string(m.Payload))
		}
		return containsAll(got, want)
	}
}

func payloadsOf(ms []*danube.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

// inOrder: with strict order the topic holds the records in source order; with key order so do
// records without a key (and the keyed records of one key, see perKeyOrder).
func (s SourceSuite[P]) inOrder(t *testing.T, order runtime.PublishOrder) {
	cfg, col := s.setup(t, SuiteBroker(t), "source-order-"+order.String())
	cfg.PublishOrder = order
	r := StartSource(t, cfg, s.New(t, cfg), true)
	s.emit(t, 0, 10)
	got := payloadsOf(col.WaitFor(t, "10 messages", func(ms []*danube.Message) bool { return len(ms) >= 10 }))
	if order == runtime.OrderStrict || s.Key == nil {
		if !slices.Equal(got, s.want(0, 10)) {
			t.Fatalf("received %q, want %q in order", got, s.want(0, 10))
		}
	} else if !containsAll(got, s.want(0, 10)) {
		t.Fatalf("received %q, want %q", got, s.want(0, 10))
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// failCommit fails its first Commit fatally: the records are in Danube but their position is not
// committed, as when a process dies between the two.
type failCommit[P any] struct{ runtime.SourceConnector[P] }

func (f failCommit[P]) Commit(context.Context, []P) error { return runtime.Fatal(ErrSimulatedCrash) }

func (s SourceSuite[P]) crash(t *testing.T) {
	cfg, col := s.setup(t, SuiteBroker(t), "source-crash")
	r := StartSource(t, cfg, failCommit[P]{s.New(t, cfg)}, true)
	s.emit(t, 0, 5)
	err := r.Wait()
	if !errors.Is(err, ErrSimulatedCrash) {
		t.Fatalf("first run ended with %v, want the simulated crash", err)
	}
	r2 := StartSource(t, cfg, s.New(t, cfg), true)
	s.emit(t, 5, 10)
	col.WaitFor(t, "all 10 payloads", has(s.want(0, 10)))
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
}

// brokerRestart: the broker restarts between two halves; the source republishes and loses nothing.
// Skipped against an external broker.
func (s SourceSuite[P]) brokerRestart(t *testing.T) {
	b := restartableBroker(t)
	cfg, col := s.setup(t, b, "source-brokerrestart")
	r := StartSource(t, cfg, s.New(t, cfg), true)
	s.emit(t, 0, 5)
	col.WaitFor(t, "first 5 payloads", has(s.want(0, 5)))
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	s.emit(t, 5, 10)
	col.WaitFor(t, "all 10 payloads", has(s.want(0, 10)))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// LongOutage is how long NothingLostThroughLongBrokerOutage keeps the broker down: longer than any
// retry of the client or the runtime that gives up.
const LongOutage = 26 * time.Second

// longOutage: the broker is down for LongOutage while the external system keeps producing. The
// source waits it out (it neither exits nor reports Danube reachable), then publishes everything,
// in order per key.
func (s SourceSuite[P]) longOutage(t *testing.T) {
	b := restartableBroker(t)
	cfg, col := s.setup(t, b, "source-outage")
	r := StartSource(t, cfg, s.New(t, cfg), true)
	s.emit(t, 0, 5)
	col.WaitFor(t, "first 5 payloads", has(s.want(0, 5)))
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	s.emit(t, 5, 15)
	connected := fmt.Sprintf("connector_danube_connected{connector=%q}", cfg.ConnectorName)
	for r.Metric(t, connected) != 0 {
		if r.Done() {
			t.Fatalf("source stopped %v into the outage: %v", time.Since(down).Round(time.Second), r.Wait())
		}
		if time.Since(down) > LongOutage {
			t.Fatalf("%s still %v %v into the outage, want 0", connected, r.Metric(t, connected), LongOutage)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Telemetry.Ready(context.Background()); err == nil {
		t.Fatal("/readyz reports ready while Danube is down")
	}
	time.Sleep(LongOutage / 2)
	s.emit(t, 15, 25)
	time.Sleep(time.Until(down.Add(LongOutage)))
	if r.Done() {
		t.Fatalf("source stopped during the outage: %v", r.Wait())
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	s.emit(t, 25, 30)
	got := col.WaitFor(t, "all 30 payloads", has(s.want(0, 30)))
	if s.Key != nil {
		s.checkKeyOrder(t, got, 30)
	}
	r.WaitReady(t)
	if v := r.Metric(t, connected); v != 1 {
		t.Fatalf("%s = %v once Danube is back, want 1", connected, v)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// drain: stopping right after the external system produced loses nothing and, because everything
// polled was published and committed before the stop returned, duplicates nothing.
func (s SourceSuite[P]) drain(t *testing.T) {
	cfg, col := s.setup(t, SuiteBroker(t), "source-drain")
	r := StartSource(t, cfg, s.New(t, cfg), true)
	s.emit(t, 0, 20)
	if err := r.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	r2 := StartSource(t, cfg, s.New(t, cfg), true)
	s.emit(t, 20, 21)
	got := payloadsOf(col.WaitFor(t, "all 21 payloads", has(s.want(0, 21))))
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 21 || (s.Key == nil && !slices.Equal(got, s.want(0, 21))) {
		t.Fatalf("received %q, want each payload once, in order (%d messages)", got, len(got))
	}
}

// perKeyOrder: with publishes pipelined, the records of each routing key arrive in source order and
// none is lost.
func (s SourceSuite[P]) perKeyOrder(t *testing.T) {
	cfg, col := s.setup(t, SuiteBroker(t), "source-keyorder")
	cfg.PublishOrder = runtime.OrderByKey
	r := StartSource(t, cfg, s.New(t, cfg), true)
	const n = 60
	s.emit(t, 0, n)
	s.checkKeyOrder(t, col.WaitFor(t, "all payloads", has(s.want(0, n))), n)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// checkKeyOrder checks that got, the messages of payloads 0 to n-1, carry their routing keys and
// first arrived in source order per key (a payload published again may follow: at-least-once).
func (s SourceSuite[P]) checkKeyOrder(t *testing.T, got []*danube.Message, n int) {
	t.Helper()
	index := map[string]int{}
	for i := range n {
		index[string(s.Payload(i))] = i
	}
	last := map[string]int{}
	seen := map[int]bool{}
	for _, m := range got {
		i := index[string(m.Payload)]
		if seen[i] {
			continue
		}
		seen[i] = true
		k := s.Key(i)
		if m.Key != k {
			t.Fatalf("payload %d has routing key %q, want %q", i, m.Key, k)
		}
		if prev, seen := last[k]; seen && prev > i {
			t.Fatalf("key %q: payload %d arrived after %d", k, i, prev)
		}
		last[k] = i
	}
}
