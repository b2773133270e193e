// Package sinkhttp_test runs the sink-http service end to end: the development broker, the
// sink-http binary as a separate process configured only by its environment, and an HTTP receiver.
package sinkhttp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// binary is the sink-http executable built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sinkhttp-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sink-http")
	build := exec.Command("go", "build", "-o", binary, "github.com/danube-messaging/danube-connect-go/services/sink-http")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sink-http:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

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

// sink is one sink-http process.
type sink struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func startSink(t testing.TB, env []string) *sink {
	t.Helper()
	s := &sink{out: &bytes.Buffer{}}
	s.cmd = exec.Command(binary)
	s.cmd.Env = env // only the configuration: nothing inherited
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func sinkEnv(brokerURL, target, topic string, extra ...string) []string {
	return append([]string{
		"DANUBE_SERVICE_URL=" + brokerURL, "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=webhook-sink",
		"CONNECTOR_NAME=webhook-1", "TARGET_URL=" + target, "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text",
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
	client, err := danube.NewClient(broker.URL())
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
	return broker, client, prod
}

// TestKillNineMidStreamLosesNothing kills the sink with SIGKILL while messages are flowing,
// restarts it, and checks that every message arrived at least once and that every duplicate
// carries the idempotency key of its first delivery.
func TestKillNineMidStreamLosesNothing(t *testing.T) {
	const topic, total = "/default/notifications", 400
	broker, _, prod := setup(t, devbroker.Config{}, topic)
	rc := newReceiver(t)
	env := sinkEnv(broker.URL(), rc.srv.URL+"/hook", topic, "MAX_IN_FLIGHT=4", "BATCH_SIZE=10")

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

	rc.waitDistinct(t, total/4, 30*time.Second)      // the stream is flowing
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	if ws := first.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("first sink did not die of SIGKILL: %v\n%s", first.cmd.ProcessState, first.out)
	}

	second := startSink(t, env)
	rc.waitDistinct(t, total-total/4, 60*time.Second)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}

	// Graceful stop: SIGTERM drains and exits 0.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("second sink after SIGTERM: %v\n%s", err, second.out)
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
		t.Logf("first sink output:\n%s\nsecond sink output:\n%s", first.out, second.out)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, v := range []string{"DANUBE_SERVICE_URL", "TARGET_URL", "HTTP_METHOD", "TIMEOUT_MS", "RETRY_POLICY", "MAX_RETRIES",
		"RETRY_BACKOFF_MS", "WEBHOOK_SECRET_FILE", "MAX_IN_FLIGHT", "BATCH_SIZE", "RATE_LIMIT_RPS"} {
		if !strings.Contains(string(out), "\n"+v+" ") {
			t.Errorf("--help does not list %s", v)
		}
	}
	cmd := exec.Command(binary)
	cmd.Env = []string{"TARGET_URL=ftp://x"}
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("bad config: exit %v, want 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "DANUBE_SERVICE_URL: required, but not set") {
		t.Errorf("bad config output:\n%s", out)
	}
}
