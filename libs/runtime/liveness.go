package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// liveness fails /healthz when one connector call (Process, ProcessBatch, Commit) has been running
// longer than a bound: a connector stuck forever in a call holds its messages and stops the sink
// or source, and only a restart frees it. Idle waiting (no messages, a blocking Poll, a retry
// wait) is not a call, so it stays live. Calls may overlap (ConcurrentSinkConnector); the oldest
// one counts.
type liveness struct {
	bound time.Duration
	now   func() time.Time

	mu      sync.Mutex
	next    uint64
	running map[uint64]time.Time // start of every call in progress
}

func newLiveness(bound time.Duration) *liveness {
	return &liveness{bound: bound, now: time.Now, running: map[uint64]time.Time{}}
}

// Enter marks the start of a connector call and returns the func that marks its end.
func (l *liveness) Enter() (leave func()) {
	l.mu.Lock()
	id := l.next
	l.next++
	l.running[id] = l.now()
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.running, id)
		l.mu.Unlock()
	}
}

// Check implements telemetry.Check.
func (l *liveness) Check(context.Context) error {
	if l.bound <= 0 {
		return nil
	}
	l.mu.Lock()
	var oldest time.Time
	for _, start := range l.running {
		if oldest.IsZero() || start.Before(oldest) {
			oldest = start
		}
	}
	l.mu.Unlock()
	if oldest.IsZero() {
		return nil
	}
	if d := l.now().Sub(oldest); d > l.bound {
		return fmt.Errorf("a connector call has been running for %s (LIVENESS_TIMEOUT_MS=%d)", d.Round(time.Millisecond), l.bound.Milliseconds())
	}
	return nil
}
