// Package backoff is the one retry-wait rule of the Danube client and the connector runtime: waits
// that grow with the attempt, capped, and jittered so that replicas failing together do not retry
// in lockstep; and a Sleep that ends with its context. It is a leaf package so that both the
// client (libs/danube, which must not import the runtime) and the runtime's retry policy use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// The zero Backoff's numbers: the Danube client's default.
const (
	DefaultInitial = 100 * time.Millisecond
	DefaultMax     = 5 * time.Second
	// DefaultJitter is the fraction removed at random when Jitter is zero: waits fall uniformly in
	// [d/2, d].
	DefaultJitter = 0.5
)

// Backoff computes the wait before a retry: Initial, growing with each attempt (multiplied by
// Multiplier, or by Initial added when Linear), capped at Max, less a random part of up to Jitter
// of it. It is a value, safe for concurrent use; the zero value waits 100 ms, 200 ms, 400 ms …
// capped at 5 s, each jittered into [d/2, d].
type Backoff struct {
	Initial    time.Duration // first wait; 0 = DefaultInitial
	Max        time.Duration // cap on any wait; 0 = DefaultMax; never below Initial
	Multiplier float64       // exponential growth per attempt; <= 1 = 2
	Linear     bool          // grow by Initial per attempt (Initial, 2×Initial, …) instead
	Jitter     float64       // fraction in [0,1] removed at random; 0 = DefaultJitter, < 0 = none
}

// Next returns the wait before retry attempt (1-based; smaller counts as 1).
func (b Backoff) Next(attempt int) time.Duration {
	initial, maxWait := b.Initial, b.Max
	if initial <= 0 {
		initial = DefaultInitial
	}
	if maxWait <= 0 {
		maxWait = DefaultMax
	}
	return jitter(b.grow(initial, max(maxWait, initial), max(attempt, 1)), b.Jitter)
}

// grow returns the unjittered wait before retry attempt, at most maxWait, without overflowing.
func (b Backoff) grow(initial, maxWait time.Duration, attempt int) time.Duration {
	if b.Linear {
		if attempt > int(maxWait/initial) {
			return maxWait
		}
		return initial * time.Duration(attempt)
	}
	mult := b.Multiplier
	if mult <= 1 {
		mult = 2
	}
	d := float64(initial)
	for i := 1; i < attempt && d < float64(maxWait); i++ {
		d *= mult
	}
	if d >= float64(maxWait) {
		return maxWait // also where float64 rounding would pass it
	}
	return time.Duration(d)
}

// jitter removes a uniformly random part of up to fraction of d.
func jitter(d time.Duration, fraction float64) time.Duration {
	switch {
	case fraction < 0:
		return d
	case fraction == 0:
		fraction = DefaultJitter
	}
	return d - time.Duration(float64(d)*min(fraction, 1)*rand.Float64())
}

// Sleep waits for d or until ctx ends, whichever is first, and returns ctx.Err() in the latter
// case (also when d <= 0 and ctx has already ended, so that a retry loop notices a stop).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
