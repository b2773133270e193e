package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/deadletter"
)

// deadRecord is what a source publishes to DLQ_TOPIC for a record Danube refused for good: enough
// to find the record in the external system, not the record itself (it may be what was too large).
type deadRecord struct {
	Reason      string            `json:"reason"`
	Topic       string            `json:"topic"` // the Danube topic it was meant for
	Key         string            `json:"key,omitempty"`
	Size        int               `json:"size"` // payload bytes
	Origin      string            `json:"origin,omitempty"`
	Position    string            `json:"position,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	PayloadHead []byte            `json:"payload_head,omitempty"` // the first deadPayloadHead bytes (base64 in JSON)
	Connector   string            `json:"connector"`
}

// Bounds of a dead-letter descriptor: it must fit in a message whatever the record was.
const (
	deadPayloadHead = 1024
	deadAttrValue   = 256
	deadAttrs       = 64
)

// deadLetter publishes the descriptor of rec, refused by Danube for topic with reason, to
// DLQ_TOPIC, waiting out an outage like any publish.
func (r *sourceRunner[P]) deadLetter(ctx context.Context, topic string, rec *SourceRecord[P], reason error) error {
	d := deadRecord{
		Reason: deadletter.Cut(reason.Error(), deadletter.MaxReason), Topic: topic, Key: deadletter.Cut(rec.Key, deadAttrValue), Size: len(rec.Payload),
		PayloadHead: rec.Payload[:min(len(rec.Payload), deadPayloadHead)], Connector: r.cfg.ConnectorName,
	}
	if rec.Origin != nil {
		d.Origin = rec.Origin()
	}
	if pos, ok := rec.Position(); ok {
		d.Position = fmt.Sprint(pos)
	}
	for _, k := range slices.Sorted(maps.Keys(rec.Attributes)) {
		if len(d.Attributes) == deadAttrs {
			break
		}
		if d.Attributes == nil {
			d.Attributes = map[string]string{}
		}
		d.Attributes[deadletter.Cut(k, deadAttrValue)] = deadletter.Cut(rec.Attributes[k], deadAttrValue)
	}
	payload, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("runtime: encode the dead-letter descriptor: %w", err)
	}
	msg := danube.ProducerMessage{Payload: payload, Key: d.Key, Attributes: map[string]string{
		AttrOriginalTopic: topic, AttrFailureReason: deadletter.Cut(d.Reason, deadletter.MaxReason),
		AttrConnector: r.cfg.ConnectorName, "content-type": "application/json",
	}}
	if err := r.send(ctx, r.dlq, msg); err != nil {
		return fmt.Errorf("runtime: Danube refused a record for topic %q (%s): %w; and DLQ_TOPIC=%q refused its descriptor: %w",
			topic, describeRecord(rec), reason, r.cfg.DLQTopic, err)
	}
	r.env.log.Warn("record refused by Danube dead-lettered", "topic", topic, "record", describeRecord(rec), "dlq", r.cfg.DLQTopic, "reason", reason)
	return nil
}

// describeRecord names rec for an operator: its origin when the connector says it, else its key
// and position; and its size.
func describeRecord[P any](rec *SourceRecord[P]) string {
	var parts []string
	switch {
	case rec.Origin != nil:
		parts = append(parts, rec.Origin())
	default:
		if rec.Key != "" {
			parts = append(parts, fmt.Sprintf("key %q", deadletter.Cut(rec.Key, deadAttrValue)))
		}
		if pos, ok := rec.Position(); ok {
			parts = append(parts, fmt.Sprintf("position %v", pos))
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("%d bytes", len(rec.Payload))), ", ")
}
