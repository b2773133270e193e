package bridge_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/headers"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaimport"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

// mirrorEnv is the environment of a mirroring import of topic into dest, as replica name.
func mirrorEnv(b runtimetest.Broker, bootstrap, name, topic, dest string, extra ...string) []string {
	return append([]string{
		"DANUBE_SERVICE_URL=" + b.URL(), "CONNECTOR_NAME=" + name, "METRICS_ADDR=", "RETRY_BACKOFF_MS=50",
		"KAFKA_BOOTSTRAP_SERVERS=" + bootstrap, "KAFKA_GROUP_ID=" + topic + "_group", "IMPORT_MAPPINGS=" + topic + "=" + dest,
		"IMPORT_MIRROR_PARTITIONS=true", "PUBLISH_ORDER=strict", "IMPORT_MAX_IN_FLIGHT=60", "IMPORT_BATCH_SIZE=20",
		"KAFKA_CONSUMER_PROPERTIES=enable.metrics.push=false;session.timeout.ms=6000;heartbeat.interval.ms=500;topic.metadata.refresh.interval.ms=500",
	}, extra...)
}

// kafkaID is a record's place in Kafka, as the import's attributes carry it.
type kafkaID struct {
	partition int32
	offset    int64
}

func idOf(t *testing.T, m *danube.Message) kafkaID {
	t.Helper()
	p, err1 := strconv.ParseInt(m.Attributes[headers.KafkaPartition], 10, 32)
	o, err2 := strconv.ParseInt(m.Attributes[headers.KafkaOffset], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("message %q without Kafka position attributes: %v", m.Payload, m.Attributes)
	}
	return kafkaID{int32(p), o}
}

// TestMirrorPartitions imports a 3-partition Kafka topic with IMPORT_MIRROR_PARTITIONS=true, first
// with one replica, then with a second one joining the group, then with the second alone. Before
// any record the three Danube partitions exist (a consumer of the base topic subscribes to all of
// them); every record lands in the Danube partition of its Kafka partition (not the one its key
// would pick), in Kafka order per partition and producer (PUBLISH_ORDER=strict), resuming from the
// committed offset where a rebalance gave it the partition; a partition that
// moved between the replicas holds both replicas' producers side by side; and the group's committed
// offsets end at the end of every partition, since Danube acknowledged everything.
func TestMirrorPartitions(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	const parts, perPhase = 3, 90
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, parts)
	b := runtimetest.StartBroker(t)
	const dest = "/default/mirrored"

	a := start(t, mirrorEnv(b, ep.Bootstrap, "bridge-a", topic, dest))
	// Ready means the import created the partitions: both consumers find them now, before any
	// record (a subscription created later would start at the tail).
	base := runtimetest.Collect(t, b, dest, "base-reader")
	part1 := runtimetest.Collect(t, b, kafkaimport.PartitionTopic(dest, 1), "part-reader")

	// Records go to explicit partitions, round-robin, with keys that ignore the partition: the
	// Kafka partition, not the key, picks the Danube partition.
	next := 0
	produce := func() {
		msgs := make([]*kafka.Message, perPhase)
		for i := range msgs {
			p := int32(next % parts)
			msgs[i] = &kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: new(topic), Partition: p},
				Key:            fmt.Appendf(nil, "k%d", next%7), Value: fmt.Appendf(nil, "p%d-r%04d", p, next),
			}
			next++
		}
		kafkatest.Produce(t, ep.Bootstrap, topic, msgs...)
	}
	distinct := func(n int) func([]*danube.Message) bool {
		return func(ms []*danube.Message) bool {
			seen := map[string]bool{}
			for _, m := range ms {
				seen[string(m.Payload)] = true
			}
			return len(seen) >= n
		}
	}

	produce()
	base.WaitFor(t, "the first records", distinct(perPhase))
	bb := start(t, mirrorEnv(b, ep.Bootstrap, "bridge-b", topic, dest))
	produce()
	base.WaitFor(t, "records after B joined", distinct(2*perPhase))
	a.stop(t)
	produce()
	got := base.WaitFor(t, "every record", distinct(3*perPhase))
	bb.stop(t)

	// Per Danube partition, per producer, the Kafka offsets in Danube's order.
	type stream struct {
		topic, producer string
	}
	offsets := map[stream][]int64{}
	producers := map[string]map[string]bool{} // partition topic → producer names
	slices.SortFunc(got, func(x, y *danube.Message) int { return cmp.Compare(x.Offset, y.Offset) })
	for _, m := range got {
		id := idOf(t, m)
		if want := kafkaimport.PartitionTopic(dest, id.partition); m.Topic != want || !strings.HasPrefix(string(m.Payload), fmt.Sprintf("p%d-", id.partition)) {
			t.Errorf("record %q from Kafka partition %d arrived in %s, want %s", m.Payload, id.partition, m.Topic, want)
		}
		s := stream{m.Topic, m.ProducerName}
		offsets[s] = append(offsets[s], id.offset)
		if producers[m.Topic] == nil {
			producers[m.Topic] = map[string]bool{}
		}
		producers[m.Topic][m.ProducerName] = true
	}
	// Each replica publishes a partition it owns in Kafka order (PUBLISH_ORDER=strict): the next
	// offset, except where an assignment began (the group rebalanced twice), when it continues
	// from the committed offset (records in flight at the revoke are then read again).
	for s, offs := range offsets {
		jumps := 0
		for i := 1; i < len(offs); i++ {
			if offs[i] != offs[i-1]+1 {
				jumps++
			}
		}
		if jumps > 2 {
			t.Errorf("%s from %s: Kafka offsets out of order (%d jumps, 2 rebalances): %v", s.topic, s.producer, jumps, offs)
		}
	}
	moved := 0
	for topic, names := range producers {
		t.Logf("%s: producers %v", topic, slices.Sorted(maps.Keys(names)))
		if len(names) == 2 {
			moved++
		}
	}
	if len(producers) != parts || moved == 0 {
		t.Errorf("want %d partition topics, at least one written by both replicas; got %v", parts, producers)
	}
	t.Logf("%d records, %d messages in Danube", 3*perPhase, len(got))

	// The partition's own subscriber saw exactly partition 1's records.
	p1 := part1.WaitFor(t, "partition 1's records", func(ms []*danube.Message) bool { return distinct(3 * perPhase / parts)(ms) })
	for _, m := range p1 {
		if id := idOf(t, m); id.partition != 1 {
			t.Errorf("%s holds %q from Kafka partition %d", kafkaimport.PartitionTopic(dest, 1), m.Payload, id.partition)
		}
	}

	// Everything was acknowledged by Danube: the committed offsets are the ends of the partitions.
	for p, off := range kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, parts) {
		if want := kafka.Offset(3 * perPhase / parts); off != want {
			t.Errorf("partition %d: committed %v, want the end %v", p, off, want)
		}
	}
}

