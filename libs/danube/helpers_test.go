package danube

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastBroker is a development broker with millisecond timers.
func fastBroker(t testing.TB, cfg devbroker.Config) *devbroker.Broker {
	t.Helper()
	if cfg.RedeliveryBaseDelay == 0 {
		cfg.RedeliveryBaseDelay = 10 * time.Millisecond
	}
	if cfg.RedeliveryMaxDelay == 0 {
		cfg.RedeliveryMaxDelay = 50 * time.Millisecond
	}
	if cfg.RetryTick == 0 {
		cfg.RetryTick = 5 * time.Millisecond
	}
	if cfg.CursorFlushInterval == 0 {
		cfg.CursorFlushInterval = 10 * time.Millisecond
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = "-"
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatalf("devbroker.Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// fastOpts make retries and health checks take milliseconds.
func fastOpts(extra ...Option) []Option {
	return append([]Option{
		WithBackoff(ExponentialBackoff{Initial: 2 * time.Millisecond, Max: 20 * time.Millisecond}),
		WithHealthCheckInterval(10 * time.Millisecond),
		WithMaxRetries(20),
	}, extra...)
}

func newTestClient(t testing.TB, url string, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(url, fastOpts(opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustProducer(t testing.TB, c *Client, o ProducerOptions) *Producer {
	t.Helper()
	p, err := c.NewProducer(testCtx(t), o)
	if err != nil {
		t.Fatalf("NewProducer(%+v): %v", o, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func mustConsumer(t testing.TB, c *Client, o ConsumerOptions) *Consumer {
	t.Helper()
	cons, err := c.Subscribe(testCtx(t), o)
	if err != nil {
		t.Fatalf("Subscribe(%+v): %v", o, err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons
}

func mustSend(t testing.TB, p *Producer, m ProducerMessage) uint64 {
	t.Helper()
	id, err := p.Send(testCtx(t), m)
	if err != nil {
		t.Fatalf("Send(%q): %v", m.Payload, err)
	}
	return id
}

// receive waits for the next message.
func receive(t testing.TB, cons *Consumer) *Message {
	t.Helper()
	select {
	case m, ok := <-cons.Messages():
		if !ok {
			t.Fatal("Messages() closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return nil
}

// expectNone asserts nothing arrives within d.
func expectNone(t testing.TB, cons *Consumer, d time.Duration) {
	t.Helper()
	select {
	case m := <-cons.Messages():
		t.Fatalf("unexpected message %q on %s offset %d", m.Payload, m.Topic, m.Offset)
	case <-time.After(d):
	}
}

// events records hook calls for assertions.
type events struct {
	mu         sync.Mutex
	sends      []SendEvent
	receives   []ReceiveEvent
	acks       []AckEvent
	retries    []RetryEvent
	reconnects []ReconnectEvent
	changed    chan struct{}
}

func newEvents() *events { return &events{changed: make(chan struct{}, 1)} }

func (e *events) note() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *events) hooks() Hooks {
	return Hooks{
		OnSend:      func(ev SendEvent) { e.mu.Lock(); e.sends = append(e.sends, ev); e.mu.Unlock(); e.note() },
		OnReceive:   func(ev ReceiveEvent) { e.mu.Lock(); e.receives = append(e.receives, ev); e.mu.Unlock(); e.note() },
		OnAck:       func(ev AckEvent) { e.mu.Lock(); e.acks = append(e.acks, ev); e.mu.Unlock(); e.note() },
		OnRetry:     func(ev RetryEvent) { e.mu.Lock(); e.retries = append(e.retries, ev); e.mu.Unlock(); e.note() },
		OnReconnect: func(ev ReconnectEvent) { e.mu.Lock(); e.reconnects = append(e.reconnects, ev); e.mu.Unlock(); e.note() },
	}
}

// waitFor waits until cond (evaluated under the lock) holds.
func (e *events) waitFor(t testing.TB, what string, cond func(e *events) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-deadline:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("timed out waiting for %s; reconnects=%+v retries=%d", what, e.reconnects, len(e.retries))
		}
	}
}

func (e *events) reconnected(kind string) int {
	n := 0
	for _, r := range e.reconnects {
		if r.Kind == kind && r.Err == nil {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds; used only for state that has no event.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// hs256 mints a JWT signed with secret, valid for ttl (negative = expired).
func hs256(secret []byte, ttl time.Duration) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := enc.EncodeToString([]byte(fmt.Sprintf(`{"iss":"danube-auth","sub":"tester","exp":%d,"principal_type":"service_account","principal_name":"tester"}`, time.Now().Add(ttl).Unix())))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(header + "." + claims))
	return header + "." + claims + "." + enc.EncodeToString(mac.Sum(nil))
}

// current returns the partition producer's session.
func (pp *partitionProducer) current() *session {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.cur
}

func (s *session) isDead() bool { return s.dead.Load() != nil }
