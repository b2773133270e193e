// Package kafkaimport is the bridge's import: a runtime source that consumes a Kafka topic in a
// consumer group and publishes every record to a Danube topic. A partition's offset is committed to
// Kafka only once Danube acknowledged every record before it (the runtime's ordered watermark), so
// a crash, a restart or a rebalance re-reads records (at-least-once) and never skips one.
package kafkaimport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel/metric"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/headers"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaconn"
)

// Position is where a record sits in Kafka. Commit confirms Offset+1 of the last position per
// partition, and only for the assignment the record was read under: once a partition moved to
// another group member (or came back after a rebalance), older positions are not committed for it.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
	epoch     uint64 // the assignment of the partition this record was read under
}

// String names the record at p in Kafka's terms, for an error or a dead-letter descriptor.
func (p Position) String() string {
	return fmt.Sprintf("Kafka topic %s partition %d offset %d", p.Topic, p.Partition, p.Offset)
}

// Options configure one import: the Kafka topic it reads and the Danube topic it publishes to.
type Options struct {
	// Kafka is the connection's librdkafka configuration (kafkaconn.Config.ConfigMap plus
	// pass-through properties); the consumer's own settings are added to a copy.
	Kafka kafka.ConfigMap
	// Topic is the Kafka topic to consume.
	Topic string
	// Group is the consumer group (KAFKA_GROUP_ID).
	Group string
	// Start is auto.offset.reset: where a group without a committed offset starts, "earliest"
	// (the default: a migration carries the existing data) or "latest".
	Start string
	// Destination is the Danube topic the records go to: records the export produced from it are
	// skipped (loop guard).
	Destination string
	// BatchSize is the most records one Poll returns.
	BatchSize int
	// Mirror publishes the records of Kafka partition p to PartitionTopic(Destination, p) instead
	// of Destination, so that the partitioned Danube topic Destination holds the Kafka topic's
	// partitions one to one. The runtime's config must then leave Topic empty (a producer on
	// Destination itself would create it as a non-partitioned topic) and Partitions 0.
	Mirror bool
	// CreateTopics, with Mirror, creates Danube topics (see DanubeTopics). Initialize calls it,
	// before joining the group, with the partition topics of the Kafka topic's current partitions,
	// so that consumers of Destination find every partition from the start (a subscription created
	// later starts at the tail), and so that a Destination that exists as a non-partitioned topic
	// stops the import at once. Nil: each partition topic is created by its first record.
	CreateTopics func(ctx context.Context, topics []string) error
}

// Source imports one Kafka topic. Poll runs on the runtime's poll goroutine (so does the rebalance
// callback, from inside the consumer's Poll); Commit may run concurrently with it.
type Source struct {
	runtime.SourceBase
	opts    Options
	log     *slog.Logger
	skipped metric.Int64Counter

	c *kafka.Consumer

	// commitMu serializes Commit and the rebalance callback, so that a revoke waits for a commit in
	// progress. mu guards owned and epoch only briefly: Poll reads them for every record and must
	// not wait for a commit's round trip to Kafka.
	commitMu sync.Mutex
	mu       sync.RWMutex
	owned    map[int32]uint64 // assigned partitions → their assignment epoch; guarded by mu
	epoch    uint64           // last epoch handed out; guarded by mu

	carry  []runtime.SourceRecord[Position] // read but not handed over when Poll was interrupted
	mirror map[int32]string                 // with Options.Mirror: partition → its Danube topic (Poll's goroutine only)
	down   *kafkaconn.Reachability          // Kafka down or refusing the credentials, the topic missing
	errs   *kafkaconn.ErrorLog              // librdkafka's error events, each logged once, then counted
	logs   sync.WaitGroup                   // the forwarding of librdkafka's log lines
	lag    atomic.Int64
	lagAt  time.Time
}

// dialTimeout bounds Initialize's first request to Kafka.
const dialTimeout = 5 * time.Second

