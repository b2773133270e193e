package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/keyed"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/time/rate"
)

// UserAgent is sent with every request so receivers can tell the connector's traffic apart.
const UserAgent = "danube-sink-http/0.1"

// Sender delivers messages to one endpoint. It is safe for concurrent use, but Deliver keeps the
// routing-key order only within one call and between calls made one after another.
type Sender struct {
	cfg        Config
	log        *slog.Logger
	client     *http.Client
	idemHeader string
	auth       string
	static     http.Header
	signer     *Signer
	limiter    *rate.Limiter
	breaker    *gobreaker.CircuitBreaker[struct{}]
	openedAt   atomic.Int64 // unix nanos of the breaker's last transition to open
	shownURL   string       // the URL with its credentials redacted: for logs and errors
}

// New checks cfg and prepares the sender; it does no I/O besides reading the TLS files.
func New(cfg Config) (*Sender, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sender{cfg: c, log: c.Logger, idemHeader: http.CanonicalHeaderKey(c.IdempotencyHeader), shownURL: config.URL(c.URL).String()}
	rt := c.Transport
	if rt == nil {
		t, err := newTransport(&c)
		if err != nil {
			return nil, err
		}
		rt = t
		if c.InsecureSkipVerify {
			s.log.Warn("TLS certificate verification of the webhook endpoint is DISABLED: anyone on the network path can impersonate it; use only for testing", "url", s.shownURL)
		}
	}
	s.client = &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	if c.Secret != "" {
		if s.signer, err = NewSigner(c.Secret); err != nil {
			return nil, err
		}
	}
	switch {
	case c.BearerToken != "":
		s.auth = "Bearer " + c.BearerToken
	case c.BasicUser != "" || c.BasicPassword != "":
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.BasicUser+":"+c.BasicPassword))
	}
	s.static = make(http.Header, len(c.Headers)+1)
	for k, v := range c.Headers {
		s.static[http.CanonicalHeaderKey(k)] = []string{v}
	}
	if s.static.Get("User-Agent") == "" {
		s.static["User-Agent"] = []string{UserAgent}
	}
	if c.RateLimit > 0 {
		burst := int(c.RateLimit)
		if burst < 1 {
			burst = 1
		}
		s.limiter = rate.NewLimiter(rate.Limit(c.RateLimit), burst)
	}
	if c.BreakerFailures > 0 {
		s.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        s.shownURL,
			MaxRequests: 1,
			Timeout:     c.BreakerOpen,
			ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= uint32(c.BreakerFailures) },
			// A rejection (4xx) proves the endpoint is alive; only retryable failures count.
			IsSuccessful: func(err error) bool { return err == nil || !IsRetryable(err) },
			IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				if to == gobreaker.StateOpen {
					s.openedAt.Store(time.Now().UnixNano())
				}
				s.log.Warn("webhook circuit breaker changed state", "url", s.shownURL, "from", from.String(), "to", to.String())
				if c.Hooks.OnBreaker != nil {
					c.Hooks.OnBreaker(from.String(), to.String())
				}
			},
		})
	}
	return s, nil
}

// checkRedirect follows only 307 and 308, which keep the method and body; a 301/302/303 would turn
// the delivery into a GET without the payload, so it is reported as a rejection instead.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return http.ErrUseLastResponse
	}
	if r := req.Response; r != nil && r.StatusCode != http.StatusTemporaryRedirect && r.StatusCode != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse
	}
	return nil
}

// BreakerState reports the circuit breaker's state ("closed", "open", "half-open"; "disabled"), for
// readiness checks and logs.
func (s *Sender) BreakerState() string {
	if s.breaker == nil {
		return "disabled"
	}
	return s.breaker.State().String()
}

// Close releases idle connections.
func (s *Sender) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Deliver sends msgs and returns one result per message, in the same order: nil when the endpoint
// answered 2xx, else an *Error (see the package doc). Each message is sent once; retrying a
// retryable failure is the caller's (the connector runtime's RETRY_* policy). Up to MaxInFlight
// requests run at once, each carrying up to BatchSize messages (spread over MaxInFlight requests
// when fewer would carry them all, so that they are sent concurrently); messages with the same routing key
// are sent one request after another in slice order, and once one of them fails retryably the
// later ones are not sent (ErrOrderBlocked). With MaxInFlight 1 the whole slice is sent in order
// and a retryable failure blocks every later message. When ctx ends, messages not yet delivered
// report a retryable error wrapping ctx.Err().
func (s *Sender) Deliver(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	switch len(msgs) {
	case 0:
		return errs
	case 1: // the streaming runtime's call: no scheduling needed
		errs[0] = s.send(ctx, msgs, []int{0})
		return errs
	}
	d := &delivery{s: s, ctx: ctx, msgs: msgs, errs: errs, strict: s.cfg.MaxInFlight == 1}
	in := make(chan int, len(msgs)) // all at once, so that requests can carry several messages
	for i := range msgs {
		in <- i
	}
	close(in)
	perRequest := min(s.cfg.BatchSize, (len(msgs)+s.cfg.MaxInFlight-1)/s.cfg.MaxInFlight)
	sched := keyed.Scheduler[string, int]{Key: d.key, Run: d.run, Drop: d.cancelled, Workers: s.cfg.MaxInFlight, Batch: perRequest}
	_ = sched.Serve(context.Background(), ctx, in) // run never fails: nothing halts it
	return errs
}

// delivery is one Deliver call: its messages, by index, scheduled in per-key order.
type delivery struct {
	s      *Sender
	ctx    context.Context
	msgs   []Message
	errs   []error
	strict bool // MaxInFlight 1: one order for all messages

	mu      sync.Mutex
	blocked map[string]bool // ordering keys with a retryable failure: later messages are not sent
}

