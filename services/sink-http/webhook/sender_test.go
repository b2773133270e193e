package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hit is one request as the receiver saw it.
type hit struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a real HTTP server that records every request and answers with handle (nil = 200).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	handle func(n int, w http.ResponseWriter, r *http.Request) // n is the 1-based request number
}

func newReceiver(t *testing.T, handle func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{handle: handle}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.hits = append(rc.hits, hit{Header: r.Header.Clone(), Body: body, At: time.Now()})
	n := len(rc.hits)
	rc.mu.Unlock()
	if rc.handle != nil {
		rc.handle(n, w, r)
	}
}

func (rc *receiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// untilDelivered calls Deliver with msgs until every message is delivered, as the runtime retries
// (waiting for an endpoint's Retry-After or an open breaker), and returns each call's results.
func untilDelivered(t *testing.T, s *Sender, msgs ...Message) [][]error {
	t.Helper()
	var calls [][]error
	for range 100 {
		errs := s.Deliver(context.Background(), msgs)
		calls = append(calls, errs)
		var wait time.Duration
		left := msgs[:0:0]
		for i, err := range errs {
			var e *Error
			switch {
			case err == nil:
				continue
			case !IsRetryable(err):
				t.Fatalf("message %d rejected: %v", i, err)
			case errors.As(err, &e):
				wait = max(wait, e.After)
			}
			left = append(left, msgs[i])
		}
		if len(left) == 0 {
			return calls
		}
		msgs = left
		time.Sleep(wait)
	}
	t.Fatalf("not delivered after 100 calls: %v", calls[len(calls)-1])
	return nil
}

func msg(topic string, off uint64, key, payload string) Message {
	return Message{Topic: topic, Offset: off, Key: key, Payload: []byte(payload), PublishTime: time.UnixMilli(1700000000123)}
}

func TestRequestCarriesPayloadIdentityAttributesAuthAndSignature(t *testing.T) {
	rc := newReceiver(t, nil)
	const secret = "whsec_" + "c2VjcmV0LWtleS1ieXRlcw==" // base64("secret-key-bytes")
	s := newSender(t, Config{
		URL: rc.srv.URL, Method: "put", ContentType: "text/plain", Secret: secret,
		Headers: map[string]string{"x-api-key": "k1", "Content-Type": "ignored/static"}, BearerToken: "tok",
	})
	m1 := msg("/default/orders-part-1", 42, "cust-7", `{"id":1}`)
	m1.Attributes = map[string]string{"content-type": "application/json", "trace": "abc", "bad\nname": "x"}
	m2 := msg("/default/orders-part-1", 43, "", "plain")
	for _, err := range s.Deliver(context.Background(), []Message{m1, m2}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Redelivery of the same message must carry the same identity.
	if err := s.Deliver(context.Background(), []Message{m1})[0]; err != nil {
		t.Fatal(err)
	}
	hits := rc.all()
	if len(hits) != 3 {
		t.Fatalf("%d requests, want 3", len(hits))
	}
	h := hits[0].Header
	want := map[string]string{
		"Content-Type":          "application/json",
		"X-Danube-Attr-Trace":   "abc",
		"X-Danube-Topic":        "/default/orders-part-1",
		"X-Danube-Offset":       "42",
		"X-Danube-Key":          "cust-7",
		"X-Danube-Publish-Time": "2023-11-14T22:13:20.123Z",
		"X-Api-Key":             "k1",
		"Authorization":         "Bearer tok",
		"User-Agent":            UserAgent,
		"Idempotency-Key":       m1.IdempotencyKey(),
		"Webhook-Id":            m1.IdempotencyKey(),
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if string(hits[0].Body) != `{"id":1}` {
		t.Errorf("body %q", hits[0].Body)
	}
	if err := Verify(secret, h, hits[0].Body, time.Now(), 0); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if got := hits[1].Header.Get("Content-Type"); got != "text/plain" {
		t.Errorf("configured content type: got %q", got)
	}
	if hits[1].Header.Get("X-Danube-Key") != "" || hits[1].Header.Get("Idempotency-Key") == m1.IdempotencyKey() {
		t.Errorf("second message headers wrong: %v", hits[1].Header)
	}
	if hits[2].Header.Get("Idempotency-Key") != m1.IdempotencyKey() {
		t.Errorf("redelivery changed the idempotency key: %q", hits[2].Header.Get("Idempotency-Key"))
	}
}

func TestDefaultContentTypeAndBasicAuth(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newSender(t, Config{URL: rc.srv.URL, BasicUser: "u", BasicPassword: "p:w", AttributePrefix: "-"})
	m := msg("/a/b", 0, "", "x")
	m.Attributes = map[string]string{"k": "v"}
	if err := s.Deliver(context.Background(), []Message{m})[0]; err != nil {
		t.Fatal(err)
	}
	h := rc.all()[0].Header
	if h.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p:w")); h.Get("Authorization") != want {
		t.Errorf("Authorization %q, want %q", h.Get("Authorization"), want)
	}
	for k := range h {
		if strings.HasPrefix(k, "X-Danube-Attr-") {
			t.Errorf("attribute header %s sent with prefix disabled", k)
		}
	}
}

func TestIdempotencyKeyIsIdentity(t *testing.T) {
	a := Message{Topic: "/t/x-part-0", Offset: 5, ProducerID: 9, RequestID: 3}
	b := a
	b.Payload, b.Attributes, b.Key = []byte("different"), map[string]string{"x": "y"}, "k"
	if a.IdempotencyKey() != b.IdempotencyKey() {
		t.Fatal("key depends on content, not identity")
	}
	for _, c := range []Message{
		{Topic: "/t/x-part-1", Offset: 5, ProducerID: 9, RequestID: 3},
		{Topic: "/t/x-part-0", Offset: 6, ProducerID: 9, RequestID: 3},
		{Topic: "/t/x-part-0", Offset: 5, ProducerID: 9, RequestID: 4},
	} {
		if c.IdempotencyKey() == a.IdempotencyKey() {
			t.Errorf("%+v collides with %+v", c, a)
		}
	}
}

func TestServerErrorsAreRetryableAndRetriesKeepTheKey(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "db down", http.StatusInternalServerError)
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	if calls := untilDelivered(t, s, msg("/a/b", 1, "", "p")); len(calls) != 3 {
		t.Fatalf("delivered on call %d, want 3", len(calls))
	}
	hits := rc.all()
	if len(hits) != 3 {
		t.Fatalf("%d requests, want one per call: 3", len(hits))
	}
	for _, h := range hits {
		if h.Header.Get("Idempotency-Key") != hits[0].Header.Get("Idempotency-Key") || string(h.Body) != "p" {
			t.Fatalf("retry differs: %v %q", h.Header, h.Body)
		}
	}
}

func TestOneAttemptReportsRetryable(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	err := s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "p")})[0]
	var e *Error
	if !errors.As(err, &e) || !e.Retryable() || e.Status != 503 || e.Body != "overloaded\n" {
		t.Fatalf("got %#v", err)
	}
	if want := `webhook: 503 Service Unavailable: "overloaded\n"`; err.Error() != want {
		t.Fatalf("error text %q, want %q", err.Error(), want)
	}
	if len(rc.all()) != 1 {
		t.Fatalf("%d requests, want 1", len(rc.all()))
	}
}

