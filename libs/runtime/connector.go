// Package runtime is the connector SDK: a connector implements SinkConnector or SourceConnector and
// the runtime does the rest — configuration from the environment, the Danube consumer or producers,
// batching, retries, the dead-letter topic, ordered commits, reconnects, metrics, health, tracing,
// signals and exit codes. A connector's main is one line:
//
//	func main() { runtime.MainSink(New) } // New: func(*Config, runtime.Resources) (runtime.SinkConnector, error)
//
// docs/connector-guide.md walks through the example sink and source.
package runtime

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Resources is what the runtime hands a connector's constructor: one value, so that the runtime can
// add a field without breaking any connector.
type Resources struct {
	// Name is CONNECTOR_NAME.
	Name string
	// Logger has the runtime's handler and level (LOG_LEVEL, LOG_FORMAT), tagged with the name.
	Logger *slog.Logger
	// Meter creates the connector's own instruments (rows inserted, replication lag, …); they are
	// served on the runtime's /metrics beside its own, with the connector's name as an attribute.
	Meter metric.Meter
	// Tracer starts the connector's own spans (OTLP export when OTEL_EXPORTER_OTLP_* is set).
	Tracer trace.Tracer
}

// SinkConnector writes Danube messages to an external system (Danube → external).
//
// The runtime calls Initialize once, then Process (or ProcessBatch, see BatchSinkConnector) from a
// single goroutine (or several, see ConcurrentSinkConnector), HealthCheck from the readiness probe
// at any time, and Shutdown once at the end. Process returning nil means the record is written:
// the runtime acks it. Classify failures with Retryable, RetryableAfter, InvalidData, Disconnected
// or Fatal; unclassified errors are retried.
type SinkConnector interface {
	Initialize(ctx context.Context) error
	Process(ctx context.Context, r *SinkRecord) error
	Shutdown(ctx context.Context) error
	HealthCheck(ctx context.Context) error
}

// BatchSinkConnector is a SinkConnector that writes a batch at once (BATCH_SIZE, BATCH_TIMEOUT_MS).
// Return nil when every record is written, a *BatchError for per-record outcomes, or any other error
// for the batch as a whole (a retried batch contains exactly the same records). Without it the
// runtime calls Process for each record of a batch.
type BatchSinkConnector interface {
	SinkConnector
	ProcessBatch(ctx context.Context, records []*SinkRecord) error
}

// ConcurrentSinkConnector is a SinkConnector whose Process is safe for concurrent use. When
// Concurrent reports true and MAX_IN_FLIGHT is above 1, the runtime streams records to MAX_IN_FLIGHT
// concurrent Process calls instead of handing over batches: a slow record no longer holds back the
// records behind it, and each record is acked as soon as it is written. Order is kept per routing
// key and topic: a record is not handed over while an earlier record with its key is still being
// processed or retried. Records without a key carry no order among themselves. ProcessBatch,
// BATCH_SIZE and BATCH_TIMEOUT_MS are not used then.
type ConcurrentSinkConnector interface {
	SinkConnector
	Concurrent() bool
}

// SourceConnector reads from an external system and publishes to Danube (external → Danube). P is
// the connector's position type (an LSN, a Kafka partition and offset, a byte offset): opaque to the
// runtime, typed in the connector's hands.
//
// Poll blocks until it has records or ctx ends, so streaming sources (replication, MQTT, Kafka)
// need no sleep; a querying source returns (nil, nil) when there is nothing and the runtime waits
// POLL_INTERVAL_MS. Poll is called from one goroutine; it is not called again while MAX_IN_FLIGHT
// records it returned are unacked (backpressure).
//
// Commit receives, in source order, the position of every record that became part of the prefix
// Danube acknowledged — across all destination topics, checkpoint records included. It may run
// concurrently with Poll but never with itself. A connector confirms the last one (an LSN) or the
// last one per partition (Kafka offsets). A source has no default Commit: forgetting it is a
// compile error, not a source that silently never confirms its position.
type SourceConnector[P any] interface {
	Initialize(ctx context.Context) error
	Poll(ctx context.Context) ([]SourceRecord[P], error)
	Commit(ctx context.Context, positions []P) error
	Shutdown(ctx context.Context) error
	HealthCheck(ctx context.Context) error
}

// LagReporter is implemented by sources that know how far behind the external system they are
// (replication lag in bytes, consumer lag in records); the runtime exports it as
// connector_source_lag after every Poll.
type LagReporter interface {
	Lag() int64
}

// Reconnector is implemented by connectors that hold a connection to their external system. When
// Poll, Commit, Process, ProcessBatch or HealthCheck returns a Disconnected error, the runtime marks
// /readyz not ready, waits a jittered backoff (RETRY_BACKOFF_MS doubling up to
// RETRY_MAX_BACKOFF_MS), calls Reconnect until it succeeds (a Fatal error from it stops the
// connector), then repeats the failed call with the same records: nothing is lost or reordered and
// no delivery attempt is spent. No other connector call runs during Reconnect. A source resumes
// where it was; if reconnecting rewinds it to its last committed position, records are published
// again (at-least-once). Without Reconnector the runtime still backs off and repeats the call.
type Reconnector interface {
	Reconnect(ctx context.Context) error
}

// lifecycle is what the sink and source runners do alike with their connector.
type lifecycle interface {
	Initialize(context.Context) error
	Shutdown(context.Context) error
	HealthCheck(context.Context) error
}

// noops gives SinkBase and SourceBase their methods.
type noops struct{}

// Initialize does nothing.
func (noops) Initialize(context.Context) error { return nil }

// Shutdown does nothing.
func (noops) Shutdown(context.Context) error { return nil }

// HealthCheck reports healthy.
func (noops) HealthCheck(context.Context) error { return nil }

// SinkBase gives a sink no-op Initialize, Shutdown and HealthCheck: embed it and implement Process.
type SinkBase struct{ noops }

// SourceBase gives a source no-op Initialize, Shutdown and HealthCheck. It deliberately has no
// Commit: a source must confirm its positions itself.
type SourceBase struct{ noops }
