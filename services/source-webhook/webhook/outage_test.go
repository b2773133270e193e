package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// attemptLog records every attempt of the retrying senders.
type attemptLog struct {
	mu       sync.Mutex
	accepted map[string]bool
	refused  []response
	early    []string // answered 2xx though sent after the broker stopped and answered before it started
}

// sendUntilAccepted posts payload until it is answered 2xx, as a webhook provider retries: 503
// and 429 are retried (sooner than Retry-After asks, to keep the test short). stoppedAt and
// startedAt give the outage window; a 2xx for an attempt entirely inside it is a broken contract.
func (l *attemptLog) sendUntilAccepted(t *testing.T, url, payload string, stoppedAt, startedAt *atomic.Int64) {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		sent := time.Now().UnixNano()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered := time.Now().UnixNano()
		l.mu.Lock()
		if resp.StatusCode == http.StatusOK {
			l.accepted[payload] = true
			if s := stoppedAt.Load(); s != 0 && sent > s && (startedAt.Load() == 0 || answered < startedAt.Load()) {
				l.early = append(l.early, payload)
			}
			l.mu.Unlock()
			return
		}
		l.refused = append(l.refused, response{code: resp.StatusCode, body: string(body), hdr: resp.Header})
		l.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s never accepted", payload)
}

// TestDanubeOutage: while the broker is down, requests are answered 503 with Retry-After (after
// WEBHOOK_ACK_TIMEOUT_MS, then at once), never 2xx, and /readyz is not ready; once it is back the
// retried requests are accepted and every request answered 2xx has its event in Danube.
func TestDanubeOutage(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic, col := topicFor(t, b, "outage")
	cfg := loadConfig(t, b, "wh-outage", topic, "WEBHOOK_ROUTES=/in="+topic,
		"WEBHOOK_ACK_TIMEOUT_MS=400", "WEBHOOK_WRITE_TIMEOUT_MS=5000", "WEBHOOK_RETRY_AFTER_MS=1500")
	r := start(t, cfg)
	log := &attemptLog{accepted: map[string]bool{}}
	var stoppedAt, startedAt atomic.Int64
	url := r.url + "/in"
	for i := range 5 {
		log.sendUntilAccepted(t, url, fmt.Sprintf(`{"n":%d}`, i), &stoppedAt, &startedAt)
	}
	col.WaitFor(t, "the first 5", func(ms []*danube.Message) bool { return len(ms) >= 5 })

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt.Store(time.Now().UnixNano())
	var senders sync.WaitGroup
	for w := range 8 {
		senders.Go(func() {
			for i := range 10 {
				log.sendUntilAccepted(t, url, fmt.Sprintf(`{"n":%d}`, 100+w*10+i), &stoppedAt, &startedAt)
			}
		})
	}
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		log.mu.Lock()
		n := len(log.refused)
		log.mu.Unlock()
		if n >= 40 && r.Telemetry.Ready(context.Background()) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals and /readyz %v during the outage, want 40 and not ready", n, r.Telemetry.Ready(context.Background()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	startedAt.Store(time.Now().UnixNano())
	senders.Wait()

	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.early) > 0 {
		t.Fatalf("answered 2xx while Danube was down: %q", log.early)
	}
	fast := 0
	for _, ref := range log.refused {
		if ref.code != http.StatusServiceUnavailable || ref.hdr.Get("Retry-After") != "2" {
			t.Fatalf("refusal %d %s with Retry-After %q, want 503 with Retry-After 2", ref.code, ref.body, ref.hdr.Get("Retry-After"))
		}
		if strings.Contains(ref.body, "acknowledged nothing") {
			fast++
		}
	}
	if fast == 0 {
		t.Error("no request was refused at once while Danube acknowledged nothing")
	}
	got := col.WaitFor(t, "every accepted event", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		for p := range log.accepted {
			if !seen[p] {
				return false
			}
		}
		return true
	})
	if len(log.accepted) != 85 {
		t.Fatalf("%d payloads accepted, want 85", len(log.accepted))
	}
	t.Logf("%d refusals (%d at once), %d messages for 85 accepted payloads (more are retries whose first attempt Danube got later)",
		len(log.refused), fast, len(got))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrencyCap: above WEBHOOK_MAX_CONCURRENT requests in progress, a request is answered 503