func TestTooManyRequestsReportsRetryAfter(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	calls := untilDelivered(t, s, msg("/a/b", 1, "", "p"))
	var e *Error
	if len(calls) != 2 || !errors.As(calls[0][0], &e) || e.Status != 429 || e.After != time.Second {
		t.Fatalf("results %v; want a 429 asking for 1s, then delivery", calls)
	}
	if hits := rc.all(); len(hits) != 2 || hits[1].At.Sub(hits[0].At) < time.Second {
		t.Fatalf("%d requests; the second one came before the endpoint's Retry-After", len(hits))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"soon", 0}, {"7", 7 * time.Second}, {"99999999999", time.Minute},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Minute},
	} {
		if got := parseRetryAfter(c.v, now, time.Minute); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", c.v, got, c.want)
		}
	}
}

func TestClientErrorIsRejectedWithStatusAndBodyStart(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"field amount is required"}`+strings.Repeat(".", 4096))
	})
	s := newSender(t, Config{URL: rc.srv.URL, BodyExcerpt: 36})
	err := s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "p")})[0]
	var e *Error
	if !errors.As(err, &e) || e.Retryable() || IsRetryable(err) || e.Status != 400 {
		t.Fatalf("got %#v", err)
	}
	if want := `webhook: 400 Bad Request: "{\"error\":\"field amount is required\"}"`; err.Error() != want {
		t.Fatalf("error %q, want %q", err.Error(), want)
	}
	if len(rc.all()) != 1 {
		t.Fatalf("a rejected message was sent %d times", len(rc.all()))
	}
}

func TestRequestTimeoutStatusIsRetryable(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusRequestTimeout)
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	if calls := untilDelivered(t, s, msg("/a/b", 1, "", "p")); len(calls) != 2 || len(rc.all()) != 2 {
		t.Fatalf("results %v after %d requests; want the 408 retried", calls, len(rc.all()))
	}
}

func TestSlowResponseTimesOutRetryably(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // hang until the client gives up
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL, Timeout: 50 * time.Millisecond})
	calls := untilDelivered(t, s, msg("/a/b", 1, "", "p"))
	if want := "webhook: POST " + rc.srv.URL + ": no response within 50ms"; len(calls) != 2 || calls[0][0].Error() != want {
		t.Fatalf("results %v, want %q, then delivery", calls, want)
	}
	if len(rc.all()) != 2 {
		t.Fatalf("%d requests, want 2", len(rc.all()))
	}
}

func TestConnectionResetIsRetryable(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			_ = conn.(*net.TCPConn).SetLinger(0) // RST instead of FIN
			_ = conn.Close()
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	calls := untilDelivered(t, s, msg("/a/b", 1, "", "p"))
	var e *Error
	if len(calls) != 2 || !errors.As(calls[0][0], &e) || e.Status != 0 || e.Err == nil || !e.Retryable() {
		t.Fatalf("results %v", calls)
	}
	if len(rc.all()) != 2 {
		t.Fatalf("%d requests, want 2", len(rc.all()))
	}
}

func TestEndpointDownThenBackLosesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // endpoint down: connection refused

	s := newSender(t, Config{URL: "http://" + addr + "/hook", MaxInFlight: 2})
	msgs := []Message{msg("/a/b", 1, "k1", "1"), msg("/a/b", 2, "k2", "2"), msg("/a/b", 3, "k1", "3"), msg("/a/b", 4, "k2", "4")}
	for i, err := range s.Deliver(context.Background(), msgs) {
		if !IsRetryable(err) || (i >= 2) != errors.Is(err, ErrOrderBlocked) {
			t.Fatalf("message %d while the endpoint is down: %v; want a retryable failure, the later ones of each key not sent", i, err)
		}
	}
	// Back up on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	rc := &receiver{}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(rc.serve)}}
	srv.Start()
	defer srv.Close()
	untilDelivered(t, s, msgs...)
	got := map[string][]string{}
	for _, h := range rc.all() {
		k := h.Header.Get("X-Danube-Key")
		got[k] = append(got[k], string(h.Body))
	}
	if fmt.Sprint(got["k1"]) != "[1 3]" || fmt.Sprint(got["k2"]) != "[2 4]" {
		t.Fatalf("delivered %v, want k1:[1 3] k2:[2 4]", got)
	}
}

func TestCircuitBreakerStopsHammeringAndProbes(t *testing.T) {
	var healthy atomic.Bool
	var mu sync.Mutex
	var events []string // requests and breaker transitions, in order
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		events = append(events, "request")
		mu.Unlock()
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	var probes atomic.Int32
	s := newSender(t, Config{URL: rc.srv.URL, BreakerFailures: 3, BreakerOpen: 20 * time.Millisecond,
		Hooks: Hooks{OnBreaker: func(from, to string) {
			mu.Lock()
			events = append(events, from+">"+to)
			mu.Unlock()
			if to == "half-open" && probes.Add(1) == 3 {
				healthy.Store(true) // the endpoint comes back after the third probe is let through
			}
		}}})
	untilDelivered(t, s, msg("/a/b", 1, "", "p"))
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(events, " ")
	want := "request request request closed>open " +
		"open>half-open request half-open>open " +
		"open>half-open request half-open>open " +
		"open>half-open request half-open>closed"
	if got != want {
		t.Fatalf("events:\n%s\nwant:\n%s", got, want)
	}
	if s.BreakerState() != "closed" {
		t.Fatalf("breaker %s", s.BreakerState())
	}
}

func TestBreakerOpenIsRetryableWhenRetriesAreExhausted(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	s := newSender(t, Config{URL: rc.srv.URL, BreakerFailures: 1, BreakerOpen: time.Hour})
	_ = s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "p")})
	err := s.Deliver(context.Background(), []Message{msg("/a/b", 2, "", "p")})[0]
	var e *Error
	if !errors.Is(err, ErrBreakerOpen) || !errors.As(err, &e) || !e.Retryable() || e.After <= 59*time.Minute {
		t.Fatalf("got %#v", err)
	}
	if len(rc.all()) != 1 {
		t.Fatalf("open breaker let %d requests through", len(rc.all())-1)
	}
}

func TestConcurrencyKeepsOrderPerKey(t *testing.T) {
	const inFlight, keys, perKey = 4, 10, 20
	var cur, peak atomic.Int32
	gate := make(chan struct{})
	var gateOnce sync.Once
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if c := cur.Add(1); c > peak.Load() {
			peak.Store(c)
		}
		if cur.Load() == inFlight {
			gateOnce.Do(func() { close(gate) })
		}
		select { // hold the first requests until all workers are busy at once
		case <-gate:
		case <-time.After(5 * time.Second):
		}
		cur.Add(-1)
	})
	s := newSender(t, Config{URL: rc.srv.URL, MaxInFlight: inFlight})
	var msgs []Message
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, msg("/a/b", uint64(len(msgs)), fmt.Sprintf("key-%d", k), fmt.Sprint(i)))
		}
	}
	for i, err := range s.Deliver(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	select {
	case <-gate:
	default:
		t.Fatalf("never had %d requests in flight at once (peak %d)", inFlight, peak.Load())
	}
	if peak.Load() > inFlight {
		t.Fatalf("peak in flight %d > %d", peak.Load(), inFlight)
	}
	seq := map[string][]string{}
	for _, h := range rc.all() {
		k := h.Header.Get("X-Danube-Key")
		seq[k] = append(seq[k], string(h.Body))
	}
	want := fmt.Sprint(func() []string {
		var w []string
		for i := range perKey {
			w = append(w, fmt.Sprint(i))
		}
		return w
	}())
	for k := range keys {
		if got := fmt.Sprint(seq[fmt.Sprintf("key-%d", k)]); got != want {
			t.Errorf("key-%d order %s, want %s", k, got, want)
		}
	}
}

func TestFailedMessageBlocksLaterMessagesOfItsKey(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Danube-Offset") == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL, MaxInFlight: 2})
	errs := s.Deliver(context.Background(), []Message{
		msg("/a/b", 1, "a", "a1"), msg("/a/b", 2, "b", "b1"), msg("/a/b", 3, "a", "a2"), msg("/a/b", 4, "b", "b2"),
	})
	if !IsRetryable(errs[0]) || errs[1] != nil || !errors.Is(errs[2], ErrOrderBlocked) || !IsRetryable(errs[2]) || errs[3] != nil {
		t.Fatalf("results %v", errs)
	}
	for _, h := range rc.all() {
		if string(h.Body) == "a2" {
			t.Fatal("a2 was sent although a1 failed")
		}
	}
}

func TestBatchModeSendsJSONArrays(t *testing.T) {
	rc := newReceiver(t, nil)
	const secret = "batch-secret"
	s := newSender(t, Config{URL: rc.srv.URL, BatchSize: 3, Secret: secret})
	var msgs []Message
	for i := range 5 {
		m := msg("/default/ev", uint64(10+i), "k", fmt.Sprintf(`{"n":%d}`, i))
		if i == 1 {
			m.Payload = []byte{0xff, 0x00, 'x'}
			m.Attributes = map[string]string{"a": "b"}
		}
		msgs = append(msgs, m)
	}
	for _, err := range s.Deliver(context.Background(), msgs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	hits := rc.all()
	if len(hits) != 2 {
		t.Fatalf("%d requests, want 2", len(hits))
	}
	if h := hits[0].Header; h.Get("Content-Type") != "application/json" || h.Get("X-Danube-Batch-Size") != "3" ||
		h.Get("X-Danube-Topic") != "/default/ev" || !strings.HasPrefix(h.Get("Idempotency-Key"), "dnbb_") {
		t.Fatalf("batch headers %v", h)
	}
	if err := Verify(secret, hits[0].Header, hits[0].Body, time.Now(), 0); err != nil {
		t.Fatalf("batch signature: %v", err)
	}
	var items []map[string]any
	if err := json.Unmarshal(hits[0].Body, &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0]["id"] != msgs[0].IdempotencyKey() || items[0]["offset"] != 10.0 ||
		items[0]["payload"].(map[string]any)["n"] != 0.0 || items[0]["publish_time"] != "2023-11-14T22:13:20.123Z" {
		t.Fatalf("first batch %s", hits[0].Body)
	}
	if items[1]["payload_base64"] != base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 'x'}) || items[1]["payload"] != nil ||
		items[1]["attributes"].(map[string]any)["a"] != "b" {
		t.Fatalf("binary payload item %v", items[1])
	}
	if !bytes.Contains(hits[1].Body, []byte(`"payload":{"n":4}`)) {
		t.Fatalf("second batch %s", hits[1].Body)
	}
}

func TestRateLimitSpacesRequests(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newSender(t, Config{URL: rc.srv.URL, RateLimit: 20, MaxInFlight: 4})
	var msgs []Message
	for i := range 25 { // burst of 20, then 5 more at 20/s: at least 250 ms
		msgs = append(msgs, msg("/a/b", uint64(i), "", "x"))
	}
	start := time.Now()
	for _, err := range s.Deliver(context.Background(), msgs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 240*time.Millisecond {
		t.Fatalf("25 requests at 20/s took only %s", d)
	}
}

func TestConnectionsAreReused(t *testing.T) {
	rc := &receiver{}
	var conns atomic.Int32
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	s := newSender(t, Config{URL: rc.srv.URL})
	for i := range 50 {
		if err := s.Deliver(context.Background(), []Message{msg("/a/b", uint64(i), "", "x")})[0]; err != nil {
			t.Fatal(err)
		}
	}
	if conns.Load() != 1 {
		t.Fatalf("50 sequential requests opened %d connections, want 1", conns.Load())
	}
}

func TestRedirects(t *testing.T) {
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		code := http.StatusFound
		if r.URL.Path == "/keep" {
			code = http.StatusPermanentRedirect
		}
		http.Redirect(w, r, target.srv.URL+"/moved", code)
	})
	s := newSender(t, Config{URL: rc.srv.URL + "/keep"})
	if err := s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "body")})[0]; err != nil {
		t.Fatal(err)
	}
	if h := target.all(); len(h) != 1 || string(h[0].Body) != "body" {
		t.Fatalf("308 not followed with the body: %v", h)
	}
	s2 := newSender(t, Config{URL: rc.srv.URL + "/other"})
	err := s2.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "body")})[0]
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusFound || e.Retryable() {
		t.Fatalf("302: got %v", err)
	}
}

func TestCancelledContextReportsRetryable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		cancel()
		w.WriteHeader(http.StatusBadGateway)
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	errs := s.Deliver(ctx, []Message{msg("/a/b", 1, "", "x"), msg("/a/b", 2, "", "y")})
	for i, err := range errs {
		if !IsRetryable(err) {
			t.Errorf("message %d: %v is not retryable", i, err)
		}
	}
	if !errors.Is(errs[1], context.Canceled) || len(rc.all()) != 1 {
		t.Errorf("unsent message: %v after %d requests", errs[1], len(rc.all()))
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "ftp://x"}, `webhook: URL "ftp://x": want an absolute http or https URL`},
		{Config{URL: "http://x", Method: "get"}, `webhook: Method "get": want POST, PUT or PATCH (the payload is the body)`},
		{Config{URL: "http://x", MaxInFlight: -1}, `webhook: MaxInFlight -1: must not be negative`},
		{Config{URL: "http://x", BreakerFailures: -1}, `webhook: BreakerFailures -1: must not be negative`},
		{Config{URL: "http://x", BearerToken: "t", BasicUser: "u"}, `webhook: BearerToken and BasicUser/BasicPassword are both set; use one`},
		{Config{URL: "http://x", Headers: map[string]string{"bad name": "v"}}, `webhook: Headers: "bad name" is not a valid header name or its value has control characters`},
		{Config{URL: "http://x", CertFile: "c.pem"}, `webhook: CertFile "c.pem" and KeyFile "": set both or neither`},
		{Config{URL: "http://x", CAFile: "/nonexistent/ca.pem"}, `webhook: CAFile "/nonexistent/ca.pem": open /nonexistent/ca.pem: no such file or directory`},
		{Config{URL: "http://x", Secret: "whsec_!!"}, `webhook: signing secret whsec_...: the part after "whsec_" is not valid base64: illegal base64 data at input byte 0`},
	} {
		_, err := New(c.cfg)
		if err == nil || err.Error() != c.want {
			t.Errorf("New(%+v):\n got %v\nwant %s", c.cfg, err, c.want)
		}
	}
}

func TestBatchesKeepKeyOrder(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newSender(t, Config{URL: rc.srv.URL, BatchSize: 4, MaxInFlight: 3})
	var msgs []Message
	for i := range 30 {
		msgs = append(msgs, msg("/a/b", uint64(i), fmt.Sprintf("k%d", i%5), fmt.Sprintf(`{"n":%d}`, i)))
	}
	for i, err := range s.Deliver(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	seq := map[string][]float64{}
	total := 0
	for _, h := range rc.all() {
		var items []struct {
			Key     string `json:"key"`
			Payload struct {
				N float64 `json:"n"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(h.Body, &items); err != nil {
			t.Fatal(err)
		}
		if len(items) > 4 {
			t.Fatalf("batch of %d > BatchSize 4", len(items))
		}
		for _, it := range items {
			seq[it.Key] = append(seq[it.Key], it.Payload.N)
			total++
		}
	}
	if total != 30 {
		t.Fatalf("%d messages delivered, want 30", total)
	}
	for k, ns := range seq {
		for i := 1; i < len(ns); i++ {
			if ns[i] <= ns[i-1] {
				t.Fatalf("key %s out of order: %v", k, ns)
			}
		}
	}
}

