package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Message is one record to deliver: the parts of a Danube message a webhook receiver can use.
type Message struct {
	Topic       string // exact topic, including the partition suffix ("/default/t-part-2")
	Offset      uint64 // topic offset (reliable topics; always 0 on non-reliable ones)
	ProducerID  uint64 // with RequestID, tells apart messages of non-reliable topics
	RequestID   uint64
	Key         string // routing key; messages with the same key are delivered in order
	Payload     []byte
	Attributes  map[string]string
	PublishTime time.Time
	// Headers are extra headers for this message's own request (W3C trace context, for example);
	// they do not override the headers the sender sets and are not sent in batch mode.
	Headers map[string]string
}

// IdempotencyKey identifies the message across redeliveries: the same message (same topic, which
// names the partition, and offset) always yields the same key, so receivers can drop duplicates.
// The producer id and request id, stored with the message by the broker, are mixed in so that
// messages of non-reliable topics (whose offset is always 0) still get distinct keys.
func (m *Message) IdempotencyKey() string {
	h := sha256.New()
	h.Write([]byte(m.Topic))
	var b [25]byte
	b[0] = 0
	binary.BigEndian.PutUint64(b[1:], m.Offset)
	binary.BigEndian.PutUint64(b[9:], m.ProducerID)
	binary.BigEndian.PutUint64(b[17:], m.RequestID)
	h.Write(b[:])
	return "dnb_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Headers that describe the message; attribute headers use Config.AttributePrefix.
const (
	HeaderTopic       = "X-Danube-Topic"
	HeaderOffset      = "X-Danube-Offset"
	HeaderPublishTime = "X-Danube-Publish-Time"
	HeaderKey         = "X-Danube-Key"
	HeaderBatchSize   = "X-Danube-Batch-Size"
)

// contentTypeAttr is the message attribute that sets the request's Content-Type.
const contentTypeAttr = "content-type"

// singleHeaders returns the per-message headers of a one-message request (without auth, static
// headers or signature, which the sender adds).
func (s *Sender) singleHeaders(m *Message, id string) http.Header {
	h := make(http.Header, len(m.Attributes)+8)
	ct := m.Attributes[contentTypeAttr]
	if ct == "" || !httpguts.ValidHeaderFieldValue(ct) {
		ct = s.cfg.ContentType
	}
	h[contentType] = []string{ct}
	if s.cfg.AttributePrefix != "-" {
		for k, v := range m.Attributes {
			name := s.cfg.AttributePrefix + k
			if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(v) {
				s.log.Debug("attribute not representable as a header; skipped", "topic", m.Topic, "offset", m.Offset, "attribute", k)
				continue
			}
			h[http.CanonicalHeaderKey(name)] = []string{v}
		}
	}
	h[HeaderTopic] = []string{m.Topic}
	h[HeaderOffset] = []string{strconv.FormatUint(m.Offset, 10)}
	if !m.PublishTime.IsZero() {
		h[HeaderPublishTime] = []string{m.PublishTime.UTC().Format(time.RFC3339Nano)}
	}
	if m.Key != "" && httpguts.ValidHeaderFieldValue(m.Key) {
		h[HeaderKey] = []string{m.Key}
	}
	h[s.idemHeader] = []string{id}
	for k, v := range m.Headers {
		k = http.CanonicalHeaderKey(k)
		if _, set := h[k]; !set && httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v) {
			h[k] = []string{v}
		}
	}
	return h
}

const contentType = "Content-Type"

// batchItem is one element of a batch body.
type batchItem struct {
	ID            string            `json:"id"`
	Topic         string            `json:"topic"`
	Offset        uint64            `json:"offset"`
	Key           string            `json:"key,omitempty"`
	PublishTime   *time.Time        `json:"publish_time,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
}

// batchBody renders msgs as a JSON array: a payload that is valid JSON is embedded as is under
// "payload"; any other payload is base64 under "payload_base64", so no byte is ever altered.
func batchBody(msgs []*Message, ids []string) ([]byte, error) {
	items := make([]batchItem, len(msgs))
	for i, m := range msgs {
		it := batchItem{ID: ids[i], Topic: m.Topic, Offset: m.Offset, Key: m.Key, Attributes: m.Attributes}
		if !m.PublishTime.IsZero() {
			t := m.PublishTime.UTC()
			it.PublishTime = &t
		}
		if len(m.Payload) > 0 && json.Valid(m.Payload) {
			it.Payload = json.RawMessage(bytes.TrimSpace(m.Payload))
		} else {
			it.PayloadBase64 = base64.StdEncoding.EncodeToString(m.Payload)
		}
		items[i] = it
	}
	return json.Marshal(items)
}

// batchID is the idempotency key of a batch request: derived from the keys of its messages, so
// the same batch sent again carries the same key.
func batchID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "dnbb_" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (s *Sender) batchHeaders(msgs []*Message, id string) http.Header {
	h := make(http.Header, 6)
	h[contentType] = []string{"application/json"}
	h[HeaderBatchSize] = []string{strconv.Itoa(len(msgs))}
	topic := msgs[0].Topic
	for _, m := range msgs[1:] {
		if m.Topic != topic {
			topic = ""
			break
		}
	}
	if topic != "" {
		h[HeaderTopic] = []string{topic}
	}
	h[s.idemHeader] = []string{id}
	return h
}