// New returns an import; it connects in Initialize.
func New(opts Options, res runtime.Resources) (*Source, error) {
	if opts.Start == "" {
		opts.Start = "earliest"
	}
	if opts.BatchSize < 1 {
		opts.BatchSize = 500
	}
	skipped, err := res.Meter.Int64Counter("bridge_kafka.import.loop_skipped",
		metric.WithDescription("Kafka records not imported because the export produced them from this Danube topic (loop guard)."))
	if err != nil {
		return nil, err
	}
	return &Source{
		opts: opts, log: res.Logger, skipped: skipped, owned: map[int32]uint64{}, mirror: map[int32]string{},
		down: &kafkaconn.Reachability{Brokers: fmt.Sprint(opts.Kafka["bootstrap.servers"])},
		errs: &kafkaconn.ErrorLog{Log: res.Logger, Msg: "kafka consumer error; librdkafka retries", Every: time.Minute},
	}, nil
}

// Initialize creates the consumer, asks Kafka for the topic's metadata and joins the group; when
// mirroring, it first creates the Danube partition topics (Options.CreateTopics). Kafka not
// answering yet is Disconnected: the runtime calls Initialize again after a backoff. Refused
// credentials and a property librdkafka rejects are not. A topic that does not exist (yet) is
// waited for, reported on /readyz.
func (s *Source) Initialize(ctx context.Context) error {
	cm := kafka.ConfigMap{}
	for k, v := range s.opts.Kafka {
		cm[k] = v
	}
	for k, v := range map[string]kafka.ConfigValue{
		"group.id":                 s.opts.Group,
		"auto.offset.reset":        s.opts.Start,
		"enable.auto.commit":       false, // Commit confirms only what Danube acknowledged
		"enable.auto.offset.store": false,
		"enable.partition.eof":     false,
		"go.logs.channel.enable":   true, // ForwardLogs
	} {
		cm[k] = v
	}
	// librdkafka prefetches up to 64 MiB per consumer by default, in fetch responses of up to
	// 50 MiB; 4 MiB of each keep several thousand records ahead of the publisher (more than
	// Danube takes in the time of a fetch) without holding the process's memory. At most 256 KiB
	// per partition and fetch interleaves the partitions finely, so the records in flight span
	// many keys (PUBLISH_ORDER=key publishes one per key at a time). With a queue that small it is
	// full whenever the publisher is behind, and librdkafka then postpones a partition's next fetch
	// by fetch.queue.backoff.ms, 1 s by default: the import fetched one queue a second (5,800
	// records/s of 1 KiB, whatever Danube took). 10 ms fetches again as soon as there is room.
	// Override with KAFKA_CONSUMER_PROPERTIES.
	for k, v := range map[string]kafka.ConfigValue{
		"queued.max.messages.kbytes": 4096, "fetch.max.bytes": 4 << 20, "max.partition.fetch.bytes": 256 << 10,
		"fetch.queue.backoff.ms": 10,
	} {
		if _, set := cm[k]; !set {
			cm[k] = v
		}
	}
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return runtime.Fatal(fmt.Errorf("kafka consumer: %w", err))
	}
	s.logs.Go(func() { kafkaconn.ForwardLogs(s.log, c.Logs()) })
	if err := s.dial(c); err != nil {
		s.close(c)
		return err
	}
	if s.opts.Mirror && s.opts.CreateTopics != nil {
		if err := s.opts.CreateTopics(ctx, s.mirrorTopics(c)); err != nil {
			s.close(c)
			return fmt.Errorf("kafka import of %q: %w", s.opts.Topic, err)
		}
	}
	if err := c.SubscribeTopics([]string{s.opts.Topic}, s.rebalance); err != nil {
		s.close(c)
		return fmt.Errorf("subscribe to Kafka topic %q: %w", s.opts.Topic, err)
	}
	s.c = c
	s.down.Watch(c.GetMetadata, s.opts.Topic)
	s.log.Info("kafka import started", "kafka_topic", s.opts.Topic, "group", s.opts.Group, "start", s.opts.Start,
		"danube_topic", s.opts.Destination, "mirror_partitions", s.opts.Mirror)
	return nil
}