// Messages that one request could carry are spread over MaxInFlight requests, sent concurrently.
func TestBatchesSpreadOverMaxInFlight(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newSender(t, Config{URL: rc.srv.URL, BatchSize: 100, MaxInFlight: 3})
	var msgs []Message
	for i := range 12 {
		msgs = append(msgs, msg("/a/b", uint64(i), fmt.Sprint("k", i%6), fmt.Sprint(i)))
	}
	for i, err := range s.Deliver(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	hits := rc.all()
	if len(hits) != 3 {
		t.Fatalf("%d requests, want 3", len(hits))
	}
	for _, h := range hits {
		if n := h.Header.Get("X-Danube-Batch-Size"); n != "4" {
			t.Fatalf("a request of %s messages, want 4", n)
		}
	}
}

func TestSequentialModeKeepsTopicOrder(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL})
	errs := s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "1"), msg("/a/b", 2, "x", "2"), msg("/a/b", 3, "", "3")})
	if !IsRetryable(errs[0]) || !errors.Is(errs[1], ErrOrderBlocked) || !errors.Is(errs[2], ErrOrderBlocked) {
		t.Fatalf("results %v", errs)
	}
	if len(rc.all()) != 1 {
		t.Fatalf("%d requests after the first failed, want none", len(rc.all())-1)
	}
}

func TestRetryStatusesMakeClientErrorsRetryable(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	s := newSender(t, Config{URL: rc.srv.URL, RetryStatuses: []int{401, 403}})
	if calls := untilDelivered(t, s, msg("/a/b", 1, "", "x")); len(calls) != 2 || len(rc.all()) != 2 {
		t.Fatalf("results %v after %d requests; want the 401 retried", calls, len(rc.all()))
	}
	if _, err := New(Config{URL: rc.srv.URL, RetryStatuses: []int{42}}); err == nil || err.Error() != "webhook: RetryStatuses: 42 is not an HTTP status" {
		t.Fatalf("bad status accepted: %v", err)
	}
}
