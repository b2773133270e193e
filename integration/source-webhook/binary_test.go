// Package sourcewebhook runs the built source-webhook binary (or its image, IT_SOURCE_WEBHOOK_IMAGE)
// end to end, configured by environment only: concurrent senders that retry until answered 2xx,
// a kill -9 of the connector and a Danube outage in the middle, and a probe consumer that checks
// every request answered 2xx has its event in Danube.
package sourcewebhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestMain runs the tests, then terminates any container they started and checks for leaked
// goroutines.
func TestMain(m *testing.M) { harness.Main(m) }

const timeout = 60 * time.Second

// client keeps no idle connections, so that none outlives a test and trips goleak.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func start(t *testing.T, env map[string]string) *harness.Connector {
	t.Helper()
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-webhook", Env: env})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKillAndOutageWhileSending: 32 concurrent senders post 1,920 events (IT_WEBHOOK_PER_SENDER
// events each, default 60: 313 makes the 10,016-request run), retrying each until 2xx
// (as webhook providers do); the connector is killed with -9 and restarted, then Danube is stopped
// for 20 s, while they send. Every event answered 2xx is in Danube, and an event is there more than
// once only if its request was sent more than once.
func TestKillAndOutageWhileSending(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/webhook-it"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "probe")
	addr := harness.FreeAddr(t)
	c := start(t, map[string]string{
		"DANUBE_SERVICE_URL": b.URL(), "CONNECTOR_NAME": harness.Name(t), "LOG_LEVEL": "warn", "LOG_FORMAT": "text",
		"WEBHOOK_ADDR": addr, "WEBHOOK_ROUTES": "/in=" + topic + " key=json:sender",
		"WEBHOOK_ACK_TIMEOUT_MS": "1000", "WEBHOOK_RETRY_AFTER_MS": "1000",
		"RETRY_BACKOFF_MS": "50", "RETRY_MAX_BACKOFF_MS": "500",
	})
	const senders = 32
	each := 60
	if v := os.Getenv("IT_WEBHOOK_PER_SENDER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 20 {
			t.Fatalf("IT_WEBHOOK_PER_SENDER=%q: want a whole number of at least 20", v)
		}
		each = n
	}
	var (
		accepted sync.Map // payload → attempts it took
		answered atomic.Int64
		retries  atomic.Int64
		wg       sync.WaitGroup
	)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				p := fmt.Sprintf(`{"sender":"s%d","i":%d}`, s, i)
				for attempts, deadline := 1, time.Now().Add(2*time.Minute); ; attempts++ {
					if time.Now().After(deadline) {
						t.Errorf("%s never accepted", p)
						return
					}
					resp, err := client.Post("http://"+addr+"/in", "application/json", strings.NewReader(p))
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							accepted.Store(p, attempts)
							answered.Add(1)
							break
						}
						if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
							t.Errorf("%s answered %d", p, resp.StatusCode)
							return
						}
					}
					retries.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	waitFor := func(n int64) {
		for answered.Load() < n {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(300)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(600)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	attempts := map[string]int{}
	accepted.Range(func(k, v any) bool { attempts[k.(string)] = v.(int); return true })
	got := col.WaitFor(t, "every accepted event", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		for p := range attempts {
			if !seen[p] {
				return false
			}
		}
		return true
	})
	if len(attempts) != senders*each {
		t.Fatalf("%d events accepted, want %d", len(attempts), senders*each)
	}
	// Copies are distinct offsets: the probe also receives a message again after the broker restart.
	copies := map[string]map[uint64]bool{}
	for _, m := range got {
		p := string(m.Payload)
		if copies[p] == nil {
			copies[p] = map[uint64]bool{}
		}
		copies[p][m.Offset] = true
	}
	stored := 0
	for p, offsets := range copies {
		stored += len(offsets)
		if len(offsets) > 1 && attempts[p] == 1 {
			t.Errorf("%s is %d times in Danube but was sent once", p, len(offsets))
		}
	}
	t.Logf("%d events, %d messages in Danube (duplicates only from the %d retried attempts)", len(attempts), stored, retries.Load())

	metrics := scrape(t, c.MetricsURL())
	if !strings.Contains(metrics, "webhook_requests_total{") || !strings.Contains(metrics, "webhook_request_duration_seconds_bucket{") {
		t.Errorf("the webhook metrics are not exported:\n%s", metrics)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, c.Logs())
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBadConfigExitsListingEveryProblem: the binary exits 2 at startup and names every bad variable
// with its value, and never prints the secret.
func TestBadConfigExitsListingEveryProblem(t *testing.T) {
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-webhook", Env: map[string]string{
		"DANUBE_SERVICE_URL": "http://127.0.0.1:1", "CONNECTOR_NAME": "bad", "WEBHOOK_HMAC_SECRET": "s3cretPW",
		"WEBHOOK_ADDR": "nowhere", "WEBHOOK_ROUTES": "GET /a=/default/a;/b=/default/b auth=basic;/c=/default/c auth=jwt", "WEBHOOK_MAX_CONCURRENT": "0",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.Wait(ctx)
	var exit *harness.ExitError
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Fatalf("exit %v, want code 2\n%s", err, c.Logs())
	}
	logs := c.Logs()
	for _, want := range []string{`WEBHOOK_ADDR="nowhere"`, `method "GET"`, `option auth=basic`, `auth=jwt needs jwks=`, `WEBHOOK_MAX_CONCURRENT="0"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the output does not say %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "s3cretPW") {
		t.Errorf("the output shows the secret:\n%s", logs)
	}
}