// dial makes the first request to Kafka, a metadata request for the topic, and classifies a failure
// by the error events librdkafka queued meanwhile (refused connections, a refused authentication).
func (s *Source) dial(c *kafka.Consumer) error {
	err := s.down.Probe(c.GetMetadata, s.opts.Topic, dialTimeout)
	for range 1000 { // bounded: librdkafka queues events as fast as it retries
		ev := c.Poll(0)
		if ev == nil {
			break
		}
		if e, ok := ev.(kafka.Error); ok {
			s.down.Event(e)
		}
	}
	if cause := s.down.Err(); cause != nil && kafkaconn.Unauthenticated(cause) {
		return fmt.Errorf("kafka import of %q: %w", s.opts.Topic, cause)
	}
	if err != nil {
		return runtime.Disconnected(fmt.Errorf("kafka import of %q: kafka unreachable: no answer from the brokers %s within %v: %w",
			s.opts.Topic, s.down.Brokers, dialTimeout, err))
	}
	s.down.Up() // the request got through: events queued before it are stale
	if err := s.down.Missing(); err != nil {
		s.log.Warn("kafka import not ready", "kafka_topic", s.opts.Topic, "err", err)
	}
	return nil
}

// close closes a consumer Initialize opened and waits for the forwarding of its log lines.
func (s *Source) close(c *kafka.Consumer) {
	_ = c.Close()
	s.logs.Wait()
}

// rebalance keeps the set of owned partitions. Each assignment gets a new epoch, so positions read
// under an earlier assignment are never committed: after a revoke another member may own the
// partition and have moved on, and after a re-assignment the consumer restarts from the group's
// committed offset anyway. Records of a revoked partition that were already handed to the runtime
// are still published; their offsets stay uncommitted and the partition's next owner reads them
// again (at-least-once). What Danube acknowledged before the revoke was committed by Commit, which
// holds mu while it commits, so the revoke waits for a commit in progress.
func (s *Source) rebalance(_ *kafka.Consumer, ev kafka.Event) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		for _, tp := range e.Partitions {
			s.epoch++
			s.owned[tp.Partition] = s.epoch
		}
		s.log.Info("kafka partitions assigned", "kafka_topic", s.opts.Topic, "partitions", partitions(e.Partitions))
	case kafka.RevokedPartitions:
		for _, tp := range e.Partitions {
			delete(s.owned, tp.Partition)
		}
		s.log.Info("kafka partitions revoked", "kafka_topic", s.opts.Topic, "partitions", partitions(e.Partitions))
	}
	return nil
}

func partitions(tps []kafka.TopicPartition) []int32 {
	out := make([]int32, len(tps))
	for i, tp := range tps {
		out[i] = tp.Partition
	}
	return out
}

// Poll blocks until Kafka has records, then returns what is ready, at most BatchSize.
//
// The source never returns a Disconnected error (librdkafka reconnects by itself), so the runtime
// never interrupts a Poll to reconnect: its context ends only at shutdown. Records read when the
// context ended are kept and handed over first by a later Poll, so nothing read is skipped.
func (s *Source) Poll(ctx context.Context) ([]runtime.SourceRecord[Position], error) {
	recs := s.carry
	s.carry = nil
	for len(recs) < s.opts.BatchSize {
		if ctx.Err() != nil {
			s.carry = recs
			return nil, ctx.Err()
		}
		timeout := 100
		if len(recs) > 0 {
			timeout = 0 // hand over what is ready rather than wait for a full batch
		}
		switch e := s.c.Poll(timeout).(type) {
		case nil:
			if len(recs) > 0 {
				return recs, nil
			}
		case *kafka.Message:
			s.down.Up()
			s.errs.Recovered("kafka_topic", s.opts.Topic)
			if e.TopicPartition.Error != nil {
				s.log.Warn("kafka consume error", "kafka_topic", s.opts.Topic, "err", e.TopicPartition.Error)
				continue
			}
			recs = append(recs, s.record(e))
		case kafka.Error:
			if e.IsFatal() {
				s.carry = recs
				return nil, runtime.Fatal(fmt.Errorf("kafka consumer: %w", e))
			}
			s.down.Event(e)
			s.errs.Error(e, "kafka_topic", s.opts.Topic)
		}
	}
	return recs, nil
}

