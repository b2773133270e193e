package kafkaimport_test

import (
	"fmt"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

// TestRebalanceLosesNothing runs two imports in one group over a 4-partition topic: B joins while A
// is importing, then A stops while B is importing. Every record reaches Danube (duplicates are
// allowed: records in flight on a revoked partition are read again by its next owner), and the
// group's committed offsets end at the end of every partition.
func TestRebalanceLosesNothing(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	group := topic + "_group"
	const parts, n = 4, 600
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, parts)
	b := runtimetest.StartBroker(t)
	dest := "/default/rebalance"
	runtimetest.CreateTopic(t, b, dest)
	col := runtimetest.Collect(t, b, dest, "reader")

	produce := func(from, to int) {
		var msgs []*kafka.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, &kafka.Message{Key: fmt.Appendf(nil, "k%d", i%17), Value: fmt.Appendf(nil, "r%d", i)})
		}
		kafkatest.Produce(t, ep.Bootstrap, topic, msgs...)
	}
	atLeast := func(k int) func([]*danube.Message) bool {
		return func(ms []*danube.Message) bool { return len(ms) >= k }
	}

	cfgA := runtimetest.SourceConfig(b, "import-a", dest)
	cfgA.MaxInFlight, cfgA.BatchSize = 50, 20 // records in flight when the partitions move
	a := runtimetest.StartSource(t, cfgA, newSource(t, ep.Bootstrap, topic, group, cfgA), true)
	produce(0, n/3)
	col.WaitFor(t, "some records from A", atLeast(n/6))

	cfgB := runtimetest.SourceConfig(b, "import-b", dest)
	cfgB.MaxInFlight, cfgB.BatchSize = 50, 20
	bb := runtimetest.StartSource(t, cfgB, newSource(t, ep.Bootstrap, topic, group, cfgB), true)
	produce(n/3, 2*n/3)
	col.WaitFor(t, "records after B joined", atLeast(n/2))
	if err := a.Stop(); err != nil {
		t.Fatalf("stop A: %v", err)
	}
	produce(2*n/3, n)
	got := col.WaitFor(t, "every record", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		return len(seen) == n
	})
	if err := bb.Stop(); err != nil {
		t.Fatalf("stop B: %v", err)
	}
	by := map[string]int{}
	for _, m := range got {
		by[m.ProducerName]++
	}
	t.Logf("%d records, %d messages in Danube (%d duplicates); by importer: %v", n, len(got), len(got)-n, by)
	if by["import-a"] == 0 || by["import-b"] == 0 {
		t.Errorf("want records from both importers (the group rebalanced), got %v", by)
	}

	// Everything was acknowledged by Danube, so the committed offsets reach the end of each
	// partition: a new member would not read anything again.
	ends := map[int32]kafka.Offset{}
	for _, m := range kafkatest.Read(t, ep.Bootstrap, topic, parts).WaitFor(t, "every record", func(ms []*kafka.Message) bool { return len(ms) == n }) {
		ends[m.TopicPartition.Partition] = max(ends[m.TopicPartition.Partition], m.TopicPartition.Offset+1)
	}
	for p, off := range kafkatest.Committed(t, ep.Bootstrap, group, topic, parts) {
		if off != ends[int32(p)] {
			t.Errorf("partition %d: committed %v, want the end %v", p, off, ends[int32(p)])
		}
	}
}
