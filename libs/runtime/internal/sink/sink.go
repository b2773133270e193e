// Package sink is the engine behind runtime.RunSink. Records flow one way through five stages,
// each owning its state: intake (the Danube consumers) → schedule (batches, or per-key order for
// concurrent writes) → process (the connector, under the reconnect gate, until each record is
// written or disposed of) → dispose (a pure decision per failure) → settle (acks and nacks).
// holds is the one place that knows why records are held back (an outage, poison).
//
// The engine knows neither the runtime's record type nor its connector interfaces: Records adapts
// them, so that package runtime stays the API a connector author reads.
package sink

import (
	"context"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Exhausted is RETRY_EXHAUSTED, in the order of runtime.RetryExhausted.
type Exhausted uint8

// RETRY_EXHAUSTED policies (see runtime.RetryExhausted).
const (
	ExhaustedAuto Exhausted = iota
	ExhaustedNack
	ExhaustedStop
	ExhaustedDeadLetter
	ExhaustedHold
)

// pausesOnOutage reports whether the policy tells outages from poison records (nack and stop
// apply to every exhausted record, as their operator asked).
func (e Exhausted) pausesOnOutage() bool {
	return e == ExhaustedAuto || e == ExhaustedDeadLetter || e == ExhaustedHold
}

// Config is what the stages are told: the sink's settings, already validated.
type Config struct {
	Name             string // CONNECTOR_NAME: the consumer name, the prefix of the DLQ producer's
	Topics           []string
	Subscription     string
	SubscriptionType danube.SubscriptionType
	KeyFilters       []string
	BatchSize        int
	BatchTimeout     time.Duration
	BatchIdle        time.Duration
	Workers          int // > 1: records are streamed to that many concurrent writes, in per-key order
	DLQTopic         string
	NackDelay        time.Duration
	AckTimeout       time.Duration // the subscription's, or the broker's default
	GapConfirm       time.Duration // 0: twice AckTimeout
	GapStop          bool
	Retry            retry.Policy
	Exhausted        Exhausted
}

// Host is what the stages use from the runtime around them.
type Host struct {
	host.Host
	Gate Gate
	Stop context.Context // ends on SIGTERM: no retry starts after it
	// Ready registers a readiness check (nil: none).
	Ready func(name string, check telemetry.Check)
	// Configure applies the subscription's admin settings to topics, on the first subscribe.
	Configure func(ctx context.Context, topics []string) error
	// Fatal stops the sink from a background stage (a failed resume, GAP_POLICY=stop).
	Fatal func(error)
}

// Gate is the reconnect contract's gate (see runtime.Reconnector): Run runs a connector call with
// no reconnect in progress and returns its generation; Reconnect reconnects after a call of
// generation gen lost the connection; OK records that a call got through.
type Gate interface {
	Run(f func()) uint64
	OK()
	Reconnect(ctx context.Context, gen uint64, cause error) error
}

// Records is the connector as the stages see it, over the runtime's record type R.
type Records[R any] interface {
	// Init builds in rec the record of m; ctx carries its trace.
	Init(ctx context.Context, rec *R, m *danube.Message)
	// Process writes recs and sets errs[i] to the outcome of recs[i] (nil: written).
	Process(ctx context.Context, recs []*R, errs []error)
	// Class classifies a record's failure.
	Class(err error) class.Class
}

func (h *Host) ready(name string, check telemetry.Check) {
	if h.Ready != nil {
		h.Ready(name, check)
	}
}
