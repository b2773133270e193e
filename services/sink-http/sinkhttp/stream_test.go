package sinkhttp

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// TestSinkKeepsMaxInFlightWithSlowKeys: the receiver's latency varies per routing key and one
// request ("slow-0") hangs until the test lets it go. The sink must keep MAX_IN_FLIGHT requests
// in flight (never more), deliver the other keys' messages — far more than a BATCH_SIZE — while
// slow-0 hangs, send slow-1 only after slow-0 was answered, and keep every key's order.
func TestSinkKeepsMaxInFlightWithSlowKeys(t *testing.T) {
	const maxInFlight, perKey = 4, 10
	b := runtimetest.StartBroker(t)
	topic := "/default/slow-keys"
	runtimetest.CreateTopic(t, b, topic)

	latency := map[string]time.Duration{"a": 0, "b": time.Millisecond, "c": 3 * time.Millisecond, "d": 5 * time.Millisecond}
	release, full := make(chan struct{}), make(chan struct{})
	free := sync.OnceFunc(func() { close(release) })
	var (
		mu        sync.Mutex
		active    int
		maxActive int
		byKey     = map[string][]string{}
		log       []string
		others    int
		othersIn  = make(chan struct{}, 100)
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p, key := string(body), r.Header.Get("X-Danube-Key")
		mu.Lock()
		active++
		maxActive = max(maxActive, active)
		if active == maxInFlight {
			select {
			case <-full:
			default:
				close(full)
			}
		}
		log = append(log, "start "+p)
		mu.Unlock()
		if p == "slow-0" {
			<-release
		} else if key != "slow" {
			<-full // the first requests wait until MAX_IN_FLIGHT are in flight together
			time.Sleep(latency[key])
		}
		mu.Lock()
		active--
		byKey[key] = append(byKey[key], p)
		log = append(log, "200 "+p)
		if key != "slow" {
			others++
		}
		mu.Unlock()
		if key != "slow" {
			othersIn <- struct{}{}
		}
	}))
	defer rc.Close()

	var cfg Config
	if err := config.Load(&cfg, []string{
		"DANUBE_SERVICE_URL=" + b.URL(), "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=slow-keys-sub",
		"CONNECTOR_NAME=slow-keys", "TARGET_URL=" + rc.URL, "METRICS_ADDR=",
		fmt.Sprintf("MAX_IN_FLIGHT=%d", maxInFlight), "BATCH_SIZE=10", "BATCH_TIMEOUT_MS=5",
		"RETRY_BACKOFF_MS=5", "RETRY_MAX_BACKOFF_MS=20", "SHUTDOWN_TIMEOUT_MS=5000",
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := runtimetest.StartSink(t, &cfg.SinkConfig, conn)
	t.Cleanup(free) // registered after StartSink's: a failing test does not hang its stop

	msgs := []danube.ProducerMessage{{Payload: []byte("slow-0"), Key: "slow"}}
	for i := range perKey {
		for _, k := range []string{"a", "b", "c", "d"} {
			msgs = append(msgs, danube.ProducerMessage{Payload: []byte(fmt.Sprintf("%s-%d", k, i)), Key: k})
		}
	}
	msgs = append(msgs, danube.ProducerMessage{Payload: []byte("slow-1"), Key: "slow"})
	runtimetest.Produce(t, b, topic, msgs...)

	timeout := time.After(20 * time.Second)
	for range 4 * perKey { // every other key's message while slow-0 hangs
		select {
		case <-othersIn:
		case <-timeout:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%d of %d other messages delivered while slow-0 hangs; requests: %q", others, 4*perKey, log)
		}
	}
	r.WaitMetric(t, `connector_records_processed_total{connector="slow-keys"}`, 4*perKey)
	mu.Lock()
	if slices.Contains(log, "start slow-1") {
		t.Errorf("slow-1 was sent while slow-0 was in flight: %q", log)
	}
	mu.Unlock()
	free()
	r.WaitMetric(t, `connector_records_processed_total{connector="slow-keys"}`, 4*perKey+2)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if maxActive != maxInFlight {
		t.Errorf("at most %d requests in flight, want MAX_IN_FLIGHT=%d", maxActive, maxInFlight)
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		var want []string
		for i := range perKey {
			want = append(want, fmt.Sprintf("%s-%d", k, i))
		}
		if !slices.Equal(byKey[k], want) {
			t.Errorf("key %s arrived as %q, want %q", k, byKey[k], want)
		}
	}
	if got := strings.Join(byKey["slow"], ","); got != "slow-0,slow-1" {
		t.Errorf("key slow arrived as %s, want slow-0,slow-1", got)
	}
}

// TestConformanceStreaming runs the runtime's sink conformance suite (crash and restart, no ack
// before the write, broker restart, dead letter, graceful drain) against a real receiver, with
// MAX_IN_FLIGHT=4: the streaming path.
func TestConformanceStreaming(t *testing.T) {
	var (
		mu      sync.Mutex
		written []string
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == "invalid" {
			http.Error(w, "unknown event type", http.StatusBadRequest)
			return
		}
		mu.Lock()
		written = append(written, string(body))
		mu.Unlock()
	}))
	defer rc.Close()
	runtimetest.SinkSuite{
		New: func(t *testing.T, sc *runtime.SinkConfig) runtime.SinkConnector {
			cfg := &Config{
				SinkConfig: *sc, TargetURL: config.URL(rc.URL), HTTPMethod: http.MethodPost, Timeout: config.Millis(5 * time.Second),
				ContentType: "application/octet-stream", AttributePrefix: "X-Danube-Attr-", IdempotencyHeader: "Idempotency-Key",
				MaxRetryAfter: config.Millis(time.Second),
			}
			conn, err := New(cfg, WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			if !conn.Concurrent() {
				t.Fatal("Concurrent() = false in BATCH_MODE=single")
			}
			return conn
		},
		Configure: func(sc *runtime.SinkConfig) { sc.MaxInFlight = 4 },
		Written: func(*testing.T) []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(written)
		},
		Reset: func(*testing.T) {
			mu.Lock()
			defer mu.Unlock()
			written = nil
		},
		Valid:   func(i int) []byte { return []byte(fmt.Sprintf("event-%03d", i)) },
		Invalid: []byte("invalid"),
	}.Run(t)
}
