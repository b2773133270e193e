package danube

import (
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
)

// Backoff computes the wait before retry `attempt` (1-based). Implementations
// must be safe for concurrent use; the client calls Next from many goroutines.
type Backoff interface {
	Next(attempt int) time.Duration
}

// BackoffFunc adapts a function to [Backoff].
type BackoffFunc func(attempt int) time.Duration

// Next calls f.
func (f BackoffFunc) Next(attempt int) time.Duration { return f(attempt) }

// ExponentialBackoff is the client's backoff type: [backoff.Backoff], the one wait rule of the
// client and the connector runtime. It waits Initial·Multiplier^(attempt-1) (Initial·attempt when
// Linear), capped at Max, less a random part of up to Jitter of it, so that clients restarting
// together do not retry in lockstep. The zero value is usable and means [DefaultBackoff]'s numbers.
type ExponentialBackoff = backoff.Backoff

// DefaultBackoff is the client's default: 100 ms, 200 ms, 400 ms … capped at
// 5 s, each jittered uniformly into [d/2, d].
var DefaultBackoff Backoff = ExponentialBackoff{}
