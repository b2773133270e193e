// Package host is what the runtime lends its engines (internal/sink, internal/source): the Danube
// client, logging, metrics, readiness, liveness and its retry of Danube calls, plus what telling a
// stop from a failure takes.
package host

import (
	"context"
	"errors"
	"log/slog"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Host is the runtime's services, shared by both engines.
type Host struct {
	Client  *danube.Client
	Log     *slog.Logger
	Metrics *telemetry.Metrics
	Danube  *telemetry.Flag                     // Danube readiness: set healthy once subscribed or producing
	Busy    interface{ Enter() (leave func()) } // liveness: marks a connector call
	// Retry runs a call to Danube until it succeeds, fails in a way retryable rejects (nil: none),
	// or ctx ends, with the runtime's backoff, readiness and refusal tracking.
	Retry func(ctx context.Context, what string, retryable func(error) bool, op func(context.Context) error) error
}

// Stopped reports whether err is only a context ending.
func Stopped(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// UnlessStopped returns err, or nil when it only says that ctx ended (stopped while waiting).
func UnlessStopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && Stopped(err) {
		return nil
	}
	return err
}