// key is message i's ordering key: its routing key, or one key for all in strict order.
func (d *delivery) key(i int) (string, bool) {
	if d.strict {
		return "", true
	}
	return d.msgs[i].Key, d.msgs[i].Key != ""
}

// run sends, as one request, the messages of batch that no earlier failure of their key blocks.
func (d *delivery) run(ctx context.Context, batch []int) error {
	if ctx.Err() != nil {
		d.cancelled(batch)
		return nil
	}
	send := make([]int, 0, len(batch))
	d.mu.Lock()
	for _, i := range batch {
		if k, ordered := d.key(i); ordered && d.blocked[k] {
			d.errs[i] = &Error{Err: ErrOrderBlocked, retry: true}
		} else {
			send = append(send, i)
		}
	}
	d.mu.Unlock()
	if len(send) == 0 {
		return nil
	}
	slices.Sort(send) // a request lists its messages in topic order
	err := d.s.send(ctx, d.msgs, send)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, i := range send {
		d.errs[i] = err
		if k, ordered := d.key(i); ordered && IsRetryable(err) {
			if d.blocked == nil {
				d.blocked = map[string]bool{}
			}
			d.blocked[k] = true
		}
	}
	return nil
}

// cancelled reports messages not sent because the Deliver context ended.
func (d *delivery) cancelled(batch []int) {
	for _, i := range batch {
		d.errs[i] = &Error{Err: d.ctx.Err(), retry: true}
	}
}

// send delivers one request's worth of messages. It returns nil or an *Error.
func (s *Sender) send(ctx context.Context, msgs []Message, batch []int) error {
	var (
		body []byte
		hdr  http.Header
		id   string
	)
	if len(batch) == 1 && s.cfg.BatchSize == 1 {
		m := &msgs[batch[0]]
		id = m.IdempotencyKey()
		body, hdr = m.Payload, s.singleHeaders(m, id)
	} else {
		ms := make([]*Message, len(batch))
		ids := make([]string, len(batch))
		for j, i := range batch {
			ms[j], ids[j] = &msgs[i], msgs[i].IdempotencyKey()
		}
		id = batchID(ids)
		hdr = s.batchHeaders(ms, id)
		var err error
		if body, err = batchBody(ms, ids); err != nil {
			return &Error{Err: fmt.Errorf("encoding the batch body: %w", err)}
		}
	}
	if e := s.attempt(ctx, body, hdr, id, len(batch)); e != nil {
		return e
	}
	return nil
}

// attempt makes one request through the rate limiter and the circuit breaker.
func (s *Sender) attempt(ctx context.Context, body []byte, hdr http.Header, id string, n int) *Error {
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			return &Error{Err: fmt.Errorf("rate limiter: %w", err), retry: true}
		}
	}
	start := time.Now()
	var e *Error
	if s.breaker == nil {
		e = s.do(ctx, body, hdr, id)
	} else {
		_, err := s.breaker.Execute(func() (struct{}, error) {
			if e = s.do(ctx, body, hdr, id); e != nil {
				return struct{}{}, e
			}
			return struct{}{}, nil
		})
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			e = &Error{Err: ErrBreakerOpen, retry: true, After: s.breakerRemaining()}
		}
	}
	if s.cfg.Hooks.OnAttempt != nil {
		ev := AttemptEvent{Messages: n, Duration: time.Since(start)}
		if e != nil {
			ev.Status, ev.Err = e.Status, e
		}
		s.cfg.Hooks.OnAttempt(ev)
	}
	return e
}

// breakerRemaining estimates how long the breaker stays open, so retries wait for the probe
// instead of spinning on refusals.
func (s *Sender) breakerRemaining() time.Duration {
	d := time.Until(time.Unix(0, s.openedAt.Load()).Add(s.cfg.BreakerOpen))
	if d <= 0 {
		return time.Millisecond
	}
	return d
}

// do makes one HTTP request and classifies its outcome.
func (s *Sender) do(ctx context.Context, body []byte, hdr http.Header, id string) *Error {
	actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, s.cfg.Method, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return &Error{Err: fmt.Errorf("building the request: %w", err)}
	}
	h := hdr.Clone()
	for k, v := range s.static {
		if _, set := h[k]; !set {
			h[k] = v
		}
	}
	if s.auth != "" {
		h["Authorization"] = []string{s.auth}
	}
	if s.signer != nil {
		s.signer.apply(h, id, time.Now(), body)
	}
	req.Header = h
	resp, err := s.client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return &Error{Err: ctx.Err(), retry: true}
		case errors.Is(err, context.DeadlineExceeded):
			return &Error{Err: fmt.Errorf("%s %s: no response within %s", s.cfg.Method, s.shownURL, s.cfg.Timeout), retry: true}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = s.shownURL // net/http hides a password, but not a token in the query
		}
		return &Error{Err: err, retry: true}
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, int64(s.cfg.BodyExcerpt)))
	e := &Error{Status: resp.StatusCode, Body: strings.ToValidUTF8(string(excerpt), "\uFFFD"),
		retry: retryableStatus(resp.StatusCode) || slices.Contains(s.cfg.RetryStatuses, resp.StatusCode)}
	if e.retry {
		e.After = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), s.cfg.MaxRetryAfter)
	}
	return e
}

func validName(s string) bool  { return httpguts.ValidHeaderFieldName(s) }
func validValue(s string) bool { return httpguts.ValidHeaderFieldValue(s) }
