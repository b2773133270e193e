package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"
)

// route is a configured route ready to serve.
type route struct {
	RouteSpec
	topic   string
	verify  verifier
	limiter *rate.Limiter     // nil: unlimited
	attrs   map[string]string // the attributes every event of the route has
}

// event is one message to publish.
type event struct {
	payload []byte
	key     string
	attrs   map[string]string
}

// batch is one request's events, handed to Poll whole; it completes when every event's OnAck ran.
type batch struct {
	src    *Source
	route  *route
	events []event
	origin func() string
	idem   *attempt // nil without an idempotency key
	answer answer   // what a successful request is answered

	left atomic.Int64
	err  atomic.Pointer[error]
	done chan struct{}
}

// ack is every event's OnAck: it must not block.
func (b *batch) ack(err error) {
	b.src.progress.Store(time.Now().UnixNano())
	b.src.pending.Add(-1)
	if err != nil {
		b.err.CompareAndSwap(nil, &err)
	}
	if b.left.Add(-1) != 0 {
		return
	}
	if b.idem != nil {
		b.src.idem.finish(b.idem, b.answer, b.err.Load() == nil)
	}
	close(b.done)
}

// ServeHTTP answers one webhook request.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	label, code := s.serve(w, r, start)
	attrs := metric.WithAttributes(attribute.String("route", label), attribute.Int("code", code))
	s.requests.Add(context.Background(), 1, attrs)
	s.latency.Record(context.Background(), time.Since(start).Seconds(), metric.WithAttributes(attribute.String("route", label)))
}

// statusClientGone is counted for a request whose sender left before the answer (nginx's 499).
const statusClientGone = 499

// serve handles r and returns the route's label for metrics and the status answered.
func (s *Source) serve(w http.ResponseWriter, r *http.Request, start time.Time) (string, int) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		return "", s.unavailable(w, "too many requests in progress (WEBHOOK_MAX_CONCURRENT)")
	}
	byMethod := s.routes[r.URL.Path]
	if byMethod == nil {
		return "", reply(w, http.StatusNotFound, "no route for "+r.URL.Path)
	}
	rt := byMethod[r.Method]
	if rt == nil {
		w.Header().Set("Allow", strings.Join(slices.Sorted(maps.Keys(byMethod)), ", "))
		return r.URL.Path, reply(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	}
	return rt.Path, s.serveRoute(w, r, rt, start)
}

func (s *Source) serveRoute(w http.ResponseWriter, r *http.Request, rt *route, start time.Time) int {
	if s.isStopping() {
		w.Header().Set("Connection", "close")
		return s.unavailable(w, "the connector is shutting down")
	}
	if rt.limiter != nil {
		res := rt.limiter.ReserveN(start, 1)
		if d := res.DelayFrom(start); d > 0 || !res.OK() {
			res.CancelAt(start)
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(d)))
			return reply(w, http.StatusTooManyRequests, "rate limit of this route exceeded")
		}
	}
	kind := kindOf(r.Header.Get("Content-Type"))
	if rt.Types&kind == 0 {
		return reply(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q not accepted here (accepted: %s)", r.Header.Get("Content-Type"), rt.Types))
	}
	if r.ContentLength > rt.MaxBody {
		w.Header().Set("Connection", "close")
		return reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is above the limit of %d", r.ContentLength, rt.MaxBody))
	}
	if !rt.Auth.signed() { // credentials that do not sign the body are checked before reading it
		if code := s.authenticate(w, r, rt, nil, start); code != 0 {
			return code
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is above the limit of %d bytes", rt.MaxBody))
		}
		return reply(w, http.StatusBadRequest, "reading the body: "+err.Error())
	}
	if rt.Auth.signed() {
		if code := s.authenticate(w, r, rt, body, start); code != 0 {
			return code
		}
	}
	events, err := s.events(r, rt, kind, body, start)
	if err != nil {
		return reply(w, http.StatusBadRequest, err.Error())
	}
	b := &batch{src: s, route: rt, events: events, done: make(chan struct{})}
	b.answer = answer{status: http.StatusOK, body: fmt.Appendf(nil, `{"accepted":%d}`+"\n", len(events))}
	b.left.Store(int64(len(events)))
	origin := fmt.Sprintf("HTTP %s %s from %s at %s", r.Method, rt.Path, r.RemoteAddr, start.UTC().Format(time.RFC3339Nano))
	b.origin = func() string { return origin }
	if rt.Idempotency != "" {
		if key := r.Header.Get(rt.Idempotency); key != "" {
			sum := sha256.Sum256(body)
			a, first := s.idem.begin(rt.Method+" "+rt.Path+"\x00"+key, sum, start)
			if !first {
				return s.replay(w, r, a, sum)
			}
			b.idem = a
		}
	}
	return s.publish(w, r, b)
}

