package sink

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// recordingValve counts what holds asks of intake; reopen answers with err.
type recordingValve struct {
	mu              sync.Mutex
	closes, reopens int
	err             error
}

func (v *recordingValve) close() { v.mu.Lock(); v.closes++; v.mu.Unlock() }

func (v *recordingValve) reopen(done func(error)) {
	v.mu.Lock()
	v.reopens++
	err := v.err
	v.mu.Unlock()
	done(err)
}

// An outage closes intake once however often it is reported, shows on readiness, and the first
// write reopens it; a poison record shows until it is written.
func TestHoldsOutageAndPoison(t *testing.T) {
	v := &recordingValve{}
	h := newHolds(v, slog.New(slog.DiscardHandler), nil)
	h.outage(errors.New("connection refused"))
	h.outage(errors.New("still refused"))
	if v.closes != 1 {
		t.Fatalf("intake closed %d times for one outage, want 1", v.closes)
	}
	if err := h.flag.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "delivery paused, external system failing: still refused") {
		t.Fatalf("readiness during the outage: %v", err)
	}
	m := &danube.Message{Topic: "/default/t", Offset: 7}
	h.hold(m.ID(), errors.New("bad row"))
	if err := h.flag.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "poison message "+m.ID()+" held and retried: bad row") {
		t.Fatalf("readiness with poison held: %v", err)
	}
	before := h.lastOK.Load()
	h.written(m)
	if v.reopens != 1 {
		t.Fatalf("intake reopened %d times after a write, want 1", v.reopens)
	}
	if err := h.flag.Check(t.Context()); err != nil {
		t.Fatalf("readiness after the write: %v", err)
	}
	if !h.writtenSince(before) {
		t.Fatal("a write is not seen by writtenSince")
	}
	h.written(m)
	if v.reopens != 1 {
		t.Fatalf("intake reopened again while open: %d", v.reopens)
	}
}

// A reopen that fails leaves the sink paused (the runtime stops it through intake's fatal).
func TestHoldsStayPausedWhenReopenFails(t *testing.T) {
	v := &recordingValve{err: errors.New("subscribe refused")}
	h := newHolds(v, slog.New(slog.DiscardHandler), nil)
	h.outage(errors.New("down"))
	h.written(&danube.Message{Topic: "/default/t", Offset: 1})
	if err := h.flag.Check(t.Context()); err == nil {
		t.Fatal("ready after a failed reopen")
	}
	v.err = nil
	h.written(&danube.Message{Topic: "/default/t", Offset: 2})
	if v.reopens != 2 || h.flag.Check(t.Context()) != nil {
		t.Fatalf("a later write did not reopen: reopens %d, readiness %v", v.reopens, h.flag.Check(t.Context()))
	}
}
