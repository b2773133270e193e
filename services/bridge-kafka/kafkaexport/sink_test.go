package kafkaexport_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/headers"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaexport"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

func TestMain(m *testing.M) { harness.Main(m) }

// maxBytes is the producer's message.max.bytes in these tests: a larger record is refused for good.
const maxBytes = 10_000

func newSink(t *testing.T, bootstrap, topic string, sc *runtime.SinkConfig) *kafkaexport.Sink {
	t.Helper()
	s, err := kafkaexport.New(kafkaexport.Options{
		Kafka: kafka.ConfigMap{"bootstrap.servers": bootstrap, "enable.metrics.push": false, "message.max.bytes": maxBytes},
		Topic: topic, Origin: sc.Topics[0], Batch: sc.BatchSize > 1,
	}, runtime.NewResources(&sc.Common))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the runtime's sink suite against the harness's Kafka, one record at a time,
// streamed to concurrent produces, and in batches (EXPORT_BATCH_SIZE).
func TestConformance(t *testing.T) {
	ep := harness.Kafka(t)
	for _, mode := range []struct {
		name                string
		inFlight, batchSize int
	}{{"inflight1", 1, 1}, {"inflight16", 16, 1}, {"batch8", 1, 8}} {
		inFlight, batchSize := mode.inFlight, mode.batchSize
		t.Run(mode.name, func(t *testing.T) {
			base := harness.Name(t)
			var topic string
			var reader *kafkatest.Reader
			n := 0
			runtimetest.SinkSuite{
				New: func(t *testing.T, sc *runtime.SinkConfig) runtime.SinkConnector {
					return newSink(t, ep.Bootstrap, topic, sc)
				},
				Configure: func(sc *runtime.SinkConfig) { sc.MaxInFlight, sc.BatchSize = inFlight, batchSize },
				Reset: func(t *testing.T) {
					n++
					topic = fmt.Sprintf("%s_%d", base, n)
					kafkatest.CreateTopic(t, ep.Bootstrap, topic, 2)
					reader = kafkatest.Read(t, ep.Bootstrap, topic, 2)
				},
				Written: func(t *testing.T) []string {
					var out []string
					for _, m := range reader.Drain(t) {
						out = append(out, string(m.Value))
					}
					return out
				},
				Valid:   func(i int) []byte { return fmt.Appendf(nil, "message-%d", i) },
				Invalid: bytes.Repeat([]byte("x"), 2*maxBytes), // above message.max.bytes: dead-lettered
			}.Run(t)
		})
	}
}

// TestRecordMapping: routing key → key, attributes → headers (with the origin header), publish
// time → timestamp; what the import marked as non-UTF-8 or a tombstone is restored; an empty
// payload without the tombstone marker is an empty value, not a null one (which would delete the
// key on a compacted topic); a message the import read from the target topic is acked without
// being produced (loop guard).
func TestRecordMapping(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, 1)
	b := runtimetest.StartBroker(t)
	src := "/default/export-mapping"
	runtimetest.CreateTopic(t, b, src)
	sc := runtimetest.SinkConfig(b, "export-mapping", src)
	r := runtimetest.StartSink(t, sc, newSink(t, ep.Bootstrap, topic, sc))
	before := time.Now().Add(-time.Second)
	runtimetest.Produce(t, b, src,
		danube.ProducerMessage{Key: "order-1", Payload: []byte("v1"), Attributes: map[string]string{"h": "x"}},
		danube.ProducerMessage{Payload: []byte("echo"), Attributes: map[string]string{headers.KafkaTopic: topic}},
		danube.ProducerMessage{Key: "/gE=", Payload: nil, Attributes: map[string]string{
			headers.KafkaKeyBase64: "true", headers.KafkaTombstone: "true", headers.Base64Prefix + "bin": "/wA=",
			headers.KafkaTopic: "elsewhere", headers.KafkaTimestamp: "1700000000123",
		}},
		danube.ProducerMessage{Key: "empty", Payload: nil},
	)
	got := kafkatest.Read(t, ep.Bootstrap, topic, 1).WaitFor(t, "3 records", func(ms []*kafka.Message) bool { return len(ms) >= 3 })
	r.WaitMetric(t, `connector_records_processed_total{connector="export-mapping"}`, 4) // the echo is acked too
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(kafkatest.Read(t, ep.Bootstrap, topic, 1).Drain(t)); n != 3 {
		t.Errorf("Kafka holds %d records, want 3 (the echo must not be produced)", n)
	}
	byKey := map[string]*kafka.Message{}
	for _, m := range got {
		byKey[string(m.Key)] = m
	}
	if m := byKey["empty"]; m == nil || m.Value == nil || len(m.Value) != 0 {
		t.Errorf("empty payload without the tombstone marker: record %+v, want an empty, non-null value", m)
	}
	hdr := func(m *kafka.Message) map[string]string {
		out := map[string]string{}
		for _, h := range m.Headers {
			out[h.Key] = string(h.Value)
		}
		return out
	}
	m1, m2 := byKey["order-1"], byKey[string([]byte{0xfe, 0x01})]
	if m1 == nil || m2 == nil {
		t.Fatalf("records by key: %v", byKey)
	}
	if h := hdr(m1); string(m1.Key) != "order-1" || string(m1.Value) != "v1" || h["h"] != "x" || h[headers.DanubeTopic] != src {
		t.Errorf("first record: key %q value %q headers %v", m1.Key, m1.Value, h)
	}
	if m1.Timestamp.Before(before) || m1.Timestamp.After(time.Now()) {
		t.Errorf("first record: timestamp %v, want the Danube publish time", m1.Timestamp)
	}
	h2 := hdr(m2)
	if !bytes.Equal(m2.Key, []byte{0xfe, 0x01}) || m2.Value != nil || h2["bin"] != "\xff\x00" || h2[headers.KafkaTopic] != "elsewhere" ||
		m2.Timestamp.UnixMilli() != 1700000000123 {
		t.Errorf("second record: key %x value %v headers %q timestamp %v", m2.Key, m2.Value, h2, m2.Timestamp.UnixMilli())
	}
	for _, k := range []string{headers.KafkaKeyBase64, headers.KafkaTombstone, headers.Base64Prefix + "bin"} {
		if _, ok := h2[k]; ok {
			t.Errorf("second record: marker %s forwarded as a header", k)
		}
	}
}
