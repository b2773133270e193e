package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/source"
)

// Class says what the runtime does with a failed record.
type Class int

const (
	// ClassRetryable: back off and try again (the default for unclassified errors: a network blip
	// is far more common than bad data, and retrying is the safe choice).
	ClassRetryable Class = iota
	// ClassInvalidData: the record can never succeed; publish it to the dead-letter topic and ack.
	ClassInvalidData
	// ClassFatal: the connector cannot continue; stop without acking and exit non-zero so the
	// orchestrator restarts it.
	ClassFatal
	// ClassDisconnected: the connection to the external system is gone; the record is not at fault.
	// The runtime reconnects (see Reconnector) and repeats the call without spending a retry.
	ClassDisconnected
)

func (c Class) String() string {
	if c < 0 {
		return fmt.Sprintf("Class(%d)", int(c))
	}
	return class.Class(c).String()
}

// Sentinels for errors.Is: errors.Is(err, runtime.ErrInvalidData) is true for any error made by
// InvalidData.
var (
	ErrRetryable    = errors.New("retryable")
	ErrInvalidData  = errors.New("invalid data")
	ErrFatal        = errors.New("fatal")
	ErrDisconnected = errors.New("disconnected")
)

// ErrSourceDone is what a source's Poll returns (alone, wrapped, or with its last records) when
// there is nothing more to read, ever: a bounded snapshot that is complete, a file read to its end.
// The runtime publishes what was polled, waits for Danube to acknowledge every record, commits, and
// returns nil, so the process exits 0; a record Danube never acknowledged, or a failed commit, is
// an error instead.
var ErrSourceDone = source.ErrDone

// Error carries a class (and for retryable errors an optional wait hint) around a cause.
type Error struct {
	Class Class
	After time.Duration // retryable only: wait at least this long (HTTP Retry-After)
	Err   error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Class.String()
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the class sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrRetryable:
		return e.Class == ClassRetryable
	case ErrInvalidData:
		return e.Class == ClassInvalidData
	case ErrFatal:
		return e.Class == ClassFatal
	case ErrDisconnected:
		return e.Class == ClassDisconnected
	}
	return false
}

// RetryAfter implements retry.HintedError.
func (e *Error) RetryAfter() time.Duration { return e.After }

// Retryable marks err as transient. Like all classifiers, it returns nil for a nil err.
func Retryable(err error) error { return classify(ClassRetryable, 0, err) }

// RetryableAfter marks err as transient and asks to wait at least d before the next attempt.
func RetryableAfter(err error, d time.Duration) error { return classify(ClassRetryable, d, err) }

// classify wraps err; nil stays nil so `return runtime.Fatal(err)` is safe.
func classify(c Class, d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, After: d, Err: err}
}

// InvalidData marks err as a problem with the record itself (it goes to the dead-letter topic).
func InvalidData(err error) error { return classify(ClassInvalidData, 0, err) }

// Fatal marks err as one the connector cannot recover from.
func Fatal(err error) error { return classify(ClassFatal, 0, err) }

// Disconnected marks err as the loss of the connection to the external system: the runtime
// reconnects (see Reconnector) and repeats the call. Return it from Poll, Commit, Process,
// ProcessBatch or HealthCheck.
func Disconnected(err error) error { return classify(ClassDisconnected, 0, err) }

// ClassOf returns the class of the outermost classified error in err's chain; unclassified errors
// are retryable. A nil error has no class; ClassOf(nil) is ClassRetryable and should not be asked.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassRetryable
}

// BatchError reports per-record outcomes of ProcessBatch: Errs[i] is the result of records[i]
// (nil = written). Records that succeeded are acked even when others failed.
type BatchError struct{ Errs []error }

func (e *BatchError) Error() string {
	n := 0
	var first error
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("%d of %d records failed; first: %v", n, len(e.Errs), first)
}

// Unwrap exposes the individual (non-nil) errors.
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
