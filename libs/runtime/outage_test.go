package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// scaledAckTimeout scales the real broker's 30 s ack timeout down; its other defaults (5 delivery
// attempts, then poison policy Block) stay as they are.
const scaledAckTimeout = 400 * time.Millisecond

func scaledBroker(t *testing.T, realKeySharedEviction bool) *devbroker.Broker {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{
		DataDir: t.TempDir(), AckTimeout: scaledAckTimeout, RedeliveryBaseDelay: 20 * time.Millisecond,
		RedeliveryMaxDelay: 200 * time.Millisecond, RetryTick: 20 * time.Millisecond, CursorFlushInterval: 20 * time.Millisecond,
		KeySharedEvictionDropsUnacked: realKeySharedEviction,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// endpoint is an external system that can be down: every write fails then, retryably.
type endpoint struct {
	runtime.SinkBase
	concurrent bool
	down       atomic.Bool
	mu         sync.Mutex
	written    []string
	seen       map[string]bool
}

func (e *endpoint) Concurrent() bool { return e.concurrent }

func (e *endpoint) Process(_ context.Context, r *runtime.SinkRecord) error {
	if e.down.Load() {
		return runtime.Retryable(errors.New("503 Service Unavailable"))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := string(r.Payload())
	if !e.seen[p] { // at-least-once: count each message once, keep the first write's position
		e.seen[p] = true
		e.written = append(e.written, p)
	}
	return nil
}

func (e *endpoint) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.written)
}

// An outage twenty times the broker's ack timeout, with its real redelivery limit: the sink pauses
// its consumers instead of spending delivery attempts, so every message arrives afterwards, each
// key in order, and the subscription is not blocked and keeps flowing.
func TestSinkOutageOfTwentyAckTimeoutsLosesNothing(t *testing.T) {
	for _, c := range []struct {
		name        string
		typ         danube.SubscriptionType
		maxInFlight int
		realEvict   bool
	}{
		{"sequential", danube.Exclusive, 1, false},
		{"streaming", danube.Shared, 4, false},
		{"keyshared-real-eviction", danube.KeyShared, 4, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := scaledBroker(t, c.realEvict)
			topic := "/default/outage-" + c.name
			runtimetest.CreateTopic(t, b, topic)
			cfg := runtimetest.SinkConfig(b, "outage-"+c.name, topic)
			cfg.SubscriptionType, cfg.MaxInFlight = c.typ, c.maxInFlight
			cfg.RetryBackoff, cfg.RetryMaxBackoff = config.Millis(5*time.Millisecond), config.Millis(100*time.Millisecond)
			e := &endpoint{concurrent: c.maxInFlight > 1, seen: map[string]bool{}}
			r := runtimetest.StartSink(t, cfg, e)
			msgs := func(from, to int) []danube.ProducerMessage {
				var out []danube.ProducerMessage
				for i := from; i < to; i++ {
					out = append(out, danube.ProducerMessage{Payload: []byte(fmt.Sprintf("k%d-%03d", i%3, i)), Key: fmt.Sprintf("k%d", i%3)})
				}
				return out
			}
			runtimetest.Produce(t, b, topic, msgs(0, 10)...)
			waitUntil(t, "10 written", func() bool { return len(e.snapshot()) >= 10 })
			e.down.Store(true)
			runtimetest.Produce(t, b, topic, msgs(10, 30)...)
			waitUntil(t, "delivery paused", func() bool {
				err := r.Telemetry.Ready(context.Background())
				return err != nil && strings.Contains(err.Error(), "delivery paused, external system failing: 503 Service Unavailable")
			})
			time.Sleep(20 * scaledAckTimeout)
			e.down.Store(false)
			waitUntil(t, "30 written", func() bool { return len(e.snapshot()) >= 30 })
			runtimetest.Produce(t, b, topic, msgs(30, 40)...) // still flowing
			waitUntil(t, "40 written", func() bool { return len(e.snapshot()) >= 40 })
			r.WaitReady(t)
			got := e.snapshot()
			if len(got) != 40 {
				t.Fatalf("written %d distinct messages, want 40: %q", len(got), got)
			}
			last := map[string]string{}
			for _, p := range got {
				k := p[:2]
				if p < last[k] {
					t.Fatalf("key %s out of order: %s after %s in %q", k, p, last[k], got)
				}
				last[k] = p
			}
			if st, _ := b.SubscriptionStats(topic, cfg.SubscriptionName); st.Blocked != 0 {
				t.Fatalf("subscription %+v is blocked", st)
			}
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// poisonous fails one payload for ever, retryably, and writes the rest.
type poisonous struct {
	endpoint
	poison string
}

func (p *poisonous) Process(ctx context.Context, r *runtime.SinkRecord) error {
	if string(r.Payload()) == p.poison {
		return runtime.Retryable(errors.New("500 Internal Server Error"))
	}
	return p.endpoint.Process(ctx, r)
}

// A message that fails while the others are written is poison: with DLQ_TOPIC it is
// dead-lettered (sequential sink: found by writing the next record out of turn); without, it is
// held and reported on /readyz and connector_records_poisoned while the others keep flowing.
func TestSinkPoisonMessage(t *testing.T) {
	t.Run("dead-lettered", func(t *testing.T) {
		b := scaledBroker(t, false)
		topic := "/default/poison-dlq"
		runtimetest.CreateTopic(t, b, topic)
		cfg := runtimetest.SinkConfig(b, "poison-dlq", topic)
		cfg.DLQTopic = "/default/poison-dlq-dead"
		p := &poisonous{endpoint: endpoint{seen: map[string]bool{}}, poison: "m2"}
		r := runtimetest.StartSink(t, cfg, p)
		dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
		runtimetest.Produce(t, b, topic, runtimetest.Payloads("m0", "m1", "m2", "m3", "m4")...)
		got := dlq.WaitFor(t, "the poison message", func(ms []*danube.Message) bool { return len(ms) >= 1 })
		waitUntil(t, "the others written", func() bool { return len(p.snapshot()) >= 4 })
		if string(got[0].Payload) != "m2" || !strings.Contains(got[0].Attributes[runtime.AttrFailureReason], "500 Internal Server Error") {
			t.Fatalf("dead letter %q reason %q", got[0].Payload, got[0].Attributes[runtime.AttrFailureReason])
		}
		if w := p.snapshot(); !slices.Equal(w, []string{"m0", "m1", "m3", "m4"}) {
			t.Fatalf("written %q", w)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("held-without-dlq", func(t *testing.T) {
		b := runtimetest.StartBroker(t)
		topic := "/default/poison-held"
		runtimetest.CreateTopic(t, b, topic)
		cfg := runtimetest.SinkConfig(b, "poison-held", topic)
		cfg.MaxInFlight = 4
		p := &poisonous{endpoint: endpoint{concurrent: true, seen: map[string]bool{}}, poison: "m2"}
		r := runtimetest.StartSink(t, cfg, p)
		msgs := []danube.ProducerMessage{}
		for i := range 5 {
			msgs = append(msgs, danube.ProducerMessage{Payload: []byte(fmt.Sprint("m", i)), Key: fmt.Sprint("k", i)})
		}
		runtimetest.Produce(t, b, topic, msgs...)
		waitUntil(t, "the others written", func() bool { return len(p.snapshot()) >= 4 })
		r.WaitMetric(t, `connector_records_poisoned{connector="poison-held"}`, 1)
		err := r.Telemetry.Ready(context.Background())
		if err == nil || !strings.Contains(err.Error(), "poison message topic:/default/poison-held/producer:") ||
			!strings.Contains(err.Error(), "held and retried: 500 Internal Server Error") {
			t.Fatalf("readiness with a poison message held: %v", err)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A sink started before its topic exists creates it and subscribes at once: the first messages
// published after it is ready all arrive (a new subscription starts at the tail, so subscribing
// only after a retry wait would miss them).
func TestSinkStartedBeforeTopicMissesNothing(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/not-yet"
	cfg := runtimetest.SinkConfig(b, "early", topic)
	cfg.RetryBackoff, cfg.RetryMaxBackoff = config.Millis(time.Hour), config.Millis(time.Hour) // a retry would never come
	e := &endpoint{seen: map[string]bool{}}
	r := runtimetest.StartSink(t, cfg, e)
	runtimetest.Produce(t, b, topic, runtimetest.Payloads("first", "second")...)
	waitUntil(t, "both written", func() bool { return len(e.snapshot()) == 2 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
