// Package retry computes waits between attempts for the RETRY_POLICY, MAX_RETRIES,
// RETRY_BACKOFF_MS and RETRY_MAX_BACKOFF_MS settings.
//
// A Policy is a value: copy it freely. Its waits follow the one backoff rule the Danube client uses
// too (libs/backoff), jittered so that replicas failing together do not retry in lockstep.
package retry

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
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

// kinds names linear first, as RETRY_POLICY's error always has.
var kinds = config.Enum[Kind]{{Value: Linear, Name: "linear"}, {Value: Exponential, Name: "exponential"}}

// String returns the RETRY_POLICY spelling.
func (k Kind) String() string { return kinds.Name(k) }

// UnmarshalText parses "linear" or "exponential" (case-insensitive) for the env parser.
func (k *Kind) UnmarshalText(b []byte) error { return kinds.Parse(k, b) }

// Policy decides whether and how long to wait before the next attempt. The zero value retries
// never (MaxRetries 0); a negative MaxRetries retries forever.
type Policy struct {
	Kind       Kind
	Base       time.Duration // wait before the first retry; 0 = none
	Max        time.Duration // cap on any computed wait; 0 = no cap
	MaxRetries int           // retries after the first attempt; <0 = unlimited
	Jitter     float64       // fraction removed at random; 0 = backoff.DefaultJitter ([d/2, d]), <0 = none
}

// uncapped stands for Max 0; half of MaxInt64 leaves headroom for float64 rounding.
const uncapped = time.Duration(math.MaxInt64 / 2)

// Next returns the jittered wait before retry number attempt (1-based), capped at Max.
func (p Policy) Next(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	maxWait := p.Max
	if maxWait <= 0 {
		maxWait = uncapped
	}
	return backoff.Backoff{Initial: p.Base, Max: maxWait, Linear: p.Kind == Linear, Jitter: p.Jitter}.Next(attempt)
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
		if werr := backoff.Sleep(ctx, d); werr != nil {
			return errors.Join(err, werr)
		}
	}
}
