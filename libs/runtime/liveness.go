package runtime

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// liveness fails /healthz when one connector call (Process, ProcessBatch, Commit) has been running
// longer than a bound: a connector stuck forever in a call holds its messages and stops the sink
// or source, and only a restart frees it. Idle waiting (no messages, a blocking Poll, a retry
// wait) is not a call, so it stays live.
type liveness struct {
	bound time.Duration
	since atomic.Int64 // unix nanoseconds the current call started; 0 = no call running
	now   func() time.Time
}

func newLiveness(bound time.Duration) *liveness { return &liveness{bound: bound, now: time.Now} }

// enter marks the start of a connector call and returns the func that marks its end.
func (l *liveness) enter() (leave func()) {
	l.since.Store(l.now().UnixNano())
	return func() { l.since.Store(0) }
}

// Check implements telemetry.Check.
func (l *liveness) Check(context.Context) error {
	start := l.since.Load()
	if start == 0 || l.bound <= 0 {
		return nil
	}
	if d := l.now().Sub(time.Unix(0, start)); d > l.bound {
		return fmt.Errorf("a connector call has been running for %s (LIVENESS_TIMEOUT_MS=%d)", d.Round(time.Millisecond), l.bound.Milliseconds())
	}
	return nil
}
