// Package kafkatest holds the Kafka helpers of the bridge's tests (its packages' and
// integration/bridge-kafka's): topics, producing and reading back through confluent-kafka-go.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Timeout bounds each helper's wait for Kafka.
const Timeout = 60 * time.Second

// admin returns an admin client, closed when the test ends, and a context bounded by Timeout.
func admin(t testing.TB, bootstrap string) (*kafka.AdminClient, context.Context) {
	t.Helper()
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "enable.metrics.push": false})
	if err != nil {
		t.Fatalf("kafka admin client: %v", err)
	}
	t.Cleanup(a.Close)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return a, ctx
}

// CreateTopic creates topic with n partitions and the topic configs given as "name=value", and
// deletes it when the test ends.
func CreateTopic(t testing.TB, bootstrap, topic string, n int, configs ...string) {
	t.Helper()
	a, ctx := admin(t, bootstrap)
	cfg := map[string]string{}
	for _, kv := range configs {
		k, v, _ := strings.Cut(kv, "=")
		cfg[k] = v
	}
	res, err := a.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: n, ReplicationFactor: 1, Config: cfg}})
	if err == nil && res[0].Error.Code() != kafka.ErrNoError {
		err = res[0].Error
	}
	if err != nil {
		t.Fatalf("create Kafka topic %s: %v", topic, err)
	}
	waitForTopic(t, a, topic, n)
	t.Cleanup(func() { // runs before the client's Close: cleanups run last-in first-out
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if _, err := a.DeleteTopics(ctx, []string{topic}); err != nil {
			t.Errorf("delete Kafka topic %s: %v", topic, err)
		}
	})
}

// AddPartitions raises topic's partitions to n and waits until the broker's metadata lists them.
func AddPartitions(t testing.TB, bootstrap, topic string, n int) {
	t.Helper()
	a, ctx := admin(t, bootstrap)
	res, err := a.CreatePartitions(ctx, []kafka.PartitionsSpecification{{Topic: topic, IncreaseTo: n}})
	if err == nil && res[0].Error.Code() != kafka.ErrNoError {
		err = res[0].Error
	}
	if err != nil {
		t.Fatalf("raise Kafka topic %s to %d partitions: %v", topic, n, err)
	}
	waitForTopic(t, a, topic, n)
}

// waitForTopic waits until the broker's metadata lists topic with n partitions, each with a
// leader. Apache Kafka answers CreateTopics once the controller committed the topic; the broker
// learns of it a moment later, and a client asking in between (a watermark query, for one) is
// told the partition is unknown. kfake creates topics synchronously.
func waitForTopic(t testing.TB, a *kafka.AdminClient, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		md, err := a.GetMetadata(&topic, false, int(Timeout/time.Millisecond))
		if err == nil {
			if tm, ok := md.Topics[topic]; ok && tm.Error.Code() == kafka.ErrNoError && len(tm.Partitions) == n && leaders(tm.Partitions) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kafka topic %s: no metadata with %d partitions and their leaders after %v (last error: %v)", topic, n, Timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaders(ps []kafka.PartitionMetadata) bool {
	for _, p := range ps {
		if p.Error.Code() != kafka.ErrNoError || p.Leader < 0 {
			return false
		}
	}
	return true
}

// Produce writes msgs (Topic set by Produce when nil) and waits for every delivery report. Records
// of up to 16 MiB pass the producer (the topic's max.message.bytes decides).
func Produce(t testing.TB, bootstrap, topic string, msgs ...*kafka.Message) {
	t.Helper()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1, "enable.metrics.push": false,
		"message.max.bytes": 16 << 20})
	if err != nil {
		t.Fatalf("kafka producer: %v", err)
	}
	defer p.Close()
	go func() {
		for range p.Events() { // errors and logs; delivery reports go to done
		}
	}()
	done := make(chan kafka.Event, len(msgs))
	for _, m := range msgs {
		if m.TopicPartition.Topic == nil {
			m.TopicPartition = kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny}
		}
		if err := p.Produce(m, done); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	timeout := time.After(Timeout)
	for range msgs {
		select {
		case ev := <-done:
			if m := ev.(*kafka.Message); m.TopicPartition.Error != nil {
				t.Fatalf("deliver to %s: %v", topic, m.TopicPartition.Error)
			}
		case <-timeout:
			t.Fatalf("no delivery report from %s within %v", topic, Timeout)
		}
	}
}