// TestMirrorKafkaGainsPartitions: the Kafka topic grows from 2 to 3 partitions while the bridge
// runs, and the operator follows the README: create the new Danube partition, subscribe again,
// then add the Kafka partition. The consumer that subscribed again receives partition 2's record
// in the new Danube partition; the one subscribed before keeps receiving the partitions it knew.
func TestMirrorKafkaGainsPartitions(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, 2)
	b := runtimetest.StartBroker(t)
	const dest = "/default/growing"
	r := start(t, mirrorEnv(b, ep.Bootstrap, "bridge", topic, dest))
	before := runtimetest.Collect(t, b, dest, "before")

	runtimetest.CreateTopic(t, b, kafkaimport.PartitionTopic(dest, 2))
	after := runtimetest.Collect(t, b, dest, "after")
	kafkatest.AddPartitions(t, ep.Bootstrap, topic, 3)
	var msgs []*kafka.Message
	for p := range int32(3) {
		msgs = append(msgs, &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: new(topic), Partition: p}, Value: fmt.Appendf(nil, "p%d", p)})
	}
	kafkatest.Produce(t, ep.Bootstrap, topic, msgs...)

	for _, m := range after.WaitFor(t, "a record from each partition", func(ms []*danube.Message) bool { return len(ms) >= 3 }) {
		if id := idOf(t, m); m.Topic != kafkaimport.PartitionTopic(dest, id.partition) || string(m.Payload) != fmt.Sprintf("p%d", id.partition) {
			t.Errorf("record %q of Kafka partition %d arrived in %s", m.Payload, id.partition, m.Topic)
		}
	}
	before.WaitFor(t, "the records of partitions 0 and 1", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	r.stop(t)
	if got := slices.Sorted(slices.Values(before.Payloads())); !slices.Equal(got, []string{"p0", "p1"}) {
		t.Errorf("the consumer subscribed before the new partition received %q, want p0 and p1", got)
	}
	if off := kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, 3); !slices.Equal(off, []kafka.Offset{1, 1, 1}) {
		t.Errorf("committed %v, want 1 in each partition", off)
	}
}

