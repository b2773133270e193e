package webhook

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestAnsweredOnceDanubeHasTheEvent: a JSON event is answered 200 and is then in Danube with its
// routing key (a JSON field) and attributes (method, path, remote address, received time, the
// allow-listed headers).
func TestAnsweredOnceDanubeHasTheEvent(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "accept")
	cfg := loadConfig(t, b, "wh-accept", topic, "WEBHOOK_ROUTES=/hooks/orders="+topic+" key=json:customer.id headers=X-Source,User-Agent")
	r := start(t, cfg)

	post(t, r.url+"/hooks/orders", "application/json", `{"customer":{"id":42},"total":7}`, "X-Source", "shop-1").
		want(t, "JSON event", http.StatusOK, `"accepted":1`)
	ms := col.WaitFor(t, "the event", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	m := ms[0]
	if string(m.Payload) != `{"customer":{"id":42},"total":7}` || m.Key != "42" {
		t.Fatalf("message %q key %q, want the body and key 42", m.Payload, m.Key)
	}
	for k, want := range map[string]string{
		AttrMethod: "POST", AttrPath: "/hooks/orders", AttrContentType: "application/json",
		AttrHeaderPrefix + "x-source": "shop-1", AttrAuthScheme: "none",
	} {
		if got := m.Attributes[k]; got != want {
			t.Errorf("attribute %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(m.Attributes[AttrRemoteAddr], "127.0.0.1:") || m.Attributes[AttrReceivedAt] == "" {
		t.Errorf("attributes %v lack the remote address or the received time", m.Attributes)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestBodyKinds: NDJSON is one event per line, answered once all are in Danube, and all or
// nothing when a line is malformed; a form body is one JSON object; raw bodies only where
// accepted.
func TestBodyKinds(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "kinds")
	cfg := loadConfig(t, b, "wh-kinds", topic,
		"WEBHOOK_ROUTES=/in="+topic+" key=json:id;/raw="+topic+" types=raw key=header:X-Device")
	r := start(t, cfg)

	post(t, r.url+"/in", "application/x-ndjson", "{\"id\":1}\n{\"id\":2}\nnot json\n{\"id\":4}\n").
		want(t, "NDJSON with a bad line", http.StatusBadRequest, "line 3", "nothing was published")
	post(t, r.url+"/in", "application/x-ndjson", "{\"id\":\"a\"}\n\n{\"id\":\"b\"}\r\n{\"id\":\"c\"}").
		want(t, "NDJSON", http.StatusOK, `"accepted":3`)
	post(t, r.url+"/in", "application/x-www-form-urlencoded", "id=f&tag=x&tag=y").
		want(t, "form", http.StatusOK, `"accepted":1`)
	post(t, r.url+"/raw", "text/plain", "plain text", "X-Device", "dev-9").want(t, "raw", http.StatusOK)
	post(t, r.url+"/in", "text/plain", "plain text").want(t, "raw where not accepted", http.StatusUnsupportedMediaType, "text/plain")

	ms := col.WaitFor(t, "5 events", func(ms []*danube.Message) bool { return len(ms) >= 5 })
	var got []string
	for _, m := range ms {
		got = append(got, m.Key+"="+string(m.Payload))
		if m.Key == "c" && m.Attributes[AttrLine] != "4" {
			t.Errorf("the third NDJSON event has line %q, want 4", m.Attributes[AttrLine])
		}
	}
	slices.Sort(got) // different keys are published concurrently (PUBLISH_ORDER=key)
	want := []string{`a={"id":"a"}`, `b={"id":"b"}`, `c={"id":"c"}`, "dev-9=plain text", `f={"id":"f","tag":["x","y"]}`}
	if !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q (the bad NDJSON request published nothing)", got, want)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRefusals: unknown path 404, wrong method 405 with Allow, oversized 413 (declared or
// streamed), wrong content type 415, malformed JSON and empty bodies 400 with the reason, above
// the rate limit 429 with Retry-After. Nothing of these reaches Danube.
func TestRefusals(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "refuse")
	cfg := loadConfig(t, b, "wh-refuse", topic,
		"WEBHOOK_ROUTES=/in="+topic+" max_body=64;PUT /limited="+topic+" rate=0.001 burst=2")
	r := start(t, cfg)

	post(t, r.url+"/nope", "application/json", `{}`).want(t, "unknown path", http.StatusNotFound)
	resp := do(t, http.MethodGet, r.url+"/in", "", "")
	resp.want(t, "GET", http.StatusMethodNotAllowed)
	if resp.hdr.Get("Allow") != "POST" {
		t.Errorf("Allow = %q, want POST", resp.hdr.Get("Allow"))
	}
	post(t, r.url+"/in", "application/json", `{"x":"`+strings.Repeat("a", 100)+`"}`).want(t, "oversized", http.StatusRequestEntityTooLarge, "64")
	chunked, err := http.NewRequest(http.MethodPost, r.url+"/in", strings.NewReader(`{"x":"`+strings.Repeat("a", 100)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	chunked.ContentLength = -1 // streamed: the limit applies while reading
	chunked.Header.Set("Content-Type", "application/json")
	if resp, err := client.Do(chunked); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed oversized body: %v %v, want 413", resp, err)
	} else {
		resp.Body.Close()
	}
	post(t, r.url+"/in", "application/xml", `<x/>`).want(t, "XML", http.StatusUnsupportedMediaType, "application/xml", "json,ndjson,form")
	post(t, r.url+"/in", "application/json", `{"a":`).want(t, "malformed", http.StatusBadRequest, "malformed JSON", "unexpected end of JSON input")
	post(t, r.url+"/in", "application/json", `{"a":1} x`).want(t, "trailing data", http.StatusBadRequest, "malformed JSON")
	post(t, r.url+"/in", "application/json", " ").want(t, "empty", http.StatusBadRequest, "empty body")

	for i := range 2 {
		do(t, http.MethodPut, r.url+"/limited", "application/json", `{"n":`+strconv.Itoa(i)+`}`).want(t, "within the burst", http.StatusOK)
	}
	limited := do(t, http.MethodPut, r.url+"/limited", "application/json", `{"n":3}`)
	limited.want(t, "above the rate", http.StatusTooManyRequests)
	if s, err := strconv.Atoi(limited.hdr.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("429 Retry-After = %q, want whole seconds", limited.hdr.Get("Retry-After"))
	}

	post(t, r.url+"/in", "application/json", `{"last":true}`).want(t, "a good one", http.StatusOK)
	got := col.WaitFor(t, "3 events", func(ms []*danube.Message) bool { return len(ms) >= 3 })
	if len(got) != 3 || string(got[2].Payload) != `{"last":true}` {
		t.Fatalf("received %q, want only the 2 limited and the last one", runtimetestPayloads(got))
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

func runtimetestPayloads(ms []*danube.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Payload))
	}
	return out
}

// TestIdempotency: a request repeated with its Idempotency-Key gets the first answer and is not
// published again; the key with another body is refused 422; keys are per route.
func TestIdempotency(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "idem")
	cfg := loadConfig(t, b, "wh-idem", topic, "WEBHOOK_ROUTES=/a="+topic+";/b="+topic)
	r := start(t, cfg)

	first := post(t, r.url+"/a", "application/json", `{"n":1}`, "Idempotency-Key", "k1")
	first.want(t, "first", http.StatusOK)
	again := post(t, r.url+"/a", "application/json", `{"n":1}`, "Idempotency-Key", "k1")
	again.want(t, "repeated", http.StatusOK)
	if again.body != first.body || again.hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeated request answered %q (replayed %q), want %q replayed", again.body, again.hdr.Get("Idempotent-Replayed"), first.body)
	}
	post(t, r.url+"/a", "application/json", `{"n":2}`, "Idempotency-Key", "k1").want(t, "other body", http.StatusUnprocessableEntity)
	post(t, r.url+"/b", "application/json", `{"n":1}`, "Idempotency-Key", "k1").want(t, "other route", http.StatusOK)
	post(t, r.url+"/a", "application/json", `{"n":3}`).want(t, "no key", http.StatusOK)

	got := col.WaitFor(t, "3 events", func(ms []*danube.Message) bool { return len(ms) >= 3 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"n":1}`, `{"n":1}`, `{"n":3}`}
	if p := runtimetestPayloads(col.Messages()); !slices.Equal(p, want) {
		t.Fatalf("received %q, want %q: the repeated request was published again", p, want)
	}
	if got[0].Attributes[AttrIdempotency] != "k1" {
		t.Errorf("attribute %s = %q, want k1", AttrIdempotency, got[0].Attributes[AttrIdempotency])
	}
}