// Values returns messages with these values and no key.
func Values(vs ...[]byte) []*kafka.Message {
	out := make([]*kafka.Message, len(vs))
	for i, v := range vs {
		out[i] = &kafka.Message{Value: v}
	}
	return out
}

// Reader reads a topic from its beginning, without a group.
type Reader struct {
	c     *kafka.Consumer
	topic string
	parts int
	got   []*kafka.Message
}

// Read starts reading every partition of topic (n partitions) from the beginning.
func Read(t testing.TB, bootstrap, topic string, n int) *Reader {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": "kafkatest-reader", "enable.auto.commit": false,
		"enable.metrics.push": false})
	if err != nil {
		t.Fatalf("kafka consumer: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	tps := make([]kafka.TopicPartition, n)
	for i := range tps {
		tps[i] = kafka.TopicPartition{Topic: &topic, Partition: int32(i), Offset: kafka.OffsetBeginning}
	}
	if err := c.Assign(tps); err != nil {
		t.Fatalf("assign %s: %v", topic, err)
	}
	return &Reader{c: c, topic: topic, parts: n}
}

// WaitFor reads until cond holds for everything read so far, or fails the test after Timeout.
func (r *Reader) WaitFor(t testing.TB, what string, cond func([]*kafka.Message) bool) []*kafka.Message {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond(r.got) {
		if time.Now().After(deadline) {
			t.Fatalf("Kafka topic %s: waited %v for %s; have %d records", r.topic, Timeout, what, len(r.got))
		}
		m, err := r.c.ReadMessage(100 * time.Millisecond)
		var kerr kafka.Error
		switch {
		case err == nil:
			r.got = append(r.got, m)
		case errors.As(err, &kerr) && kerr.IsTimeout():
		default:
			t.Logf("read %s: %v", r.topic, err)
		}
	}
	return r.got
}

// Committed returns the group's committed offset of each of topic's n partitions.
func Committed(t testing.TB, bootstrap, group, topic string, n int) []kafka.Offset {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group, "enable.metrics.push": false})
	if err != nil {
		t.Fatalf("kafka consumer: %v", err)
	}
	defer c.Close()
	tps := make([]kafka.TopicPartition, n)
	for i := range tps {
		tps[i] = kafka.TopicPartition{Topic: &topic, Partition: int32(i)}
	}
	res, err := c.Committed(tps, int(Timeout/time.Millisecond))
	if err != nil {
		t.Fatalf("committed offsets of %s: %v", group, err)
	}
	out := make([]kafka.Offset, n)
	for _, tp := range res {
		out[tp.Partition] = tp.Offset
	}
	return out
}

// Drain reads up to the end every partition has now (its high watermark) and returns every
// record read so far.
func (r *Reader) Drain(t testing.TB) []*kafka.Message {
	t.Helper()
	next := map[int32]kafka.Offset{}
	for _, m := range r.got {
		next[m.TopicPartition.Partition] = max(next[m.TopicPartition.Partition], m.TopicPartition.Offset+1)
	}
	for p := range int32(r.parts) {
		_, high, err := r.c.QueryWatermarkOffsets(r.topic, p, int(Timeout/time.Millisecond))
		if err != nil {
			t.Fatalf("high watermark of %s/%d: %v", r.topic, p, err)
		}
		r.WaitFor(t, fmt.Sprintf("partition %d up to offset %d", p, high), func([]*kafka.Message) bool {
			for _, m := range r.got[len(r.got)-min(len(r.got), 1):] {
				next[m.TopicPartition.Partition] = max(next[m.TopicPartition.Partition], m.TopicPartition.Offset+1)
			}
			return next[p] >= kafka.Offset(high)
		})
	}
	return r.got
}
