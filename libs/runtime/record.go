package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"unicode/utf8"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// SinkRecord is one Danube message handed to a sink. Once the connector reports it written, the
// runtime drops its payload (the ack needs only the message's identity): a connector must not read
// the payload of a record it already reported written.
type SinkRecord struct {
	Message   *danube.Message
	Partition string            // exact topic the message came from (the partition for partitioned topics)
	Metadata  map[string]string // free for the connector's own use between stages

	ctx    context.Context    // carries the span continued from the message's traceparent
	pstate prepState          // where it is on its way to the connector
	perr   error              // why it cannot be written, with pstate prepFailed
	schema *schema.Registered // the schema the message carries, once read
	copy   danube.Message     // the message as the connector gets it, when prepare changed it
}

// Schema returns the registered schema the message was published with (its id and version,
// fetched from Danube's registry and cached), or nil when it carries none or the sink reads no
// schemas (SCHEMA_DECODE and SCHEMA_VALIDATE both false).
func (r *SinkRecord) Schema() *schema.Registered { return r.schema }

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
	return r.Message.ID()
}

// SourceRecord is one record a source publishes to Danube, with its position of type P.
type SourceRecord[P any] struct {
	Topic      string            // destination; "" = the configured DANUBE_TOPIC
	Payload    []byte            // message body
	Attributes map[string]string // message attributes (headers); the runtime only reads it, so records may share one map
	Key        string            // routing key: partition choice, KeyShared order, publish order
	// OnAck, if set, is called once with nil when Danube acked this record (or, refused by Danube
	// for good, it went to DLQ_TOPIC), or with the error when it could not be published before
	// shutdown (MQTT sends PUBACK here). It must not block; calls
	// for different records may run concurrently.
	OnAck func(err error)
	// Origin, if set, says where the record came from in the external system's terms ("table
	// public.orders, key {"id":7}, LSN 0/16B3748"). The runtime calls it only for a record Danube
	// refuses for good, to name the record in the error or in its dead-letter descriptor.
	Origin func() string
	// Schema, if set, is the schema the payload follows (with SCHEMA_TYPE other than none): the
	// runtime registers it under the topic's subject the first time it sees it (a new value, a
	// new version: give the records of one table one shared value, and a new one when the table
	// changes), and stamps the record with its id and version.
	Schema *schema.Schema
	// Invalid, if set, says why the connector cannot hand this record over as it should (a row with
	// no Avro form, a payload its schema refuses): the runtime does not publish it but dead-letters
	// it as it is with this reason (DLQ_TOPIC), or stops the source without one naming it. Either
	// way the stream goes on past it like past a published record.
	Invalid error

	pos        P
	hasPos     bool
	checkpoint bool
}

// NewSourceRecord returns a record for topic with payload, at position pos: pos is handed to Commit
// once this record and every record before it are acked by Danube.
func NewSourceRecord[P any](topic string, payload []byte, pos P) SourceRecord[P] {
	return SourceRecord[P]{Topic: topic, Payload: payload, pos: pos, hasPos: true}
}

// SourceRecordFromJSON returns a record at pos whose payload is v encoded as JSON.
func SourceRecordFromJSON[P any](topic string, v any, pos P) (SourceRecord[P], error) {
	b, err := json.Marshal(v)
	if err != nil {
		return SourceRecord[P]{}, InvalidData(fmt.Errorf("encode %T as JSON: %w", v, err))
	}
	return NewSourceRecord(topic, b, pos), nil
}

// Checkpoint returns a record that publishes nothing and only carries pos: the watermark passes it
// like an acked record, in source order, so an idle or fully filtered stream (CDC keepalives,
// changes to tables nobody asked for) still advances its committed position.
func Checkpoint[P any](pos P) SourceRecord[P] {
	return SourceRecord[P]{pos: pos, hasPos: true, checkpoint: true}
}

// Position returns the record's position and whether it has one. Several records may share one
// position (the events of one transaction): give it to the last of them only, or to all.
func (r SourceRecord[P]) Position() (P, bool) { return r.pos, r.hasPos }

// IsCheckpoint reports whether r only carries a position.
func (r SourceRecord[P]) IsCheckpoint() bool { return r.checkpoint }

// WithAttribute returns a copy of r with attribute k set to v (r's map is not modified).
func (r SourceRecord[P]) WithAttribute(k, v string) SourceRecord[P] {
	attrs := maps.Clone(r.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 1)
	}
	attrs[k] = v
	r.Attributes = attrs
	return r
}

// WithKey returns a copy of r with routing key k.
func (r SourceRecord[P]) WithKey(k string) SourceRecord[P] {
	r.Key = k
	return r
}

// WithPosition returns a copy of r at position p.
func (r SourceRecord[P]) WithPosition(p P) SourceRecord[P] {
	r.pos, r.hasPos = p, true
	return r
}

// WithoutPosition returns a copy of r with no position (another record carries the shared one).
func (r SourceRecord[P]) WithoutPosition() SourceRecord[P] {
	var zero P
	r.pos, r.hasPos = zero, false
	return r
}
