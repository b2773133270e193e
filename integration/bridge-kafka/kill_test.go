package bridgekafka_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/headers"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

// bridgeEnv is the environment of a bridge on Danube broker b and Kafka bootstrap, with short
// retry waits and a short consumer-group session (a killed member's partitions move after it).
func bridgeEnv(b *devbroker.Broker, bootstrap string, extra ...string) []string {
	return append([]string{
		"DANUBE_SERVICE_URL=" + b.URL(), "CONNECTOR_NAME=bridge", "LOG_FORMAT=text", "SHUTDOWN_TIMEOUT_MS=10000",
		"KAFKA_BOOTSTRAP_SERVERS=" + bootstrap, "RETRY_BACKOFF_MS=50", "RETRY_MAX_BACKOFF_MS=1000",
		"KAFKA_CONSUMER_PROPERTIES=session.timeout.ms=6000;heartbeat.interval.ms=500",
	}, extra...)
}

// kafkaID is a record's place in Kafka, as the import's attributes carry it.
type kafkaID struct {
	partition int32
	offset    int64
}

func idOf(t *testing.T, m *danube.Message) kafkaID {
	p, err1 := strconv.ParseInt(m.Attributes[headers.KafkaPartition], 10, 32)
	o, err2 := strconv.ParseInt(m.Attributes[headers.KafkaOffset], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("message %q without Kafka position attributes: %v", m.Payload, m.Attributes)
	}
	return kafkaID{int32(p), o}
}

// TestImportKillNine imports a Kafka topic of n records, kills the bridge with SIGKILL while it
// imports, and starts it again: every record reaches Danube, and a record arrives twice only if its
// offset was not committed when the bridge died (so the duplicates are bounded by what was
// uncommitted).
func TestImportKillNine(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	group := topic + "_group"
	const parts, n = 4, 4000
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, parts)
	msgs := make([]*kafka.Message, n)
	for i := range msgs {
		msgs[i] = &kafka.Message{Key: fmt.Appendf(nil, "k%d", i%29), Value: fmt.Appendf(nil, "r%05d", i)}
	}
	kafkatest.Produce(t, ep.Bootstrap, topic, msgs...)

	b := runtimetest.StartBroker(t)
	const dest = "/default/imported"
	runtimetest.CreateTopic(t, b, dest)
	col := runtimetest.Collect(t, b, dest, "reader")
	// Small batches and window: many commits, and records in flight when the bridge dies.
	c := startConnector(t, bridgeEnv(b, ep.Bootstrap, "KAFKA_GROUP_ID="+group, "IMPORT_MAPPINGS="+topic+"="+dest,
		"IMPORT_MAX_IN_FLIGHT=100", "IMPORT_BATCH_SIZE=20")...)
	col.WaitFor(t, "a quarter of the records", func(ms []*danube.Message) bool { return len(ms) >= n/4 })
	c.Kill()
	committed := kafkatest.Committed(t, ep.Bootstrap, group, topic, parts)
	uncommitted := int64(n)
	for _, off := range committed {
		if off >= 0 {
			uncommitted -= int64(off)
		}
	}
	before := len(col.Messages())

	c.Restart()
	got := waitDistinct(t, col, n)
	c.Stop()

	count := map[kafkaID]int{}
	for _, m := range got {
		count[idOf(t, m)]++
	}
	dups := 0
	for id, k := range count {
		if k == 1 {
			continue
		}
		dups += k - 1
		if k > 2 || kafka.Offset(id.offset) < committed[id.partition] {
			t.Errorf("partition %d offset %d imported %d times; its offset was committed (%v) before the kill",
				id.partition, id.offset, k, committed[id.partition])
		}
	}
	t.Logf("%d records; %d in Danube when killed, %d uncommitted (committed %v); %d duplicates after the restart",
		n, before, uncommitted, committed, dups)
	if int64(dups) > uncommitted {
		t.Errorf("%d duplicates, more than the %d records uncommitted at the kill", dups, uncommitted)
	}
}

// TestExportKillNine exports a Danube topic of n messages, kills the bridge with SIGKILL while it
// exports, and starts it again: every message reaches Kafka; a message is produced twice only if
// it was unacknowledged at the kill (the idempotent producer adds none within a process), and
// the subscription is not blocked.
func TestExportKillNine(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	const parts, n = 4, 2000
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, parts)
	b := runtimetest.StartBroker(t)
	const src, sub = "/default/exported", "bridge-kafka"
	preSubscribe(t, b, src, "bridge-export-default-exported", sub)
	msgs := make([]danube.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = danube.ProducerMessage{Key: fmt.Sprintf("k%d", i%29), Payload: fmt.Appendf(nil, "m%05d", i)}
	}
	runtimetest.Produce(t, b, src, msgs...)

	reader := kafkatest.Read(t, ep.Bootstrap, topic, parts)
	c := startConnector(t, bridgeEnv(b, ep.Bootstrap, "EXPORT_MAPPINGS="+src+"="+topic, "EXPORT_MAX_IN_FLIGHT=10")...)
	reader.WaitFor(t, "a quarter of the messages", func(ms []*kafka.Message) bool { return len(ms) >= n/4 })
	c.Kill()
	st, _ := b.SubscriptionStats(src, sub)
	outstanding := st.Unacked + st.PendingRedelivery

	c.Restart()
	reader.WaitFor(t, "every message", func(ms []*kafka.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Value)] = true
		}
		return len(seen) == n
	})
	c.Stop()
	got := reader.Drain(t)
	count := map[string]int{}
	for _, m := range got {
		count[string(m.Value)]++
	}
	dups := len(got) - len(count)
	t.Logf("%d messages; %d unacknowledged at the kill; %d duplicates in Kafka", n, outstanding, dups)
	if dups > outstanding {
		t.Errorf("%d duplicates, more than the %d messages unacknowledged at the kill", dups, outstanding)
	}
	if st, _ := b.SubscriptionStats(src, sub); st.Blocked != 0 {
		t.Errorf("subscription blocked: %+v", st)
	}
}

// waitDistinct waits until col received n distinct payloads (r00000 … ) and returns everything
// it received; on timeout it names the missing ones.
func waitDistinct(t *testing.T, col *runtimetest.Collector, n int) []*danube.Message {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ms := col.Messages()
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		if len(seen) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			var missing []string
			for i := 0; i < n && len(missing) < 20; i++ {
				if p := fmt.Sprintf("r%05d", i); !seen[p] {
					missing = append(missing, p)
				}
			}
			t.Fatalf("%d of %d records in Danube after 2 minutes (%d messages); missing include %v", len(seen), n, len(ms), missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// preSubscribe creates topic and the export's subscription, so that it starts before the messages
// (a new subscription starts at the tail).
func preSubscribe(t *testing.T, b *devbroker.Broker, topic, consumer, sub string) {
	t.Helper()
	runtimetest.CreateTopic(t, b, topic)
	c, err := runtimetest.Client(t, b).Subscribe(t.Context(), danube.ConsumerOptions{Topic: topic, Name: consumer, Subscription: sub, Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}