// TestMirrorIntoUnpartitionedTopic: a Danube topic that exists unpartitioned cannot take the
// partitions; the bridge stops at start with an error naming it, and reads nothing from Kafka.
func TestMirrorIntoUnpartitionedTopic(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, 2)
	b := runtimetest.StartBroker(t)
	const dest = "/default/plain"
	runtimetest.CreateTopic(t, b, dest)
	var cfg bridge.Config
	if err := config.Load(&cfg, mirrorEnv(b, ep.Bootstrap, "bridge", topic, dest)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	err := bridge.Run(ctx, &cfg)
	want := `import ` + topic + ` → /default/plain: runtime: initialize connector "bridge-import-` + topic + `": kafka import of "` + topic +
		`": IMPORT_MIRROR_PARTITIONS: the Danube topic "/default/plain" exists and is not partitioned, so its partition "/default/plain-part-0" cannot be created; ` +
		`import into a new Danube topic, or delete "/default/plain": danube: create producer "bridge-import-` + topic + `" on topic "/default/plain-part-0" at ` + b.URL() +
		`: rpc error: code = AlreadyExists desc = Cannot create partition /default/plain-part-0: non-partitioned topic /default/plain already exists`
	if err == nil || err.Error() != want {
		t.Fatalf("Run returned\n%v\nwant\n%s", err, want)
	}
	if off := kafkatest.Committed(t, ep.Bootstrap, topic+"_group", topic, 2); off[0] >= 0 || off[1] >= 0 {
		t.Errorf("committed %v, want nothing", off)
	}
}

// TestMirrorConfigInvalid: IMPORT_MIRROR_PARTITIONS with DANUBE_PARTITIONS, without imports or
// with a partition as the destination is refused at start, every problem at once.
func TestMirrorConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{{
		name: "with DANUBE_PARTITIONS",
		env:  []string{"IMPORT_MAPPINGS=orders=/default/orders", "KAFKA_GROUP_ID=g", "DANUBE_PARTITIONS=3"},
		want: `invalid configuration (1 problem):
  DANUBE_PARTITIONS="3": must be 0 with IMPORT_MIRROR_PARTITIONS=true: the Danube topic gets the Kafka topic's partitions`,
	}, {
		name: "export only",
		env:  []string{"EXPORT_MAPPINGS=/default/shipments=shipments"},
		want: `invalid configuration (1 problem):
  IMPORT_MIRROR_PARTITIONS="true": applies to imports only: set IMPORT_MAPPINGS, or leave it false`,
	}, {
		name: "into a partition, with DANUBE_PARTITIONS",
		env:  []string{"IMPORT_MAPPINGS=orders=/default/orders-part-1;payments=/default/payments", "KAFKA_GROUP_ID=g", "DANUBE_PARTITIONS=2"},
		want: `invalid configuration (2 problems):
  DANUBE_PARTITIONS="2": must be 0 with IMPORT_MIRROR_PARTITIONS=true: the Danube topic gets the Kafka topic's partitions
  IMPORT_MAPPINGS="orders=/default/orders-part-1": with IMPORT_MIRROR_PARTITIONS=true the Danube topic must not contain "-part-" (its partitions are named <topic>-part-N)`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=bridge", "KAFKA_BOOTSTRAP_SERVERS=localhost:9092",
				"IMPORT_MIRROR_PARTITIONS=true"}, tc.env...)
			var cfg bridge.Config
			err := config.Load(&cfg, env)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Load returned\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
	var cfg bridge.Config
	if err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=bridge", "KAFKA_BOOTSTRAP_SERVERS=localhost:9092",
		"IMPORT_MAPPINGS=orders=/default/orders", "KAFKA_GROUP_ID=g", "IMPORT_MIRROR_PARTITIONS=true"}); err != nil || !cfg.Import.Mirror {
		t.Fatalf("a valid mirroring config: %v (mirror %v)", err, cfg.Import.Mirror)
	}
}
