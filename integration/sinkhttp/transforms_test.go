package sinkhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// bodies records every request body in arrival order.
type bodies struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []string
	wake chan struct{}
}

func newBodies(t *testing.T) *bodies {
	b := &bodies{wake: make(chan struct{}, 1)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, string(body))
		b.mu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *bodies) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// waitFor waits until body has arrived (a bound on the wait, not a timing assertion).
func (b *bodies) waitFor(t *testing.T, body string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !slices.Contains(b.all(), body) {
		select {
		case <-b.wake:
		case <-deadline:
			t.Fatalf("%s never arrived; the server got %q", body, b.all())
		}
	}
}

// mapped is the body the map step makes of order i: qty i at price 10 (the map's output is
// encoded with sorted keys).
func mapped(i int) string {
	return fmt.Sprintf(`{"id":%d,"topic":"%s","total":%d}`, i, ordersTopic, 10*i)
}

const ordersTopic = "/default/orders"

// TestTransformMapFilterBody is issue 24's sink-http acceptance run: the binary, configured by
// environment only, maps each order to {id, total, topic} and keeps totals of at least 100. The
// server receives exactly the mapped bodies of the kept orders, once each; the dropped orders
// never reach it and are acked (the subscription settles, and a restarted sink gets nothing
// again); a message that is not JSON fails the map and goes to DLQ_TOPIC with the step in its
// reason, and the stream goes on. A graceful stop after everything settled, so no duplicates are
// allowed.
func TestTransformMapFilterBody(t *testing.T) {
	const dlq = "/default/orders-dlq"
	broker, _, prod := setup(t, devbroker.Config{AckTimeout: scaledAckTimeout, RetryTick: 50 * time.Millisecond,
		RedeliveryBaseDelay: 50 * time.Millisecond, RedeliveryMaxDelay: 200 * time.Millisecond}, ordersTopic)
	runtimetest.CreateTopic(t, broker, dlq)
	dead := runtimetest.Collect(t, broker, dlq, "dlq-reader")
	srv := newBodies(t)
	s := startSink(t, sinkEnv(broker.URL(), srv.srv.URL, ordersTopic, "DLQ_TOPIC="+dlq,
		"TRANSFORMS=body,big",
		"TRANSFORM_BODY_TYPE=map",
		`TRANSFORM_BODY_EXPR={"id": payload.id, "total": payload.qty * payload.price, "topic": topic}`,
		"TRANSFORM_BIG_TYPE=filter",
		"TRANSFORM_BIG_EXPR=payload.total >= 100"))
	send := func(payload string) {
		t.Helper()
		if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 { // orders 0-9 total less than 100
		send(fmt.Sprintf(`{"id":%d,"qty":%d,"price":10,"note":"order %d"}`, i, i, i))
		if i == 12 {
			send("not json")
		}
	}
	srv.waitFor(t, mapped(19))
	waitSettled(t, broker, ordersTopic, "webhook-sink") // every message acked: the dead letter is in its topic
	runtimetest.Produce(t, broker, dlq, danube.ProducerMessage{Payload: []byte("sentinel")})
	ms := dead.WaitFor(t, "the sentinel", func(ms []*danube.Message) bool {
		return len(ms) > 0 && string(ms[len(ms)-1].Payload) == "sentinel"
	})
	if reason := ms[0].Attributes["x-failure-reason"]; len(ms) != 2 || string(ms[0].Payload) != "not json" ||
		!strings.HasPrefix(reason, `transform "body" (map): `) || ms[0].Attributes["x-original-topic"] != ordersTopic {
		t.Fatalf("dead letters %q, the first with attributes %v", payloadsOf(ms), ms[0].Attributes)
	}
	t.Logf("dead letter reason: %s", ms[0].Attributes["x-failure-reason"])

	// Restarted, the sink gets only what is new: nothing dropped comes again.
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stopSink(t, s)
	send(`{"id":20,"qty":20,"price":10}`)
	srv.waitFor(t, mapped(20))
	var want []string
	for i := 10; i <= 20; i++ {
		want = append(want, mapped(i))
	}
	if got := srv.all(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("the server received %q\nwant (in any order) %q", got, want)
	}
}

// waitSettled waits until the subscription has nothing in its backlog, unacked or pending
// redelivery, and asserts that the poison policy blocked nothing.
func waitSettled(t *testing.T, b *devbroker.Broker, topic, sub string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, ok := b.SubscriptionStats(topic, sub)
		switch {
		case !ok:
			t.Fatal("the subscription is gone")
		case st.Blocked != 0:
			t.Fatalf("subscription blocked: %+v", st)
		case st.Backlog == 0 && st.Unacked == 0 && st.PendingRedelivery == 0:
			return
		case time.Now().After(deadline):
			t.Fatalf("subscription not settled after a minute: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func payloadsOf(ms []*danube.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}
