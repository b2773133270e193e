package sinkhttp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ledger is the ordered log of what the receiver answered and what the sink acked.
type ledger struct {
	mu       sync.Mutex
	events   []string
	acked    map[uint64]int
	ok       map[string][]string // routing key -> payloads answered 2xx, in arrival order
	keys     map[string]string   // payload -> idempotency key of every attempt (must not change)
	attempts map[string]int
	busyAt   time.Time
	changed  chan struct{}
}

func newLedger() *ledger {
	return &ledger{acked: map[uint64]int{}, ok: map[string][]string{}, keys: map[string]string{},
		attempts: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (l *ledger) add(ev string) {
	l.events = append(l.events, ev)
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitFor blocks until cond holds (checked under the lock after every event) or the test times out.
func (l *ledger) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		done := cond()
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-l.changed:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("timed out waiting for %s; events:\n%s", what, strings.Join(l.events, "\n"))
		}
	}
}

const secret = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLXNpbmstaHR0cA=="

// TestSinkDeliversThroughDanube runs the real pipeline: development broker → runtime sink loop with
// this connector (configured from an environment) → a real HTTP receiver, with scripted failures.
func TestSinkDeliversThroughDanube(t *testing.T) {
	broker, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	led := newLedger()
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p := string(body)
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		led.mu.Lock()
		defer led.mu.Unlock()
		led.attempts[p]++
		id := r.Header.Get("Idempotency-Key")
		if prev, seen := led.keys[p]; seen && prev != id {
			led.add(fmt.Sprintf("KEY CHANGED for %s: %s -> %s", p, prev, id))
		}
		led.keys[p] = id
		var off uint64
		if _, err := fmt.Sscan(r.Header.Get("X-Danube-Offset"), &off); err != nil {
			led.add(fmt.Sprintf("BAD OFFSET HEADER for %s: %v", p, err))
		}
		if led.acked[off] > 0 {
			led.add(fmt.Sprintf("ACK BEFORE 2xx: offset %d acked before attempt %d", off, led.attempts[p]))
		}
		switch {
		case strings.HasPrefix(p, "reject"):
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"error":"unknown event type"}`)
			led.add("422 " + p)
			return
		case strings.HasPrefix(p, "busy") && led.attempts[p] == 1:
			led.busyAt = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			led.add("429 " + p)
			return
		case strings.HasPrefix(p, "busy"):
			if gap := time.Since(led.busyAt); gap < time.Second {
				led.add(fmt.Sprintf("RETRY-AFTER IGNORED: %s retried after %s", p, gap))
			}
		case strings.HasPrefix(p, "flaky") && led.attempts[p] <= 2:
			http.Error(w, "try later", http.StatusServiceUnavailable)
			led.add("503 " + p)
			return
		}
		led.ok[r.Header.Get("X-Danube-Key")] = append(led.ok[r.Header.Get("X-Danube-Key")], p)
		led.add(fmt.Sprintf("200 offset %d %s", off, p))
	}))
	defer rc.Close()

	var cfg Config
	if err := config.Load(&cfg, []string{
		"DANUBE_SERVICE_URL=" + broker.URL(), "DANUBE_TOPIC=/default/events", "SUBSCRIPTION_NAME=webhook",
		"CONNECTOR_NAME=webhook-test", "TARGET_URL=" + rc.URL + "/hook", "METRICS_ADDR=",
		"WEBHOOK_SECRET=" + secret, "MAX_IN_FLIGHT=4", "BATCH_SIZE=8", "BATCH_TIMEOUT_MS=20",
		"RETRY_BACKOFF_MS=5", "RETRY_MAX_BACKOFF_MS=20", "MAX_RETRIES=-1", "DLQ_TOPIC=/default/events-dlq",
		"BREAKER_FAILURES=0",
	}); err != nil {
		t.Fatal(err)
	}
	client, err := danube.NewClient(broker.URL(), danube.WithHooks(danube.Hooks{OnAck: func(ev danube.AckEvent) {
		if ev.Topic == "/default/events" && !ev.Nack && ev.Err == nil {
			led.mu.Lock()
			led.acked[ev.Offset]++
			led.add(fmt.Sprintf("ack offset %d", ev.Offset))
			led.mu.Unlock()
		}
	}}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: "/default/events", Name: "test-producer", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	dlq, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: "/default/events-dlq", Name: "dlq-reader", Subscription: "check", Type: danube.Exclusive})
	if err != nil {
		// The DLQ topic exists only once the sink's DLQ producer created it; create it first.
		p, perr := client.NewProducer(ctx, danube.ProducerOptions{Topic: "/default/events-dlq", Name: "dlq-init", Dispatch: danube.Reliable})
		if perr != nil {
			t.Fatal(err, perr)
		}
		_ = p.Close()
		if dlq, err = client.Subscribe(ctx, danube.ConsumerOptions{Topic: "/default/events-dlq", Name: "dlq-reader", Subscription: "check", Type: danube.Exclusive}); err != nil {
			t.Fatal(err)
		}
	}
	defer dlq.Close()

	// A new subscription starts at the topic's tail: create it before producing.
	pre, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: "/default/events", Name: "webhook-test", Subscription: "webhook", Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	_ = pre.Close()

	conn, err := New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.NewServer() // metrics and readiness, not served
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() {
		runErr <- runtime.RunSink(runCtx, &cfg.SinkConfig, conn, runtime.WithClient(client, nil), runtime.WithTelemetry(tel))
	}()

	keys := []string{"a", "b", "c"}
	var want = map[string][]string{}
	const n = 60
	for i := range n {
		k := keys[i%len(keys)]
		p := fmt.Sprintf("event-%02d", i)
		switch i {
		case 7, 31:
			p = fmt.Sprintf("flaky-%02d", i)
		case 20:
			p = "reject-20"
		case 45:
			p = "busy-45"
		}
		if !strings.HasPrefix(p, "reject") {
			want[k] = append(want[k], p)
		}
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: []byte(p), Key: k,
			Attributes: map[string]string{"content-type": "text/plain", "seq": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}

	led.waitFor(t, "every message delivered and acked", func() bool {
		got := 0
		for _, v := range led.ok {
			got += len(v)
		}
		return got >= n-1 && len(led.acked) >= n
	})

	select {
	case m := <-dlq.Messages():
		if string(m.Payload) != "reject-20" || m.Attributes["seq"] != "20" || m.Attributes[runtime.AttrOriginalTopic] != "/default/events" {
			t.Errorf("dead letter %q attrs %v", m.Payload, m.Attributes)
		}
		reason := m.Attributes[runtime.AttrFailureReason]
		if want := `endpoint rejected the message: webhook: 422 Unprocessable Entity: "{\"error\":\"unknown event type\"}"`; reason != want {
			t.Errorf("failure reason %q, want %q", reason, want)
		}
		_ = dlq.Ack(ctx, m)
	case <-time.After(20 * time.Second):
		t.Fatal("the rejected message never reached the dead-letter topic")
	}

	stop()
	if err := <-runErr; err != nil {
		t.Fatalf("RunSink: %v", err)
	}

	led.mu.Lock()
	defer led.mu.Unlock()
	for _, ev := range led.events {
		if strings.HasPrefix(ev, "ACK BEFORE") || strings.HasPrefix(ev, "KEY CHANGED") || strings.HasPrefix(ev, "RETRY-AFTER") || strings.HasPrefix(ev, "BAD OFFSET") {
			t.Error(ev)
		}
	}
	for _, k := range keys {
		if got := strings.Join(dedupe(led.ok[k]), " "); got != strings.Join(want[k], " ") {
			t.Errorf("key %s delivered\n %s\nwant\n %s", k, got, strings.Join(want[k], " "))
		}
	}
	if led.attempts["flaky-07"] != 3 || led.attempts["reject-20"] != 1 || led.attempts["busy-45"] != 2 {
		t.Errorf("attempts: flaky-07 %d (want 3), reject-20 %d (want 1), busy-45 %d (want 2)",
			led.attempts["flaky-07"], led.attempts["reject-20"], led.attempts["busy-45"])
	}
}

// dedupe drops redeliveries (a payload seen again), keeping first-arrival order.
func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestDesignComposeBlockLoads checks that the reference docker-compose environment for
// connector-http-sink (docs/connectors.md) is a complete, valid configuration as written.
func TestDesignComposeBlockLoads(t *testing.T) {
	var cfg Config
	err := config.Load(&cfg, []string{
		"DANUBE_SERVICE_URL=http://danube-broker:6650",
		"DANUBE_TOPIC=/default/notifications",
		"SUBSCRIPTION_NAME=webhook-sink",
		"CONNECTOR_NAME=webhook-1",
		"TARGET_URL=https://hooks.slack.com/services/YOUR/WEBHOOK/URL",
		"HTTP_METHOD=POST",
		"TIMEOUT_MS=5000",
		"MAX_RETRIES=3",
		"RETRY_BACKOFF_MS=1000",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SubscriptionType != danube.Exclusive || cfg.Timeout.D() != 5*time.Second || cfg.MaxRetries != 3 ||
		cfg.RetryBackoff.D() != time.Second || cfg.MaxInFlight != 1 || cfg.BatchMode != Single {
		t.Fatalf("loaded %+v", cfg)
	}
}

func TestConfigProblemsNameTheVariable(t *testing.T) {
	base := []string{"DANUBE_SERVICE_URL=http://b:6650", "DANUBE_TOPIC=/default/t", "SUBSCRIPTION_NAME=s", "CONNECTOR_NAME=c"}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"TARGET_URL=ftp://x", "HTTP_METHOD=GET"}, "TARGET_URL=\"ftp://x\": want an absolute http:// or https:// URL\n  HTTP_METHOD=\"GET\": want POST, PUT or PATCH (the payload is the body)"},
		{[]string{"TARGET_URL=http://x", "MAX_IN_FLIGHT=0", "RATE_LIMIT_RPS=-1"}, "MAX_IN_FLIGHT=\"0\": must be 1 to 10000\n  RATE_LIMIT_RPS=\"-1\": must not be negative"},
		{[]string{"TARGET_URL=http://x", "BATCH_MODE=zip"}, `BATCH_MODE="zip": want "single" or "array"`},
		{[]string{"TARGET_URL=http://x", "HTTP_HEADERS=novalue"}, `HTTP_HEADERS="[REDACTED]": want comma-separated Name:value pairs; pair 1 has no name or no ':'`},
		{[]string{"TARGET_URL=http://x", "AUTH_BEARER_TOKEN=t", "AUTH_BASIC_USER=u"}, `AUTH_BEARER_TOKEN="[REDACTED]": set together with AUTH_BASIC_USER/AUTH_BASIC_PASSWORD; use one`},
		{[]string{"TARGET_URL=http://x", "WEBHOOK_SECRET=whsec_!"}, `WEBHOOK_SECRET="[REDACTED]": signing secret whsec_...: the part after "whsec_" is not valid base64: illegal base64 data at input byte 0`},
		{[]string{"TARGET_URL=http://x", "HTTP_HEADERS=bad name:v"}, `HTTP_HEADERS="[REDACTED]": Headers: "bad name" is not a valid header name or its value has control characters`},
		{[]string{"TARGET_URL=http://x", "RETRY_STATUSES=401,7"}, `RETRY_STATUSES="[401 7]": RetryStatuses: 7 is not an HTTP status`},
		{[]string{"TARGET_URL=http://x", "IDEMPOTENCY_HEADER=bad header"}, `IDEMPOTENCY_HEADER="bad header": IdempotencyHeader "bad header" is not a valid header name`},
		{[]string{"TARGET_URL=http://x", "TLS_CA_FILE=/nonexistent.pem"}, `TLS_CA_FILE="/nonexistent.pem": CAFile "/nonexistent.pem": open /nonexistent.pem: no such file or directory`},
	} {
		var cfg Config
		err := config.Load(&cfg, append(append([]string{}, base...), c.env...))
		if err == nil || !strings.Contains(err.Error(), "\n  "+c.want) {
			t.Errorf("env %v:\n got %v\nwant a problem %q", c.env, err, c.want)
		}
	}
}

// A value that fails to parse must not hide the other problems: parse errors, runtime validation,
// this connector's validation and the engine's checks are reported together, each with its
// variable and value.
func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	var cfg Config
	err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=tcp://b", "DANUBE_TOPIC=/default/t", "SUBSCRIPTION_NAME=s", "CONNECTOR_NAME=c",
		"TIMEOUT_MS=soon", "MAX_IN_FLIGHT=many", "BATCH_SIZE=0", "HTTP_METHOD=GET", "TARGET_URL=ftp://x",
		"IDEMPOTENCY_HEADER=bad header", "WEBHOOK_SECRET=whsec_!", "RETRY_EXHAUSTED=dlq"})
	want := `invalid configuration (9 problems):
  MAX_IN_FLIGHT="many": want an integer (invalid syntax)
  TIMEOUT_MS="soon": want a non-negative integer number of milliseconds
  DANUBE_SERVICE_URL="tcp://b": want http://host:port or https://host:port
  BATCH_SIZE="0": must be 1 to 10000 (the broker's largest window)
  DLQ_TOPIC: required when RETRY_EXHAUSTED=dlq
  TARGET_URL="ftp://x": want an absolute http:// or https:// URL
  HTTP_METHOD="GET": want POST, PUT or PATCH (the payload is the body)
  IDEMPOTENCY_HEADER="bad header": IdempotencyHeader "bad header" is not a valid header name
  WEBHOOK_SECRET="[REDACTED]": signing secret whsec_...: the part after "whsec_" is not valid base64: illegal base64 data at input byte 0`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

// NewConnector logs with the logger the runtime hands it (LOG_LEVEL, LOG_FORMAT), not its own.
func TestNewConnectorUsesTheRuntimeLogger(t *testing.T) {
	var cfg Config
	if err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://b:6650", "DANUBE_TOPIC=/default/t", "SUBSCRIPTION_NAME=s",
		"CONNECTOR_NAME=c", "TARGET_URL=https://x.example", "TLS_INSECURE_SKIP_VERIFY=true"}); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	res := runtime.NewResources(&cfg.Common, runtime.WithLogger(telemetry.NewLogger(&logs, slog.LevelWarn, telemetry.JSON)))
	conn, err := NewConnector(&cfg, res)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Shutdown(context.Background())
	want := `"level":"WARN","msg":"TLS certificate verification of the webhook endpoint is DISABLED: anyone on the network path can impersonate it; use only for testing","connector":"c","url":"https://x.example"}` + "\n"
	if !strings.HasSuffix(logs.String(), want) || strings.Count(logs.String(), "\n") != 1 {
		t.Fatalf("logs:\n%s\nwant one line ending %s", logs.String(), want)
	}
}

// One configuration layer: with every variable at its documented default the engine is configured
// with those values, and a variable's zero means what the engine's zero field means
// (BREAKER_FAILURES=0: no breaker).
func TestVariablesAndEngineAgree(t *testing.T) {
	load := func(env ...string) (*Config, webhook.Config) {
		t.Helper()
		var cfg Config
		if err := config.Load(&cfg, append([]string{"DANUBE_SERVICE_URL=http://b:6650", "DANUBE_TOPIC=/default/t",
			"SUBSCRIPTION_NAME=s", "CONNECTOR_NAME=c", "TARGET_URL=http://x"}, env...)); err != nil {
			t.Fatal(err)
		}
		wc, err := cfg.webhookConfig()
		if err != nil {
			t.Fatal(err)
		}
		return &cfg, wc
	}
	_, wc := load()
	if wc.Method != http.MethodPost || wc.Timeout != 5*time.Second || wc.ContentType != "application/octet-stream" ||
		wc.AttributePrefix != "X-Danube-Attr-" || wc.IdempotencyHeader != "Idempotency-Key" || wc.RateLimit != 0 ||
		wc.BreakerFailures != 5 || wc.BreakerOpen != 10*time.Second || wc.MaxRetryAfter != 5*time.Minute {
		t.Fatalf("defaults gave the engine %+v", wc)
	}
	for env, want := range map[string]string{"BREAKER_FAILURES=5": "closed", "BREAKER_FAILURES=0": "disabled"} {
		cfg, _ := load(env)
		c, err := New(cfg, WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.sender.BreakerState(); got != want {
			t.Errorf("%s: breaker %s, want %s", env, got, want)
		}
		_ = c.Shutdown(context.Background())
	}
}
