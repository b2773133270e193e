// Package sinkhttp_test runs the sink-http service end to end: the development broker, the
// sink-http binary as a separate process (or its container image, IT_SINK_HTTP_IMAGE) configured
// only by its environment, and an HTTP receiver.
package sinkhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// TestMain runs the tests, then terminates any container they started and checks for leaked
// goroutines. With IT_SINK_HTTP_IMAGE set the sink runs as that container image instead of the
// binary (see harness.StartConnector).
func TestMain(m *testing.M) { harness.Main(m) }

// receiver records every request: payload → idempotency keys of each arrival.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string][]string
	arrived chan struct{} // one token per new distinct payload
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{keys: map[string][]string{}, arrived: make(chan struct{}, 1<<16)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		p := string(body)
		if len(p) > 64 {
			p = p[:64]
		}
		first := len(rc.keys[p]) == 0
		rc.keys[p] = append(rc.keys[p], r.Header.Get("Idempotency-Key"))
		rc.mu.Unlock()
		if first {
			rc.arrived <- struct{}{}
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// waitDistinct blocks until n distinct payloads arrived.
func (rc *receiver) waitDistinct(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for i := 0; i < n; i++ {
		select {
		case <-rc.arrived:
		case <-deadline:
			rc.mu.Lock()
			got := len(rc.keys)
			rc.mu.Unlock()
			t.Fatalf("timed out: %d of %d distinct messages arrived", got, n)
		}
	}
}

// startSink starts one sink-http (process or container) with exactly env.
func startSink(t testing.TB, env []string) *harness.Connector {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-http", Env: m})
}

func sinkEnv(brokerURL, target, topic string, extra ...string) []string {
	return append([]string{
		"DANUBE_SERVICE_URL=" + brokerURL, "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=webhook-sink",
		"CONNECTOR_NAME=webhook-1", "TARGET_URL=" + target, "LOG_FORMAT=text",
		"RETRY_BACKOFF_MS=10", "RETRY_MAX_BACKOFF_MS=100", "MAX_RETRIES=-1", "BATCH_TIMEOUT_MS=5",
		"SHUTDOWN_TIMEOUT_MS=5000",
	}, extra...)
}

// setup starts a broker, creates the reliable topic and the sink's subscription (a new
// subscription starts at the tail), and returns the broker and a producer.
func setup(t testing.TB, cfg devbroker.Config, topic string) (*devbroker.Broker, *danube.Client, *danube.Producer) {
	t.Helper()
	broker, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	client, prod := connect(t, broker.URL(), topic)
	return broker, client, prod
}

// connect creates the reliable topic on the broker at url and the sink's subscription (a new
// subscription starts at the tail), and returns a client and a producer.
func connect(t testing.TB, url, topic string) (*danube.Client, *danube.Producer) {
	t.Helper()
	client, err := danube.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "it-producer", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	pre, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "webhook-1", Subscription: "webhook-sink", Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	_ = pre.Close()
	return client, prod
}

// TestKillNineMidStreamLosesNothing kills the sink with SIGKILL while messages are flowing,
// restarts it, and checks that every message arrived at least once and that every duplicate
// carries the idempotency key of its first delivery. It needs nothing but a broker, so it runs
// against a real one with IT_DANUBE_URL.
func TestKillNineMidStreamLosesNothing(t *testing.T) {
	const total = 400
	broker := harness.Danube(t)
	topic := "/default/" + harness.Name(t)
	_, prod := connect(t, broker.URL, topic)
	rc := newReceiver(t)
	env := sinkEnv(broker.URL, rc.srv.URL+"/hook", topic, "MAX_IN_FLIGHT=4", "BATCH_SIZE=10")

	first := startSink(t, env)
	produced := make(chan error, 1)
	go func() {
		for i := range total {
			if _, err := prod.Send(context.Background(), danube.ProducerMessage{
				Payload: []byte(fmt.Sprintf("msg-%04d", i)), Key: fmt.Sprintf("k%d", i%7),
			}); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	rc.waitDistinct(t, total/4, 30*time.Second) // the stream is flowing
	if err := first.Kill(); err != nil {        // SIGKILL
		t.Fatal(err)
	}
	var exit *harness.ExitError
	if err := first.Wait(context.Background()); !errors.As(err, &exit) || exit.Signal() != syscall.SIGKILL {
		t.Fatalf("first sink did not die of SIGKILL: %v\n%s", err, first.Logs())
	}

	second := startSink(t, env)
	rc.waitDistinct(t, total-total/4, 60*time.Second)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	// Graceful stop: SIGTERM drains and exits 0.
	if err := second.Stop(context.Background()); err != nil {
		t.Fatalf("second sink after SIGTERM: %v\n%s", err, second.Logs())
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	dups := 0
	for i := range total {
		p := fmt.Sprintf("msg-%04d", i)
		keys := rc.keys[p]
		if len(keys) == 0 {
			t.Errorf("%s never arrived", p)
			continue
		}
		for _, k := range keys[1:] {
			dups++
			if k != keys[0] {
				t.Errorf("%s redelivered with idempotency key %q, first had %q", p, k, keys[0])
			}
		}
	}
	t.Logf("%d messages, %d redeliveries after kill -9, all with their original idempotency key", total, dups)
	if t.Failed() {
		t.Logf("first sink output:\n%s\nsecond sink output:\n%s", first.Logs(), second.Logs())
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	help := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-http", Args: []string{"--help"}})
	if err := help.Wait(ctx); err != nil {
		t.Fatalf("--help: %v\n%s", err, help.Logs())
	}
	out := help.Logs()
	for _, v := range []string{"DANUBE_SERVICE_URL", "TARGET_URL", "HTTP_METHOD", "TIMEOUT_MS", "RETRY_POLICY", "MAX_RETRIES",
		"RETRY_BACKOFF_MS", "WEBHOOK_SECRET_FILE", "MAX_IN_FLIGHT", "BATCH_SIZE", "RATE_LIMIT_RPS"} {
		if !strings.Contains(out, "\n"+v+" ") {
			t.Errorf("--help does not list %s", v)
		}
	}
	bad := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-http", Env: map[string]string{"TARGET_URL": "ftp://x"}})
	var exit *harness.ExitError
	if err := bad.Wait(ctx); !errors.As(err, &exit) || exit.Code != 2 {
		t.Fatalf("bad config: exit %v, want 2\n%s", err, bad.Logs())
	}
	if !strings.Contains(bad.Logs(), "DANUBE_SERVICE_URL: required, but not set") {
		t.Errorf("bad config output:\n%s", bad.Logs())
	}
}
