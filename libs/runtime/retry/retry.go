// Package retry computes waits between attempts for the RETRY_POLICY, MAX_RETRIES,
// RETRY_BACKOFF_MS and RETRY_MAX_BACKOFF_MS settings.
//
// A Policy is a value: copy it freely. Its waits are jittered by the Danube client's one backoff
// implementation (danube.ExponentialBackoff, danube.Jitter), so that replicas failing together do
// not retry in lockstep.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// Kind selects how the wait grows with the attempt number.
type Kind int

const (
	// Exponential doubles the wait on each attempt: base, 2×base, 4×base, … (the zero value, because
	// it is what a remote system under pressure needs).
	Exponential Kind = iota
	// Linear grows the wait by base on each attempt: base, 2×base, 3×base, …
	Linear
)

// String returns the RETRY_POLICY spelling.
func (k Kind) String() string {
	switch k {
	case Exponential:
		return "exponential"
	case Linear:
		return "linear"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// UnmarshalText parses "linear" or "exponential" (case-insensitive) for the env parser.
func (k *Kind) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "exponential":
		*k = Exponential
	case "linear":
		*k = Linear
	default:
		return errors.New(`want "linear" or "exponential"`)
	}
	return nil
}

// DefaultJitter is the fraction of a wait removed at random when Policy.Jitter is zero: waits fall
// uniformly in [d/2, d], the Danube client's default too.
const DefaultJitter = 0.5

// Policy decides whether and how long to wait before the next attempt. The zero value retries
// never (MaxRetries 0); a negative MaxRetries retries forever.
type Policy struct {
	Kind       Kind
	Base       time.Duration // wait before the first retry
	Max        time.Duration // cap on any computed wait; 0 = no cap
	MaxRetries int           // retries after the first attempt; <0 = unlimited
	Jitter     float64       // fraction removed at random; 0 = DefaultJitter, <0 = none
}

// Next returns the jittered wait before retry number attempt (1-based), capped at Max.
func (p Policy) Next(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	jitter := p.Jitter
	if jitter == 0 {
		jitter = DefaultJitter
	}
	maxWait := p.Max
	if maxWait <= 0 {
		maxWait = math.MaxInt64 / 2 // headroom: float64 rounding at MaxInt64 overflows
	}
	if p.Kind == Linear {
		d := maxWait
		if attempt < 1 {
			attempt = 1
		}
		if attempt <= int(maxWait/p.Base) {
			d = p.Base * time.Duration(attempt)
		}
		return danube.Jitter(d, jitter)
	}
	if jitter < 0 {
		jitter = -1 // ExponentialBackoff: < 0 means none
	}
	return danube.ExponentialBackoff{Initial: p.Base, Max: maxWait, Multiplier: 2, Jitter: jitter}.Next(attempt)
}

// Forever returns p retrying without limit: for waits on Danube or a reconnect, where giving up
// would lose data or exit.
func (p Policy) Forever() Policy {
	p.MaxRetries = -1
	return p
}

// HintedError is implemented by errors that carry the remote system's own wait (HTTP Retry-After,
// a rate limiter's reset time).
type HintedError interface {
	error
	RetryAfter() time.Duration
}

// Delay returns the wait before retry number attempt after err: the policy's wait, or the error's
// Retry-After hint when that is longer (the remote system knows best; the hint is not capped).
func (p Policy) Delay(attempt int, err error) time.Duration {
	d := p.Next(attempt)
	var h HintedError
	if errors.As(err, &h) && h.RetryAfter() > d {
		d = h.RetryAfter()
	}
	return d
}

// Allows reports whether retry number attempt (1-based) is within MaxRetries.
func (p Policy) Allows(attempt int) bool { return p.MaxRetries < 0 || attempt <= p.MaxRetries }

// Do runs op until it succeeds, retryable reports false for its error, the retries are exhausted
// or ctx ends. onRetry (optional) sees every retry before its wait. It returns op's last error, or
// ctx's error joined with it when ctx ended during a wait.
func (p Policy) Do(ctx context.Context, op func(context.Context) error, retryable func(error) bool, onRetry func(attempt int, wait time.Duration, err error)) error {
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || (retryable != nil && !retryable(err)) || !p.Allows(attempt) {
			return err
		}
		d := p.Delay(attempt, err)
		if onRetry != nil {
			onRetry(attempt, d, err)
		}
		if werr := Sleep(ctx, d); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// Sleep waits for d or until ctx ends, whichever is first, and returns ctx.Err() in the latter case.
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
