package devbroker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// TestKeySharedEvictionUnacked checks what happens to the unacked message of
// a reliable KeyShared consumer evicted for inactivity: redelivered to the
// key's new owner by default; with KeySharedEvictionDropsUnacked settled as
// if acked, as the real broker does, so it is never delivered again.
func TestKeySharedEvictionUnacked(t *testing.T) {
	for _, drops := range []bool{false, true} {
		t.Run(fmt.Sprintf("drops=%v", drops), func(t *testing.T) {
			cfg := fastConfig()
			cfg.AckTimeout = time.Minute
			cfg.KeySharedEvictionTimeout = 30 * time.Millisecond
			cfg.KeySharedEvictionDropsUnacked = drops
			e := startEnv(t, cfg)
			const topic = "/default/ks-evict-unacked"
			key := "order-7"
			pid, _, streams, owner, other := keySharedPair(t, e, topic, key)
			e.send(topic, pid, 2, "second", &key)
			if m := streams[owner].next(t); m.GetMsgId().GetTopicOffset() != 1 {
				t.Fatalf("owner got offset %d", m.GetMsgId().GetTopicOffset())
			}
			streams[owner].cancel() // inactive with offset 1 unacked
			eventually(t, "owner evicted", func() bool {
				st, _ := e.b.SubscriptionStats(topic, "sub")
				return st.Consumers == 1
			})
			if !drops {
				m := streams[other].next(t)
				if string(m.GetPayload()) != "second" || m.GetMsgId().GetTopicOffset() != 1 {
					t.Fatalf("other got %q offset %d, want the redelivered offset 1", m.GetPayload(), m.GetMsgId().GetTopicOffset())
				}
				e.ack(m, "sub")
			}
			// Offset 1 is settled either way; with drops it was never acked.
			if st, _ := e.b.SubscriptionStats(topic, "sub"); st.Cursor != 2 || st.Unacked != 0 || st.PendingRedelivery != 0 {
				t.Fatalf("stats after eviction %+v", st)
			}
			// KeyShared delivers a key in offset order, so the next message the
			// other consumer gets shows that offset 1 is not coming back.
			e.send(topic, pid, 3, "third", &key)
			if m := streams[other].next(t); string(m.GetPayload()) != "third" || m.GetMsgId().GetTopicOffset() != 2 {
				t.Fatalf("other got %q offset %d, want third at 2", m.GetPayload(), m.GetMsgId().GetTopicOffset())
			}
		})
	}
}

// logBuffer collects a broker's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func describeStats(t *testing.T, e *env, topic string) []SubscriptionStats {
	t.Helper()
	var md metadata.MD
	if _, err := e.tAdm.DescribeTopic(ctx(t), &apb.DescribeTopicRequest{Name: topic}, grpc.Header(&md)); err != nil {
		t.Fatalf("DescribeTopic: %v", err)
	}
	vals := md.Get(StatsHeader)
	if len(vals) != 1 {
		t.Fatalf("header %s = %q", StatsHeader, vals)
	}
	var out []SubscriptionStats
	if err := json.Unmarshal([]byte(vals[0]), &out); err != nil {
		t.Fatalf("decode %s: %v", vals[0], err)
	}
	return out
}

// TestBlockedSubscriptionVisible drives a message into poison policy Block
// and checks that the stall shows in SubscriptionStats, in DescribeTopic's
// stats header and as one warn line in the broker log.
func TestBlockedSubscriptionVisible(t *testing.T) {
	logs := &logBuffer{}
	cfg := fastConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	e := startEnv(t, cfg)
	const topic = "/default/blocked"
	pid := e.producer(topic, "p", reliable)
	setPolicy(t, e, topic, "sub", apb.SubscriptionPoisonPolicy_Block, nil) // 2 redeliveries
	cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	e.subscribe(topic, "idle", "i", pb.ConsumerRequest_Shared)
	s := e.receive(cid)
	e.send(topic, pid, 1, "poison", nil)
	e.send(topic, pid, 2, "next", nil)
	poison := s.next(t)
	e.ack(s.next(t), "sub")
	want := SubscriptionStats{Topic: topic, Subscription: "sub", Type: "Exclusive", Reliable: true, Consumers: 1,
		ActiveConsumers: 1, Cursor: 0, Backlog: 2, Window: 1, MaxUnacked: 10, Unacked: 1}
	if st, ok := e.b.SubscriptionStats(topic, "sub"); !ok || st != want {
		t.Fatalf("in flight: %+v %v, want %+v", st, ok, want)
	}
	// Redeliveries happen on the tick: hold it so the nacked message stays pending.
	e.b.core.ticksPaused.Store(true)
	e.nack(poison, "sub", nil, "bad payload")
	want.Unacked, want.PendingRedelivery = 0, 1
	if st, _ := e.b.SubscriptionStats(topic, "sub"); st != want {
		t.Fatalf("pending: %+v, want %+v", st, want)
	}
	e.b.core.ticksPaused.Store(false)
	for attempt := 2; attempt <= 3; attempt++ {
		e.nack(s.next(t), "sub", nil, "bad payload")
	}
	want.PendingRedelivery, want.Blocked = 0, 1
	if st, _ := e.b.SubscriptionStats(topic, "sub"); st != want {
		t.Fatalf("blocked: %+v, want %+v", st, want)
	}
	got := describeStats(t, e, topic)
	// A subscribed consumer counts as active before it streams, so both
	// messages are in flight to it.
	idle := SubscriptionStats{Topic: topic, Subscription: "idle", Type: "Shared", Reliable: true, Consumers: 1,
		ActiveConsumers: 1, Backlog: 2, Window: 2, MaxUnacked: 10, Unacked: 2}
	if len(got) != 2 || got[0] != idle || got[1] != want {
		t.Fatalf("DescribeTopic stats %+v", got)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "subscription blocked by a poison message") {
			if line != "" {
				t.Fatalf("two block lines:\n%s\n%s", line, l)
			}
			line = l
		}
	}
	for _, f := range []string{"level=WARN", "topic=" + topic, "subscription=sub", "offset=0", "attempts=3", `reason="bad payload"`} {
		if !strings.Contains(line, f) {
			t.Fatalf("block log line %q lacks %s", line, f)
		}
	}
	if _, ok := e.b.SubscriptionStats(topic, "nope"); ok {
		t.Fatal("stats for a missing subscription")
	}
	if _, ok := e.b.SubscriptionStats("/default/nope", "sub"); ok {
		t.Fatal("stats for a missing topic")
	}
}

func TestSubscriptionStatsNonReliable(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/plain-stats"
	e.producer(topic, "p", nonReliable)
	e.subscribe(topic, "sub", "c", pb.ConsumerRequest_KeyShared)
	want := SubscriptionStats{Topic: topic, Subscription: "sub", Type: "KeyShared", Consumers: 1, ActiveConsumers: 1}
	if st, ok := e.b.SubscriptionStats(topic, "sub"); !ok || st != want {
		t.Fatalf("stats %+v %v, want %+v", st, ok, want)
	}
}
