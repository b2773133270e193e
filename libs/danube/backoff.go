package danube

import (
	"math/rand/v2"
	"time"
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

// ExponentialBackoff waits Initial·Multiplier^(attempt-1), capped at Max, then
// subtracts a random part of up to Jitter of it so that clients restarting
// together do not retry in lockstep. The zero value is usable and means
// [DefaultBackoff]'s numbers.
type ExponentialBackoff struct {
	Initial    time.Duration // first wait; 0 = 100 ms
	Max        time.Duration // cap on any wait; 0 = 5 s
	Multiplier float64       // growth per attempt; <= 1 = 2
	Jitter     float64       // fraction in [0,1] removed at random; 0 = 0.5, < 0 = none
}

// DefaultBackoff is the client's default: 100 ms, 200 ms, 400 ms … capped at
// 5 s, each jittered uniformly into [d/2, d].
var DefaultBackoff Backoff = ExponentialBackoff{}

// Next returns the wait before retry attempt (1-based).
func (b ExponentialBackoff) Next(attempt int) time.Duration {
	initial, maxWait, mult, jitter := b.Initial, b.Max, b.Multiplier, b.Jitter
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 5 * time.Second
	}
	if maxWait < initial {
		maxWait = initial
	}
	if mult <= 1 {
		mult = 2
	}
	switch {
	case jitter == 0:
		jitter = 0.5
	case jitter < 0:
		jitter = 0
	case jitter > 1:
		jitter = 1
	}
	if attempt < 1 {
		attempt = 1
	}
	d := float64(initial)
	for i := 1; i < attempt && d < float64(maxWait); i++ {
		d *= mult
	}
	if d > float64(maxWait) {
		d = float64(maxWait)
	}
	return Jitter(time.Duration(d), jitter)
}

// Jitter removes a uniformly random part of up to fraction (0..1) from d: the one jitter rule of
// the client and the connector runtime, so that replicas restarting together spread their retries.
func Jitter(d time.Duration, fraction float64) time.Duration {
	if fraction <= 0 || d <= 0 {
		return d
	}
	return d - time.Duration(float64(d)*min(fraction, 1)*rand.Float64())
}
