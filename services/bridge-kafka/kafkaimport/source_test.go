package kafkaimport_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/headers"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaimport"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

func TestMain(m *testing.M) { harness.Main(m) }

// newSource returns an import of topic in group for the runtime config rc.
func newSource(t *testing.T, bootstrap, topic, group string, rc *runtime.SourceConfig) *kafkaimport.Source {
	t.Helper()
	s, err := kafkaimport.New(kafkaimport.Options{
		Kafka: kafka.ConfigMap{"bootstrap.servers": bootstrap, "enable.metrics.push": false},
		Topic: topic, Group: group, Destination: rc.Topic, BatchSize: rc.BatchSize,
	}, runtime.NewResources(&rc.Common))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the runtime's source suite against the harness's Kafka: one partition, so
// that the Kafka order is the order the suite emits in; keys exercise per-key order.
func TestConformance(t *testing.T) {
	ep := harness.Kafka(t)
	base := harness.Name(t)
	var topic, group string
	n := 0
	runtimetest.SourceSuite[kafkaimport.Position]{
		New: func(t *testing.T, rc *runtime.SourceConfig) runtime.SourceConnector[kafkaimport.Position] {
			return newSource(t, ep.Bootstrap, topic, group, rc)
		},
		Reset: func(t *testing.T) {
			n++
			topic, group = fmt.Sprintf("%s_%d", base, n), fmt.Sprintf("%s_%d_group", base, n)
			kafkatest.CreateTopic(t, ep.Bootstrap, topic, 1)
		},
		Emit: func(t *testing.T, payloads ...[]byte) {
			msgs := kafkatest.Values(payloads...)
			for _, m := range msgs {
				m.Key = []byte(key(m.Value))
			}
			kafkatest.Produce(t, ep.Bootstrap, topic, msgs...)
		},
		Payload: func(i int) []byte { return fmt.Appendf(nil, "record-%d", i) },
		Key:     func(i int) string { return key(fmt.Appendf(nil, "record-%d", i)) },
	}.Run(t)
}

// key is the routing key the test gives a payload: its number mod 3.
func key(payload []byte) string {
	i, _ := strconv.Atoi(string(payload[len("record-"):]))
	return "k" + strconv.Itoa(i%3)
}

// TestRecordMapping: key → routing key, headers → attributes (non-UTF-8 ones as base64), the
// Kafka coordinates and timestamp as attributes, a null value marked; a record the export
// produced from the destination topic is skipped and its offset still committed.
func TestRecordMapping(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, 1)
	b := runtimetest.StartBroker(t)
	dest := "/default/mapping"
	runtimetest.CreateTopic(t, b, dest)
	col := runtimetest.Collect(t, b, dest, "reader")
	rc := runtimetest.SourceConfig(b, "import-mapping", dest)
	r := runtimetest.StartSource(t, rc, newSource(t, ep.Bootstrap, topic, topic+"_group", rc), true)

	ts := int64(1_700_000_000_123)
	kafkatest.Produce(t, ep.Bootstrap, topic,
		&kafka.Message{Key: []byte("order-1"), Value: []byte("v1"), Headers: []kafka.Header{{Key: "h", Value: []byte("x")}, {Key: "bin", Value: []byte{0xff, 0x00}}},
			Timestamp: timeMillis(ts)},
		&kafka.Message{Key: []byte{0xfe, 0x01}, Value: []byte("v2")},
		&kafka.Message{Value: []byte("echo"), Headers: []kafka.Header{{Key: headers.DanubeTopic, Value: []byte(dest)}}},
		&kafka.Message{Key: []byte("gone"), Value: nil},
	)
	got := col.WaitFor(t, "3 messages", func(ms []*danube.Message) bool { return len(ms) >= 3 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	// Different keys are published concurrently (PUBLISH_ORDER=key): order by Kafka offset.
	slices.SortFunc(got, func(a, b *danube.Message) int {
		return cmp.Compare(a.Attributes[headers.KafkaOffset], b.Attributes[headers.KafkaOffset])
	})
	m1, m2, m3 := got[0], got[1], got[2]
	want1 := map[string]string{"h": "x", headers.Base64Prefix + "bin": "/wA=", headers.KafkaTopic: topic, headers.KafkaPartition: "0",
		headers.KafkaOffset: "0", headers.KafkaTimestamp: strconv.FormatInt(ts, 10)}
	if m1.Key != "order-1" || string(m1.Payload) != "v1" {
		t.Errorf("first message: key %q payload %q", m1.Key, m1.Payload)
	}
	for k, v := range want1 {
		if m1.Attributes[k] != v {
			t.Errorf("first message: attribute %s=%q, want %q (all: %v)", k, m1.Attributes[k], v, m1.Attributes)
		}
	}
	if m2.Key != "/gE=" || m2.Attributes[headers.KafkaKeyBase64] != "true" || m2.Attributes[headers.KafkaOffset] != "1" {
		t.Errorf("second message: key %q attributes %v", m2.Key, m2.Attributes)
	}
	if string(m3.Payload) != "" || m3.Key != "gone" || m3.Attributes[headers.KafkaTombstone] != "true" || m3.Attributes[headers.KafkaOffset] != "3" {
		t.Errorf("third message: key %q payload %q attributes %v (the echo at offset 2 must be skipped)", m3.Key, m3.Payload, m3.Attributes)
	}
	if len(got) != 3 {
		t.Errorf("got %d messages, want 3", len(got))
	}
	if off := kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, 1); off[0] != 4 {
		t.Errorf("committed offset %v, want 4 (the skipped echo included)", off[0])
	}
}

// TestOversizedRecord: a Kafka record over Danube's message size limit (the topic's
// max.message.bytes raised above it) goes to DLQ_TOPIC as a descriptor naming its Kafka topic,
// partition and offset; its offset is committed and the records after it are imported. Without
// DLQ_TOPIC the import stops with an error naming the record.
func TestOversizedRecord(t *testing.T) {
	ep := harness.Kafka(t)
	b := runtimetest.StartBroker(t)
	big := bytes.Repeat([]byte("x"), danube.MaxMessageSize+(1<<20))
	records := func(topic string) {
		kafkatest.CreateTopic(t, ep.Bootstrap, topic, 1, fmt.Sprintf("max.message.bytes=%d", 2*danube.MaxMessageSize))
		kafkatest.Produce(t, ep.Bootstrap, topic, &kafka.Message{Key: []byte("k"), Value: []byte("before")},
			&kafka.Message{Key: []byte("k"), Value: big}, &kafka.Message{Key: []byte("k"), Value: []byte("after")})
	}

	t.Run("dead-lettered", func(t *testing.T) {
		topic := harness.Name(t)
		records(topic)
		dest, dlq := "/default/oversized", "/default/oversized-dlq"
		runtimetest.CreateTopic(t, b, dest)
		runtimetest.CreateTopic(t, b, dlq)
		col, dead := runtimetest.Collect(t, b, dest, "reader"), runtimetest.Collect(t, b, dlq, "reader")
		rc := runtimetest.SourceConfig(b, "import-oversized", dest)
		rc.DLQTopic = dlq
		r := runtimetest.StartSource(t, rc, newSource(t, ep.Bootstrap, topic, topic+"_group", rc), true)
		col.WaitFor(t, "the records around the oversized one", func(ms []*danube.Message) bool { return len(ms) >= 2 })
		ds := dead.WaitFor(t, "the descriptor", func(ms []*danube.Message) bool { return len(ms) >= 1 })
		deadline := time.Now().Add(runtimetest.Timeout)
		for kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, 1)[0] != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("committed offset %v, want 3 (the dead-lettered record's included)", kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, 1))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
		if got := col.Payloads(); !slices.Equal(got, []string{"before", "after"}) {
			t.Errorf("Danube holds %q, want before, after", got)
		}
		var d struct {
			Origin string `json:"origin"`
			Size   int    `json:"size"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(ds[0].Payload, &d); err != nil {
			t.Fatalf("descriptor %q: %v", ds[0].Payload, err)
		}
		if want := "Kafka topic " + topic + " partition 0 offset 1"; d.Origin != want || d.Size != len(big) || d.Reason == "" || len(ds) != 1 {
			t.Errorf("descriptors %d, the first %+v; want one with origin %q, size %d and a reason", len(ds), d, want, len(big))
		}
	})

	t.Run("without DLQ_TOPIC", func(t *testing.T) {
		topic := harness.Name(t)
		records(topic)
		dest := "/default/oversized-stop"
		runtimetest.CreateTopic(t, b, dest)
		rc := runtimetest.SourceConfig(b, "import-oversized-stop", dest)
		r := runtimetest.StartSource(t, rc, newSource(t, ep.Bootstrap, topic, topic+"_group", rc), false)
		err := r.Wait()
		if want := "Kafka topic " + topic + " partition 0 offset 1"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("the import stopped with %v; want an error naming %q", err, want)
		}
		if off := kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, 1)[0]; off > 1 {
			t.Errorf("committed offset %v: the refused record must stay uncommitted", off)
		}
	})
}
