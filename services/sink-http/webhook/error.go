package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is the outcome of a delivery that did not get a 2xx answer.
type Error struct {
	Status int           // HTTP status; 0 when no response arrived
	Body   string        // the start of the response body (Config.BodyExcerpt bytes)
	After  time.Duration // the endpoint's Retry-After, if it sent one
	Err    error         // the cause when no response arrived (network error, timeout, ...)
	retry  bool
}

// Sentinel causes, for errors.Is.
var (
	// ErrBreakerOpen: the circuit breaker refused the request because the endpoint keeps failing.
	ErrBreakerOpen = errors.New("circuit breaker open: endpoint keeps failing")
	// ErrOrderBlocked: an earlier message with the same routing key (with MaxInFlight 1: any
	// earlier message) was not delivered, so this one was not sent: sending it would break the order.
	ErrOrderBlocked = errors.New("not sent: an earlier message was not delivered and order must be kept")
)

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("webhook: ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		if t := http.StatusText(e.Status); t != "" {
			b.WriteByte(' ')
			b.WriteString(t)
		}
		if e.Body != "" {
			b.WriteString(": ")
			b.WriteString(strconv.Quote(e.Body))
		}
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.After > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.After)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether a later attempt may succeed (network error, timeout, 5xx, 408, 429,
// breaker open, order blocked). A non-retryable error is a rejection: dead-letter the message.
func (e *Error) Retryable() bool { return e.retry }

// RetryAfter is the endpoint's requested wait (0 if none); it makes Error satisfy the runtime
// retry package's HintedError.
func (e *Error) RetryAfter() time.Duration { return e.After }

// IsRetryable reports whether err is an *Error that is retryable; other non-nil errors (context
// cancellation on shutdown, for example) count as retryable too, because dropping is never safe.
func IsRetryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.retry
	}
	return err != nil
}

// retryableStatus reports the statuses worth retrying: the server is busy, overloaded or broken,
// not the request.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date, capped at ceiling. Unparsable
// or past values give 0.
func parseRetryAfter(v string, now time.Time, ceiling time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(ceiling/time.Second)+1 {
			return ceiling
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	if d > ceiling {
		d = ceiling
	}
	return d
}