// authenticate checks r's credentials; it answers 401 or 403 and returns the status when they
// are missing or wrong, 0 when they pass.
func (s *Source) authenticate(w http.ResponseWriter, r *http.Request, rt *route, body []byte, now time.Time) int {
	err := rt.verify.verify(r.Header, body, now)
	if err == nil {
		return 0
	}
	s.log.Debug("request refused by auth", "path", rt.Path, "remote_addr", r.RemoteAddr, "reason", err.Error())
	if errors.Is(err, errUnauthenticated) {
		return reply(w, http.StatusUnauthorized, "authentication required ("+rt.Auth.String()+")")
	}
	return reply(w, http.StatusForbidden, "authentication failed: "+err.Error())
}

// publish hands b to Poll and answers once Danube acknowledged all of it, or 503.
func (s *Source) publish(w http.ResponseWriter, r *http.Request, b *batch) int {
	forget := func() {
		if b.idem != nil {
			s.idem.finish(b.idem, answer{}, false)
		}
	}
	if d, stalled := s.stalled(); stalled {
		forget()
		return s.unavailable(w, fmt.Sprintf("Danube has acknowledged nothing for %v", d.Round(time.Second)))
	}
	timeout := time.NewTimer(s.cfg.AckTimeout.D())
	defer timeout.Stop()
	n := int64(len(b.events))
	if s.pending.Load() == 0 {
		s.progress.Store(time.Now().UnixNano())
	}
	s.pending.Add(n)
	select {
	case s.in <- b:
	case <-timeout.C:
		s.pending.Add(-n)
		forget()
		return s.unavailable(w, "Danube is not taking events (not handed over within WEBHOOK_ACK_TIMEOUT_MS)")
	case <-s.stopping:
		s.pending.Add(-n)
		forget()
		w.Header().Set("Connection", "close")
		return s.unavailable(w, "the connector is shutting down")
	case <-r.Context().Done():
		s.pending.Add(-n)
		forget()
		return statusClientGone
	}
	select {
	case <-b.done:
	case <-timeout.C:
		return s.unavailable(w, "Danube has not acknowledged the events within WEBHOOK_ACK_TIMEOUT_MS")
	case <-r.Context().Done():
		return statusClientGone
	}
	if errp := b.err.Load(); errp != nil {
		return s.unavailable(w, "the events were not published: "+(*errp).Error())
	}
	return write(w, b.answer)
}

// replay answers a request whose idempotency key was seen: the first request's answer once it has
// one, without publishing again.
func (s *Source) replay(w http.ResponseWriter, r *http.Request, a *attempt, sum [sha256.Size]byte) int {
	if a.hash != sum {
		return reply(w, http.StatusUnprocessableEntity, "idempotency key reused with a different body")
	}
	timeout := time.NewTimer(s.cfg.AckTimeout.D())
	defer timeout.Stop()
	select {
	case <-a.done:
	case <-timeout.C:
		return s.unavailable(w, "a request with this idempotency key is still waiting for Danube")
	case <-r.Context().Done():
		return statusClientGone
	}
	if !a.ok {
		return s.unavailable(w, "the first request with this idempotency key failed; retry")
	}
	w.Header().Set("Idempotent-Replayed", "true")
	return write(w, a.ans)
}

func (s *Source) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// unavailable answers 503 with Retry-After.
func (s *Source) unavailable(w http.ResponseWriter, reason string) int {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(s.cfg.RetryAfter.D())))
	return reply(w, http.StatusServiceUnavailable, reason)
}