// record converts a Kafka record; one the export produced from this import's Danube topic becomes a
// checkpoint (its offset is committed in order, nothing is published).
func (s *Source) record(m *kafka.Message) runtime.SourceRecord[Position] {
	tp := m.TopicPartition
	s.mu.RLock()
	epoch := s.owned[tp.Partition] // 0 (never committed) if the assignment is unknown
	s.mu.RUnlock()
	pos := Position{Topic: *tp.Topic, Partition: tp.Partition, Offset: int64(tp.Offset), epoch: epoch}
	if headers.FromDanube(m, s.opts.Destination) {
		s.skipped.Add(context.Background(), 1)
		return runtime.Checkpoint(pos)
	}
	attrs := headers.ToAttributes(m)
	key, encoded := headers.Key(m.Key)
	if encoded {
		attrs[headers.KafkaKeyBase64] = "true"
	}
	rec := runtime.NewSourceRecord(s.topicOf(tp.Partition), m.Value, pos).WithKey(key)
	rec.Attributes = attrs
	rec.Origin = pos.String
	return rec
}

// topicOf returns the Danube topic of partition p's records: "" (the runtime's Topic, the
// destination) unless mirroring.
func (s *Source) topicOf(p int32) string {
	if !s.opts.Mirror {
		return ""
	}
	t, ok := s.mirror[p]
	if !ok {
		t = PartitionTopic(s.opts.Destination, p)
		s.mirror[p] = t
	}
	return t
}

// Commit confirms, per partition still owned under the same assignment, the offset after the last
// position. Positions of partitions this member no longer owns are dropped (see rebalance).
func (s *Source) Commit(_ context.Context, positions []Position) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	next := map[int32]int64{}
	s.mu.RLock()
	for _, p := range positions {
		if e, ok := s.owned[p.Partition]; ok && e == p.epoch && p.epoch != 0 {
			next[p.Partition] = max(next[p.Partition], p.Offset+1)
		}
	}
	s.mu.RUnlock()
	if len(next) == 0 {
		return nil
	}
	tps := make([]kafka.TopicPartition, 0, len(next))
	for part, off := range next {
		tps = append(tps, kafka.TopicPartition{Topic: &s.opts.Topic, Partition: part, Offset: kafka.Offset(off)})
	}
	slices.SortFunc(tps, func(a, b kafka.TopicPartition) int { return int(a.Partition - b.Partition) })
	res, err := s.c.CommitOffsets(tps)
	if err == nil {
		for _, tp := range res {
			if tp.Error != nil {
				err = errors.Join(err, fmt.Errorf("partition %d: %w", tp.Partition, tp.Error))
			}
		}
	}
	if err != nil {
		// Retried by the runtime with the positions that arrive meanwhile; a partition revoked in
		// between is filtered out then.
		return fmt.Errorf("commit offsets of Kafka topic %q: %w", s.opts.Topic, err)
	}
	s.down.Up()
	return nil
}

// Lag reports the records in the owned partitions not yet read (from librdkafka's cached high
// watermarks, refreshed by fetches), at most once a second.
func (s *Source) Lag() int64 {
	if time.Since(s.lagAt) < time.Second {
		return s.lag.Load()
	}
	s.lagAt = time.Now()
	s.mu.RLock()
	tps := make([]kafka.TopicPartition, 0, len(s.owned))
	for p := range s.owned {
		tps = append(tps, kafka.TopicPartition{Topic: &s.opts.Topic, Partition: p})
	}
	s.mu.RUnlock()
	pos, err := s.c.Position(tps)
	if err != nil {
		return s.lag.Load()
	}
	var lag int64
	for _, tp := range pos {
		_, high, err := s.c.GetWatermarkOffsets(s.opts.Topic, tp.Partition)
		if err != nil || tp.Offset < 0 || high < int64(tp.Offset) {
			continue
		}
		lag += high - int64(tp.Offset)
	}
	s.lag.Store(lag)
	return lag
}

// HealthCheck reports, without waiting for Kafka, Kafka unreachable (after librdkafka said all
// brokers are down, until a record, a commit or a background metadata request gets through),
// refused credentials, or the topic missing.
func (s *Source) HealthCheck(context.Context) error {
	return s.down.Health()
}

// Shutdown leaves the group. Nothing is committed here: Commit has confirmed everything Danube
// acknowledged, and the rest is read again by the partitions' next owner.
func (s *Source) Shutdown(context.Context) error {
	if s.c == nil {
		return nil
	}
	s.down.Close()
	err := s.c.Close()
	s.logs.Wait()
	return err
}