// with Retry-After at once.
func TestConcurrencyCap(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic, col := topicFor(t, b, "cap")
	cfg := loadConfig(t, b, "wh-cap", topic, "WEBHOOK_ROUTES=/in="+topic, "WEBHOOK_MAX_CONCURRENT=1", "WEBHOOK_ACK_TIMEOUT_MS=20000", "WEBHOOK_WRITE_TIMEOUT_MS=30000")
	r := start(t, cfg)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	first := make(chan response, 1)
	go func() { first <- post(t, r.url+"/in", "application/json", `{"first":1}`) }()
	deadline := time.Now().Add(runtimetest.Timeout)
	for r.src.pending.Load() == 0 { // the first request is waiting for Danube
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the runtime")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := post(t, r.url+"/in", "application/json", `{"second":1}`)
	second.want(t, "second request", http.StatusServiceUnavailable, "WEBHOOK_MAX_CONCURRENT")
	if second.hdr.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	(<-first).want(t, "first request once Danube is back", http.StatusOK)
	col.WaitFor(t, "the first event", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestGracefulStop: requests arriving while the connector stops are answered 200 (their events
// are in Danube) or 503 with Retry-After; none is left without an answer, and nothing answered
// 200 is missing.
func TestGracefulStop(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "drain")
	cfg := loadConfig(t, b, "wh-drain", topic, "WEBHOOK_ROUTES=/in="+topic)
	r := start(t, cfg)
	var (
		mu       sync.Mutex
		accepted []string
		refused  int
		wg       sync.WaitGroup
		sent     atomic.Int64
	)
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				req, _ := http.NewRequest(http.MethodPost, r.url+"/in", strings.NewReader(p))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil { // the listener is closed: connection refused
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode == http.StatusOK:
					accepted = append(accepted, p)
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
					refused++
				default:
					t.Errorf("answered %d during the stop", resp.StatusCode)
				}
				mu.Unlock()
			}
		})
	}
	for sent.Load() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	close(stop)
	wg.Wait()
	if _, err := net.DialTimeout("tcp", r.src.listenAddr(), time.Second); err == nil {
		t.Error("the listener still accepts connections after the stop")
	}
	mu.Lock()
	defer mu.Unlock()
	got := col.WaitFor(t, "every accepted event", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		for _, p := range accepted {
			if !seen[p] {
				return false
			}
		}
		return true
	})
	t.Logf("%d accepted, %d refused 503, %d messages", len(accepted), refused, len(got))
}

// TestSlowClientsAreCutOff: clients that never finish their headers are disconnected after
// WEBHOOK_READ_HEADER_TIMEOUT_MS, and hold at most WEBHOOK_MAX_CONNECTIONS connections meanwhile:
// a normal request beside them waits for a free connection and is answered.
func TestSlowClientsAreCutOff(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, _ := topicFor(t, b, "slow")
	cfg := loadConfig(t, b, "wh-slow", topic, "WEBHOOK_ROUTES=/in="+topic, "WEBHOOK_READ_HEADER_TIMEOUT_MS=300",
		"WEBHOOK_MAX_CONNECTIONS=5")
	r := start(t, cfg)
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", r.src.listenAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	post(t, r.url+"/in", "application/json", `{"ok":1}`).want(t, "a normal request beside slow ones", http.StatusOK)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(runtimetest.Timeout))
		_, err := io.ReadAll(c) // returns once the server closed the connection
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow connection %d still open after %v", i, runtimetest.Timeout)
		}
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