// reply answers status with {"error": reason}.
func reply(w http.ResponseWriter, status int, reason string) int {
	b, _ := json.Marshal(map[string]string{"error": reason})
	return write(w, answer{status: status, body: append(b, '\n')})
}

func write(w http.ResponseWriter, a answer) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
	return a.status
}

// kindOf classifies a Content-Type header.
func kindOf(contentType string) ContentTypes {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return Raw
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return JSON
	case mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl" ||
		mt == "application/x-jsonlines" || mt == "application/jsonlines":
		return NDJSON
	case mt == "application/x-www-form-urlencoded":
		return Form
	}
	return Raw
}

// events splits a request body into its events, with their keys and attributes; an error is the
// sender's (400) and names what is wrong.
func (s *Source) events(r *http.Request, rt *route, kind ContentTypes, body []byte, received time.Time) ([]event, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty body")
	}
	attrs := s.attributes(r, rt, received)
	switch kind {
	case JSON:
		ev, err := jsonEvent(body, rt, r.Header, attrs)
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		return []event{ev}, nil
	case NDJSON:
		var out []event
		for i, line := range bytes.Split(body, []byte("\n")) {
			if line = bytes.TrimSpace(line); len(line) == 0 {
				continue
			}
			lineAttrs := make(map[string]string, len(attrs)+1)
			maps.Copy(lineAttrs, attrs)
			lineAttrs[AttrLine] = strconv.Itoa(i + 1)
			ev, err := jsonEvent(line, rt, r.Header, lineAttrs)
			if err != nil {
				return nil, fmt.Errorf("malformed JSON on line %d: %w (nothing was published)", i+1, err)
			}
			out = append(out, ev)
		}
		return out, nil
	case Form:
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("malformed form body: %w", err)
		}
		obj := make(map[string]any, len(vals))
		for k, v := range vals {
			if len(v) == 1 {
				obj[k] = v[0]
			} else {
				obj[k] = v
			}
		}
		payload, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		return []event{mustJSONEvent(payload, rt, r.Header, attrs)}, nil
	}
	return []event{{payload: body, key: headerKey(rt, r.Header), attrs: attrs}}, nil
}

// jsonEvent validates one JSON value and takes its routing key.
func jsonEvent(b []byte, rt *route, h http.Header, attrs map[string]string) (event, error) {
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return event{}, err
	}
	return mustJSONEvent(b, rt, h, attrs), nil
}

// mustJSONEvent builds the event of valid JSON b.
func mustJSONEvent(b []byte, rt *route, h http.Header, attrs map[string]string) event {
	ev := event{payload: b, attrs: attrs, key: headerKey(rt, h)}
	if rt.Key.Field != nil {
		ev.key = fieldKey(b, rt.Key.Field)
	}
	return ev
}

func headerKey(rt *route, h http.Header) string {
	if rt.Key.Header == "" {
		return ""
	}
	return h.Get(rt.Key.Header)
}

// fieldKey returns the value at path in JSON object b as a key: a string as is, a number or a
// boolean as written; "" when absent or not a scalar.
func fieldKey(b []byte, path []string) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return ""
	}
	for _, p := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = obj[p]
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// attributes returns the attributes every event of request r has.
func (s *Source) attributes(r *http.Request, rt *route, received time.Time) map[string]string {
	attrs := make(map[string]string, len(rt.attrs)+5+len(rt.Headers))
	maps.Copy(attrs, rt.attrs)
	attrs[AttrRemoteAddr] = r.RemoteAddr
	attrs[AttrReceivedAt] = received.UTC().Format(time.RFC3339Nano)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		attrs[AttrContentType] = ct
	}
	for _, h := range rt.Headers {
		if v := r.Header.Get(h); v != "" {
			attrs[AttrHeaderPrefix+strings.ToLower(h)] = v[:min(len(v), maxAttrValue)]
		}
	}
	if rt.Idempotency != "" {
		if v := r.Header.Get(rt.Idempotency); v != "" {
			attrs[AttrIdempotency] = v[:min(len(v), maxAttrValue)]
		}
	}
	return attrs
}
