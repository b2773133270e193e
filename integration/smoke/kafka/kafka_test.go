// Package kafka proves the integration harness's Kafka endpoint with
// confluent-kafka-go, the client of the Kafka bridge. It is a package of its
// own because confluent-kafka-go needs cgo and builds slowly.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

const (
	partitions = 3
	records    = 30
	timeout    = 60 * time.Second
)

// TestKafkaProduceConsumeCommit creates a topic, produces records with
// keys, consumes all of them in a consumer group, commits, and checks the
// committed offsets, as the Kafka bridge will.
func TestKafkaProduceConsumeCommit(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	createTopic(ctx, t, ep, topic)

	// Produce, waiting for every delivery report.
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":   ep.Bootstrap,
		"acks":                "all",
		"linger.ms":           5,
		"enable.metrics.push": false,
	})
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	defer p.Close()
	delivered := make(chan kafka.Event, records)
	for i := range records {
		err := p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key:            fmt.Appendf(nil, "key-%d", i%5),
			Value:          fmt.Appendf(nil, "value-%d", i),
			Headers:        []kafka.Header{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}},
		}, delivered)
		if err != nil {
			t.Fatalf("produce #%d: %v", i, err)
		}
	}
	perPartition := make(map[int32]kafka.Offset) // high watermark per partition
	for i := range records {
		select {
		case e := <-delivered:
			m, ok := e.(*kafka.Message)
			if !ok {
				t.Fatalf("delivery event %d is %T: %v", i, e, e)
			}
			if m.TopicPartition.Error != nil {
				t.Fatalf("delivery of %s failed: %v", m.Value, m.TopicPartition.Error)
			}
			perPartition[m.TopicPartition.Partition] = max(perPartition[m.TopicPartition.Partition], m.TopicPartition.Offset+1)
		case <-ctx.Done():
			t.Fatalf("%d of %d delivery reports: %v", i, records, ctx.Err())
		}
	}

	// Consume everything in a group and commit it.
	group := topic + "_group"
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":   ep.Bootstrap,
		"group.id":            group,
		"auto.offset.reset":   "earliest",
		"enable.auto.commit":  false,
		"enable.metrics.push": false,
	})
	if err != nil {
		t.Fatalf("new consumer: %v", err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	seen := make(map[string]string) // value -> key
	for len(seen) < records {
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", len(seen), records, ctx.Err())
		}
		m, err := c.ReadMessage(100 * time.Millisecond)
		if err != nil {
			var kerr kafka.Error
			if errors.As(err, &kerr) && kerr.IsTimeout() {
				continue
			}
			t.Fatalf("read: %v", err)
		}
		seen[string(m.Value)] = string(m.Key)
	}
	for i := range records {
		if k, want := seen[fmt.Sprintf("value-%d", i)], fmt.Sprintf("key-%d", i%5); k != want {
			t.Errorf("value-%d has key %q, want %q", i, k, want)
		}
	}
	if _, err := c.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// The group's committed offsets are the partitions' ends.
	tps := make([]kafka.TopicPartition, partitions)
	for i := range tps {
		tps[i] = kafka.TopicPartition{Topic: &topic, Partition: int32(i)}
	}
	committed, err := c.Committed(tps, int(timeout/time.Millisecond))
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}
	for _, tp := range committed {
		want, ok := perPartition[tp.Partition]
		if !ok {
			want = kafka.OffsetInvalid // nothing was produced there
		}
		if tp.Offset != want {
			t.Errorf("partition %d: committed offset %v, want %v", tp.Partition, tp.Offset, want)
		}
	}
	if err := c.Unsubscribe(); err != nil {
		t.Errorf("unsubscribe: %v", err)
	}
}

func createTopic(ctx context.Context, t *testing.T, ep harness.KafkaEndpoint, topic string) {
	t.Helper()
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": ep.Bootstrap})
	if err != nil {
		t.Fatalf("new admin client: %v", err)
	}
	defer a.Close()
	cluster, err := a.DescribeCluster(ctx)
	if err != nil {
		t.Fatalf("describe cluster: %v", err)
	}
	t.Logf("server: %s; cluster %q with %d broker(s)", ep.Source, *cluster.ClusterID, len(cluster.Nodes))

	res, err := a.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if res[0].Error.Code() != kafka.ErrNoError {
		t.Fatalf("create topic %s: %v", topic, res[0].Error)
	}
	// Apache Kafka answers CreateTopics once its controller committed the
	// topic; the broker's metadata has it a moment later. Clients started in
	// between see no such topic (kfake creates topics synchronously).
	for {
		md, err := a.GetMetadata(&topic, false, int(timeout/time.Millisecond))
		if err == nil && md.Topics[topic].Error.Code() == kafka.ErrNoError && len(md.Topics[topic].Partitions) == partitions {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s: no metadata with %d partitions: %v (%v)", topic, partitions, err, ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": ep.Bootstrap})
		if err != nil {
			t.Errorf("new admin client: %v", err)
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := a.DeleteTopics(ctx, []string{topic})
		if err == nil && res[0].Error.Code() != kafka.ErrNoError {
			err = res[0].Error
		}
		if err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})
}
