// Package headers maps a Kafka record's key and headers to a Danube message's routing key and
// attributes and back, and names the provenance attributes the bridge adds in each direction.
// Those attributes are also its loop guard: a message that came from Kafka topic T is not exported
// back to T, and a record that came from Danube topic D is not imported back into D.
//
// Danube attributes and routing keys are UTF-8 strings, Kafka keys and header values are bytes:
// a value that is not valid UTF-8 crosses as base64 under a marked name, and is decoded again on
// the way back, so that the round trip is exact.
package headers

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Attributes the import adds to every message it publishes to Danube.
const (
	KafkaTopic     = "x-kafka-topic"     // the Kafka topic the record was read from (also the export's loop guard)
	KafkaPartition = "x-kafka-partition" // its partition
	KafkaOffset    = "x-kafka-offset"    // its offset
	KafkaTimestamp = "x-kafka-timestamp" // its timestamp, milliseconds since the Unix epoch (absent when Kafka has none)
	// KafkaKeyBase64 is "true" when the record's key is not valid UTF-8: the routing key is then
	// its base64 (standard encoding), which the export decodes.
	KafkaKeyBase64 = "x-kafka-key-base64"
	// KafkaTombstone is "true" for a record with a null value (a compacted topic's delete marker),
	// which the export produces as a null value again.
	KafkaTombstone = "x-kafka-tombstone"
	// Base64Prefix prefixes the name of a header whose value is not valid UTF-8; the attribute's
	// value is the base64 of the header's.
	Base64Prefix = "x-kafka-base64."
)

// DanubeTopic is the header the export adds to every Kafka record: the Danube topic the message
// came from (also the import's loop guard).
const DanubeTopic = "x-danube-topic"

// Key returns the routing key for a Kafka key and whether it had to be base64-encoded.
func Key(k []byte) (key string, encoded bool) {
	if utf8.Valid(k) {
		return string(k), false
	}
	return base64.StdEncoding.EncodeToString(k), true
}

// ToAttributes returns the attributes of a Danube message for a Kafka record: its headers (a
// repeated header name keeps its last value), then the provenance attributes, which win over
// headers of the same name.
func ToAttributes(m *kafka.Message) map[string]string {
	attrs := make(map[string]string, len(m.Headers)+4)
	for _, h := range m.Headers {
		name := strings.ToValidUTF8(h.Key, "\uFFFD")
		if utf8.Valid(h.Value) {
			attrs[name] = string(h.Value)
		} else {
			attrs[Base64Prefix+name] = base64.StdEncoding.EncodeToString(h.Value)
		}
	}
	if m.TopicPartition.Topic != nil {
		attrs[KafkaTopic] = *m.TopicPartition.Topic
	}
	attrs[KafkaPartition] = strconv.FormatInt(int64(m.TopicPartition.Partition), 10)
	attrs[KafkaOffset] = strconv.FormatInt(int64(m.TopicPartition.Offset), 10)
	if m.TimestampType != kafka.TimestampNotAvailable && !m.Timestamp.IsZero() {
		attrs[KafkaTimestamp] = strconv.FormatInt(m.Timestamp.UnixMilli(), 10)
	}
	if m.Value == nil {
		attrs[KafkaTombstone] = "true"
	}
	return attrs
}

// Record is what the export produces for a Danube message: key, value, headers and timestamp.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
	Timestamp time.Time
}

// FromMessage builds the Kafka record for a Danube message exported from danubeTopic: the routing
// key becomes the key, attributes become headers (the bridge's own markers decoded), the
// DanubeTopic header is set, and the timestamp is the original Kafka timestamp when the message
// came from Kafka, else its Danube publish time.
func FromMessage(routingKey string, payload []byte, attrs map[string]string, published time.Time, danubeTopic string) Record {
	rec := Record{Value: payload, Timestamp: published, Headers: make([]kafka.Header, 0, len(attrs)+1)}
	if routingKey != "" {
		rec.Key = []byte(routingKey)
		if attrs[KafkaKeyBase64] == "true" {
			if k, err := base64.StdEncoding.DecodeString(routingKey); err == nil {
				rec.Key = k
			}
		}
	}
	// librdkafka produces a nil value as null, which deletes the key on a compacted topic: only the
	// import's tombstone marker may do that; any other empty payload is an empty value.
	switch {
	case attrs[KafkaTombstone] == "true" && len(payload) == 0:
		rec.Value = nil
	case payload == nil:
		rec.Value = []byte{}
	}
	if ts, err := strconv.ParseInt(attrs[KafkaTimestamp], 10, 64); err == nil {
		rec.Timestamp = time.UnixMilli(ts)
	}
	for k, v := range attrs {
		switch k {
		case KafkaKeyBase64, KafkaTombstone, DanubeTopic:
			continue
		}
		if name, ok := strings.CutPrefix(k, Base64Prefix); ok {
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				rec.Headers = append(rec.Headers, kafka.Header{Key: name, Value: b})
				continue
			}
		}
		rec.Headers = append(rec.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	rec.Headers = append(rec.Headers, kafka.Header{Key: DanubeTopic, Value: []byte(danubeTopic)})
	return rec
}

// FromDanube reports whether a Kafka record was exported from Danube topic danubeTopic (the import
// skips it instead of publishing it back where it came from).
func FromDanube(m *kafka.Message, danubeTopic string) bool {
	for _, h := range m.Headers {
		if h.Key == DanubeTopic {
			return string(h.Value) == danubeTopic
		}
	}
	return false
}

// FromKafka reports whether a Danube message was imported from Kafka topic kafkaTopic (the export
// acks it without producing it back where it came from).
func FromKafka(attrs map[string]string, kafkaTopic string) bool {
	t, ok := attrs[KafkaTopic]
	return ok && t == kafkaTopic
}
