package bridgekafka_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

// outage is how long Kafka is down: the acceptance scenario.
const outage = 30 * time.Second

// TestKafkaOutage runs one bridge importing Kafka topic "in" and exporting a Danube topic to Kafka
// topic "out", against a Kafka broker of the test's own, which it stops for 30 s mid-stream and
// starts again with its data. The development broker's ack timeout is 2 s with its default five
// redeliveries and poison policy Block, so an export that let its messages time out during the
// outage would block the subscription many times over. /readyz turns false during the outage;
// afterwards every record and message arrives, the subscription is not blocked, and the export
// produced no duplicates (it kept its records queued in the producer instead of producing them
// again).
func TestKafkaOutage(t *testing.T) {
	k := ownKafka(t)
	const parts = 2
	kafkatest.CreateTopic(t, k.Bootstrap, "in", parts)
	kafkatest.CreateTopic(t, k.Bootstrap, "out", parts)
	b := runtimetest.StartBroker(t) // ack timeout 2 s, 5 redeliveries, then Block
	const dest, src, sub = "/default/imported", "/default/exported", "bridge-kafka"
	runtimetest.CreateTopic(t, b, dest)
	col := runtimetest.Collect(t, b, dest, "reader")
	preSubscribe(t, b, src, "bridge-export-default-exported", sub)

	c := startConnector(t, bridgeEnv(b, k.Bootstrap, "KAFKA_GROUP_ID=bridge", "IMPORT_MAPPINGS=in="+dest,
		"EXPORT_MAPPINGS="+src+"=out", "IMPORT_MAX_IN_FLIGHT=100", "IMPORT_BATCH_SIZE=20")...)

	const n = 300 // per phase and direction
	produceKafka := func(from, to int) {
		msgs := make([]*kafka.Message, 0, to-from)
		for i := from; i < to; i++ {
			msgs = append(msgs, &kafka.Message{Key: fmt.Appendf(nil, "k%d", i%13), Value: fmt.Appendf(nil, "r%05d", i)})
		}
		kafkatest.Produce(t, k.Bootstrap, "in", msgs...)
	}
	produceDanube := func(from, to int) {
		msgs := make([]danube.ProducerMessage, 0, to-from)
		for i := from; i < to; i++ {
			msgs = append(msgs, danube.ProducerMessage{Key: fmt.Sprintf("k%d", i%13), Payload: fmt.Appendf(nil, "m%05d", i)})
		}
		runtimetest.Produce(t, b, src, msgs...)
	}

	// Both directions flowing, then Kafka goes away mid-stream.
	produceKafka(0, n)
	produceDanube(0, n)
	col.WaitFor(t, "some imported records", func(ms []*danube.Message) bool { return len(ms) > 0 })
	k.Stop(t)
	stopped := time.Now()
	produceDanube(n, 2*n) // exported once Kafka is back
	err := c.WaitNotReady()
	t.Logf("during the outage: %v", err)
	if !strings.Contains(err.Error(), "kafka unreachable") {
		t.Errorf("/readyz during the outage: %v; want it to name Kafka unreachable", err)
	}
	// The manifests' readiness probe gives up after 1 s: /readyz must answer within it while Kafka
	// is down (it used to wait 2 s for a metadata request per mapping).
	for range 5 {
		if err := c.ReadyWithin(time.Second); err == nil || !strings.Contains(err.Error(), "kafka unreachable") {
			t.Errorf("/readyz with a 1 s timeout during the outage: %v; want a Kafka unreachable answer", err)
		}
	}
	time.Sleep(outage - time.Since(stopped))
	if st, _ := b.SubscriptionStats(src, sub); st.Blocked != 0 {
		t.Errorf("export subscription blocked during the outage: %+v", st)
	}
	k.Start(t)
	c.WaitReady()
	produceKafka(n, 2*n)
	produceDanube(2*n, 3*n)

	waitDistinct(t, col, 2*n)
	reader := kafkatest.Read(t, k.Bootstrap, "out", parts)
	reader.WaitFor(t, "every exported message", func(ms []*kafka.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Value)] = true
		}
		return len(seen) == 3*n
	})
	c.Stop()
	got := reader.Drain(t)
	imported := len(col.Messages())
	t.Logf("import: %d records, %d messages in Danube (%d duplicates); export: %d messages, %d records in Kafka",
		2*n, imported, imported-2*n, 3*n, len(got))
	// A produce Kafka wrote just before it went down, but never confirmed, times out and is produced
	// again: duplicates are bounded by what was in flight (EXPORT_MAX_IN_FLIGHT, 64 by default).
	if dups := len(got) - 3*n; dups < 0 || dups > 64 {
		t.Errorf("Kafka holds %d exported records for %d messages: %d duplicates, want at most 64 (EXPORT_MAX_IN_FLIGHT)", len(got), 3*n, dups)
	}
	if st, _ := b.SubscriptionStats(src, sub); st.Blocked != 0 {
		t.Errorf("export subscription blocked: %+v", st)
	}
	// librdkafka reports the outage up to 20 times a second; each error is logged once, then
	// counted (it was one line per report: hundreds over the outage).
	if n := strings.Count(c.Logs(), "kafka consumer error"); n > 20 {
		t.Errorf("%d \"kafka consumer error\" lines for one outage, want each error logged once and then counted", n)
	}
}
