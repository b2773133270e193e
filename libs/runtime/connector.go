// Package runtime is the connector SDK: a connector implements SinkConnector or SourceConnector and
// the runtime does the rest — configuration from the environment, the Danube consumer or producers,
// batching, retries, the dead-letter topic, ordered commits, metrics, health, tracing, signals and
// exit codes. A connector's main is one line:
//
//	func main() { runtime.MainSink(New) } // New: func(*Config, *slog.Logger) (runtime.SinkConnector, error)
package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"unicode/utf8"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// SinkConnector writes Danube messages to an external system (Danube → external).
//
// The runtime calls Initialize once, then Process (or ProcessBatch, see BatchSinkConnector) from a
// single goroutine (or several, see ConcurrentSinkConnector), HealthCheck from the readiness probe at any time, and Shutdown once at the end.
// Process returning nil means the record is written: the runtime acks it. Classify failures with
// Retryable, RetryableAfter, InvalidData or Fatal; unclassified errors are retried.
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
// Concurrency returns more than 1, the runtime streams records to that many concurrent Process
// calls instead of handing over batches: a slow record no longer holds back the records behind it,
// and each record is acked as soon as it is written. Order is kept per routing key and topic: a
// record is not handed over while an earlier record with its key is still being processed or
// retried. Records without a key carry no order among themselves. ProcessBatch and
// BATCH_TIMEOUT_MS are not used then; BATCH_SIZE (at least twice the concurrency) caps the records
// taken from Danube but not yet finished.
type ConcurrentSinkConnector interface {
	SinkConnector
	Concurrency() int
}

// SourceConnector reads from an external system and publishes to Danube (external → Danube).
//
// Poll blocks until it has records or ctx ends, so streaming sources (replication, MQTT, Kafka)
// need no sleep; a querying source returns (nil, nil) when there is nothing and the runtime waits
// POLL_INTERVAL_MS. Poll is called from one goroutine; it is not called again while the records it
// returned exceed MAX_IN_FLIGHT unacked (backpressure).
//
// Commit receives, in source order, the Position of every record (non-nil positions only) that
// became part of the prefix Danube acknowledged — across all destination topics. It may run
// concurrently with Poll but never with itself. A connector confirms the last one (an LSN, a Kafka
// offset per partition).
type SourceConnector interface {
	Initialize(ctx context.Context) error
	Poll(ctx context.Context) ([]SourceRecord, error)
	Commit(ctx context.Context, positions []any) error
	Shutdown(ctx context.Context) error
	HealthCheck(ctx context.Context) error
}

// LagReporter is implemented by sources that know how far behind the external system they are
// (replication lag in bytes, consumer lag in records); the runtime exports it as
// connector_source_lag after every Poll.
type LagReporter interface {
	Lag() int64
}

// Base gives a connector no-op Initialize, Shutdown and HealthCheck (and Commit, for sources): embed
// it and implement only what matters.
type Base struct{}

// Initialize does nothing.
func (Base) Initialize(context.Context) error { return nil }

// Shutdown does nothing.
func (Base) Shutdown(context.Context) error { return nil }

// HealthCheck reports healthy.
func (Base) HealthCheck(context.Context) error { return nil }

// Commit does nothing.
func (Base) Commit(context.Context, []any) error { return nil }

// SinkRecord is one Danube message handed to a sink.
type SinkRecord struct {
	Message   *danube.Message
	Partition string            // exact topic the message came from (the partition for partitioned topics)
	Metadata  map[string]string // free for the connector's own use between stages

	ctx context.Context // carries the span continued from the message's traceparent
}

// NewSinkRecord wraps m (the runtime does this; tests of a connector may too).
func NewSinkRecord(m *danube.Message) *SinkRecord {
	return &SinkRecord{Message: m, Partition: m.Topic}
}

// Context carries the trace span of this record (continued from the producer's traceparent).
func (r *SinkRecord) Context() context.Context {
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// Payload returns the raw payload.
func (r *SinkRecord) Payload() []byte { return r.Message.Payload }

// PayloadString returns the payload as text; invalid UTF-8 is invalid data.
func (r *SinkRecord) PayloadString() (string, error) {
	if !utf8.Valid(r.Message.Payload) {
		return "", InvalidData(fmt.Errorf("message %s: payload is not valid UTF-8", r.MessageID()))
	}
	return string(r.Message.Payload), nil
}

// PayloadJSON decodes the payload into v; a decoding failure is invalid data.
func (r *SinkRecord) PayloadJSON(v any) error {
	if err := json.Unmarshal(r.Message.Payload, v); err != nil {
		return InvalidData(fmt.Errorf("message %s: payload is not valid JSON for %T: %w", r.MessageID(), v, err))
	}
	return nil
}

// Attributes returns the message attributes (never nil).
func (r *SinkRecord) Attributes() map[string]string {
	if r.Message.Attributes == nil {
		return map[string]string{}
	}
	return r.Message.Attributes
}

// MessageID identifies the message in logs: "topic:/ns/t-part-0/producer:7/offset:42".
func (r *SinkRecord) MessageID() string {
	return fmt.Sprintf("topic:%s/producer:%d/offset:%d", r.Message.Topic, r.Message.ProducerID, r.Message.Offset)
}

// SourceRecord is one record a source publishes to Danube.
type SourceRecord struct {
	Topic      string            // destination; "" = the configured DANUBE_TOPIC
	Payload    []byte            // message body
	Attributes map[string]string // message attributes (headers)
	Key        string            // routing key: partition choice and KeyShared order; "" = none

	// Position is handed back to Commit once this record and every record before it are acked by
	// Danube (nil positions are skipped: several records may share one position, e.g. one LSN).
	Position any
	// OnAck, if set, is called once with nil when Danube acked this record, or with the error when
	// it could not be published before shutdown (MQTT sends PUBACK here). It must not block.
	OnAck func(err error)
}

// NewSourceRecord returns a record for topic with payload.
func NewSourceRecord(topic string, payload []byte) SourceRecord {
	return SourceRecord{Topic: topic, Payload: payload}
}

// SourceRecordFromJSON returns a record whose payload is v encoded as JSON.
func SourceRecordFromJSON(topic string, v any) (SourceRecord, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return SourceRecord{}, InvalidData(fmt.Errorf("encode %T as JSON: %w", v, err))
	}
	return NewSourceRecord(topic, b), nil
}

// WithAttribute returns a copy of r with attribute k set to v (r's map is not modified).
func (r SourceRecord) WithAttribute(k, v string) SourceRecord {
	attrs := maps.Clone(r.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 1)
	}
	attrs[k] = v
	r.Attributes = attrs
	return r
}

// WithKey returns a copy of r with routing key k.
func (r SourceRecord) WithKey(k string) SourceRecord {
	r.Key = k
	return r
}

// WithPosition returns a copy of r with commit position p.
func (r SourceRecord) WithPosition(p any) SourceRecord {
	r.Position = p
	return r
}
