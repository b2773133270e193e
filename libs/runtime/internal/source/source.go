// Package source is the engine behind runtime.RunSource: it polls the connector, publishes each
// record to its Danube topic with one reliable producer per topic (up to MAX_IN_FLIGHT in flight,
// in the order PUBLISH_ORDER asks for, through keyed.Scheduler), waits out Danube's outages, and
// commits positions to the connector only once Danube acked every record before them, in source
// order, across topics (the watermark).
//
// The engine knows neither the runtime's record type nor its connector interfaces: Connector
// adapts them, so that package runtime stays the API a connector author reads.
package source

import (
	"context"
	"errors"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// ErrDone is what a connector's Poll returns when there is nothing more to read, ever (see
// runtime.ErrSourceDone).
var ErrDone = errors.New("runtime: source finished")

// Record is a record as the engine sees it: runtime.SourceRecord, field for field.
type Record[P any] struct {
	Topic      string
	Key        string
	Payload    []byte
	Attributes map[string]string
	OnAck      func(error)
	Origin     func() string
	Pos        P
	HasPos     bool
	Checkpoint bool  // only a position (OnAck, if set, is called when it is taken in)
	Failed     error // a transform step failed on it: the record goes to DLQ_TOPIC as it is, or stops the source
	Schema     *schema.Schema
}

// Connector is the source connector as the engine sees it.
type Connector[P any] interface {
	Poll(ctx context.Context) ([]Record[P], error)
	Commit(ctx context.Context, positions []P) error
	// Class classifies a failed Poll or Commit.
	Class(err error) class.Class
	// Lag is the connector's lag, if it reports one.
	Lag() (n int64, ok bool)
}

// Order is PUBLISH_ORDER, in the order of runtime.PublishOrder.
type Order uint8

// PUBLISH_ORDER values (see runtime.PublishOrder).
const (
	OrderKey Order = iota
	OrderStrict
	OrderNone
)

// Config is what the engine is told: the source's settings, already validated.
type Config struct {
	Name         string // CONNECTOR_NAME: the producers' name
	Topic        string // the default topic of records without one; "" = none
	MaxInFlight  int
	Order        Order
	Partitions   int
	DLQTopic     string
	PollInterval time.Duration
	Retry        retry.Policy
	Schemas      *Schemas // nil: records carry no schema
}

// Host is what the engine uses from the runtime around it.
type Host struct {
	host.Host
	Gate Gate
	// Fatal marks an error the source cannot go on after (runtime.Fatal).
	Fatal func(error) error
}

// Gate is the reconnect contract's gate (see runtime.Reconnector).
type Gate interface {
	Run(f func()) uint64
	OK()
	Reconnect(ctx context.Context, gen uint64, cause error) error
	// Interrupt registers (nil: clears) the cancel func of a blocking Poll, so that a reconnect
	// need not wait for data that may never come.
	Interrupt(cancel func())
	// OnFatal registers what stops the source when a background reconnect fails fatally.
	OnFatal(stop func(error))
}
