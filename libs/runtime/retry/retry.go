// Package retry computes waits between attempts for the RETRY_POLICY, MAX_RETRIES,
// RETRY_BACKOFF_MS and RETRY_MAX_BACKOFF_MS settings.
//
// A Policy is a value: copy it freely. It satisfies the Danube client's Backoff interface
// (Next(attempt) time.Duration), so one policy configures both the runtime and the client.
package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
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

// Policy decides whether and how long to wait before the next attempt. The zero value retries
// never (MaxRetries 0); a negative MaxRetries retries forever.
type Policy struct {
	Kind       Kind
	Base       time.Duration // wait before the first retry
	Max        time.Duration // cap on any computed wait; 0 = no cap
	MaxRetries int           // retries after the first attempt; <0 = unlimited
}

// Next returns the wait before retry number attempt (1-based), capped at Max.
func (p Policy) Next(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	var d time.Duration
	switch p.Kind {
	case Linear:
		d = p.Base * time.Duration(attempt)
	default:
		d = p.Base
		for i := 1; i < attempt && (p.Max <= 0 || d < p.Max); i++ {
			if d > time.Duration(1<<62)/2 {
				break
			}
			d *= 2
		}
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return d
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
