package sinkhttp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// scaledAckTimeout stands for the real broker's 30 s ack timeout; its other defaults stay: five
// delivery attempts, then poison policy Block.
const scaledAckTimeout = time.Second

// flakyReceiver answers 503 to everything while down and 500 to the payload "poison" always.
type flakyReceiver struct {
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	got  map[string]int
}

func newFlakyReceiver(t *testing.T) *flakyReceiver {
	rc := &flakyReceiver{got: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case rc.down.Load():
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		case string(body) == "poison":
			http.Error(w, "cannot handle this one", http.StatusInternalServerError)
		default:
			rc.mu.Lock()
			rc.got[string(body)]++
			rc.mu.Unlock()
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *flakyReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (rc *flakyReceiver) waitDistinct(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for rc.distinct() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages arrived", rc.distinct(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopSink sends SIGTERM and expects a clean exit; the harness logs the output when the test
// failed.
func stopSink(t *testing.T, s *harness.Connector) {
	t.Helper()
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("sink exit: %v", err)
	}
}

// The acceptance run, with the sink-http binary at its default settings (only the retry
// waits scaled down like the broker's ack timeout): the receiver is down for twenty ack timeouts,
// then one message among good ones is always answered 500. Every good message arrives, the poison
// one lands in the DLQ, and the subscription is not blocked and keeps flowing afterwards.
func TestLongOutageThenPoisonMessage(t *testing.T) {
	const topic, dlqTopic = "/default/outage", "/default/outage-dlq"
	broker, client, prod := setup(t, devbroker.Config{AckTimeout: scaledAckTimeout, RetryTick: 50 * time.Millisecond,
		RedeliveryBaseDelay: 50 * time.Millisecond, RedeliveryMaxDelay: 200 * time.Millisecond}, topic)
	ctx := context.Background()
	dlqProd, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: dlqTopic, Name: "dlq-creator", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	_ = dlqProd.Close()
	dlq, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: dlqTopic, Name: "dlq-reader", Subscription: "dlq-reader", Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	rc := newFlakyReceiver(t)
	s := startSink(t, sinkEnv(broker.URL(), rc.srv.URL, topic, "MAX_RETRIES=3", "DLQ_TOPIC="+dlqTopic))
	defer stopSink(t, s)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: []byte(fmt.Sprint("good-", i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 10)
	rc.waitDistinct(t, 10)

	rc.down.Store(true)
	send(10, 30)
	time.Sleep(20 * scaledAckTimeout)
	rc.down.Store(false)
	rc.waitDistinct(t, 30)

	if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: []byte("poison")}); err != nil {
		t.Fatal(err)
	}
	send(30, 40)
	rc.waitDistinct(t, 40)
	select {
	case m := <-dlq.Messages():
		if string(m.Payload) != "poison" || !strings.Contains(m.Attributes["x-failure-reason"], "500") {
			t.Fatalf("dead letter %q with reason %q", m.Payload, m.Attributes["x-failure-reason"])
		}
		_ = dlq.Ack(ctx, m)
	case <-time.After(30 * time.Second):
		t.Fatal("the poison message never reached the DLQ")
	}
	send(40, 50) // still flowing
	rc.waitDistinct(t, 50)
	if st, _ := broker.SubscriptionStats(topic, "webhook-sink"); st.Blocked != 0 {
		t.Fatalf("subscription blocked: %+v", st)
	}
}

// An endpoint that is not up when the sink starts (nothing listens on its address: every POST is
// refused) is waited for: the sink keeps running and delivers everything once the endpoint appears.
func TestEndpointDownAtStart(t *testing.T) {
	const topic, n = "/default/late-endpoint", 10
	broker, _, prod := setup(t, devbroker.Config{AckTimeout: scaledAckTimeout, RetryTick: 50 * time.Millisecond,
		RedeliveryBaseDelay: 50 * time.Millisecond, RedeliveryMaxDelay: 200 * time.Millisecond}, topic)
	addr := harness.FreeAddr(t)
	s := startSink(t, sinkEnv(broker.URL(), "http://"+addr+"/hook", topic))
	defer stopSink(t, s)
	ctx := context.Background()
	for i := range n {
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: []byte(fmt.Sprint("m-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * scaledAckTimeout) // refused for longer than the broker's delivery attempts would last
	if !s.Running() {
		t.Fatalf("the sink exited while its endpoint was down:\n%s", s.Logs())
	}
	rc := newFlakyReceiver(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	late := &http.Server{Handler: rc.srv.Config.Handler, ReadHeaderTimeout: time.Second}
	go func() { _ = late.Serve(ln) }()
	defer late.Close()
	rc.waitDistinct(t, n)
}
