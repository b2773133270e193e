package source

import (
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

// newDeadRecord describes rec, refused by Danube for topic with reason, for DLQ_TOPIC; message
// is what is published.
func newDeadRecord[P any](topic, connector string, rec *Record[P], reason error) deadRecord {
	d := deadRecord{
		Reason: deadletter.Cut(reason.Error(), deadletter.MaxReason), Topic: topic, Key: deadletter.Cut(rec.Key, deadAttrValue), Size: len(rec.Payload),
		PayloadHead: rec.Payload[:min(len(rec.Payload), deadPayloadHead)], Connector: connector,
	}
	if rec.Origin != nil {
		d.Origin = rec.Origin()
	}
	if rec.HasPos {
		d.Position = fmt.Sprint(rec.Pos)
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
	return d
}

// message is the descriptor as a Danube message.
func (d *deadRecord) message() (danube.ProducerMessage, error) {
	payload, err := json.Marshal(d)
	if err != nil {
		return danube.ProducerMessage{}, fmt.Errorf("runtime: encode the dead-letter descriptor: %w", err)
	}
	return danube.ProducerMessage{Payload: payload, Key: d.Key, Attributes: map[string]string{
		deadletter.AttrOriginalTopic: d.Topic, deadletter.AttrFailureReason: d.Reason,
		deadletter.AttrConnector: d.Connector, "content-type": "application/json",
	}}, nil
}

// failedMessage is rec, which a transform step failed on, as a dead letter: its payload, key and
// attributes with d's reason, topic and connector added.
func failedMessage[P any](rec *Record[P], d *deadRecord) danube.ProducerMessage {
	attrs := make(map[string]string, len(rec.Attributes)+3)
	maps.Copy(attrs, rec.Attributes)
	attrs[deadletter.AttrOriginalTopic] = d.Topic
	attrs[deadletter.AttrFailureReason] = d.Reason
	attrs[deadletter.AttrConnector] = d.Connector
	return danube.ProducerMessage{Payload: rec.Payload, Key: rec.Key, Attributes: attrs}
}

// describeRecord names rec for an operator: its origin when the connector says it, else its key
// and position; and its size.
func describeRecord[P any](rec *Record[P]) string {
	var parts []string
	switch {
	case rec.Origin != nil:
		parts = append(parts, rec.Origin())
	default:
		if rec.Key != "" {
			parts = append(parts, fmt.Sprintf("key %q", deadletter.Cut(rec.Key, deadAttrValue)))
		}
		if rec.HasPos {
			parts = append(parts, fmt.Sprintf("position %v", rec.Pos))
		}
	}
	return strings.Join(append(parts, fmt.Sprintf("%d bytes", len(rec.Payload))), ", ")
}
