// Package kafkaexport is the bridge's export: a runtime sink that produces the messages of a Danube
// topic to a Kafka topic with an idempotent producer. A Danube message is acked only after Kafka's
// delivery report confirmed the record (acks=all); a record Kafka refuses for good goes to the
// dead-letter topic; an unreachable Kafka holds the messages and reconnects without spending
// delivery attempts.
package kafkaexport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel/metric"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/headers"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkaconn"
)

// Options configure one export: the Danube topic it consumes (the runtime subscribes) and the Kafka
// topic it produces to.
type Options struct {
	// Kafka is the connection's librdkafka configuration plus pass-through properties; the
	// producer's own settings are added to a copy.
	Kafka kafka.ConfigMap
	// Topic is the Kafka topic to produce to.
	Topic string
	// Origin is the Danube topic exported: every record carries it in the x-danube-topic header,
	// so the import of Topic into Origin skips it (loop guard).
	Origin string
	// DeliveryTimeout is librdkafka's message.timeout.ms: how long the producer retries a record
	// before its delivery fails (then the runtime reconnects and produces it again).
	DeliveryTimeout time.Duration
	// Batch hands the export batches (ProcessBatch, BATCH_SIZE) instead of streaming single
	// records to concurrent Process calls: records of one key are then produced without waiting
	// for each other's delivery reports.
	Batch bool
}

// Sink exports one Danube topic. Process is safe for concurrent use: the runtime streams records to
// MAX_IN_FLIGHT concurrent calls, one per routing key at a time, so a key's records reach Kafka in
// order (the same key goes to the same Kafka partition).
type Sink struct {
	runtime.SinkBase
	opts    Options
	log     *slog.Logger
	skipped metric.Int64Counter

	mu     sync.RWMutex // guards p against Reconnect
	p      *kafka.Producer
	events sync.WaitGroup          // watch and the forwarding of librdkafka's log lines, per producer
	down   *kafkaconn.Reachability // Kafka down or refusing the credentials, until Kafka answers again
	errs   *kafkaconn.ErrorLog     // librdkafka's error events, each logged once, then counted

	pmu     sync.Mutex
	pending map[string]*delivery // produced records by Danube message ID, until a Process call took their report; guarded by pmu
}

// delivery is one produced record awaiting (or holding) its delivery report. A Process call that
// returned before the report (Kafka went down) leaves it here: the runtime repeats the call for the
// same message after reconnecting, and that call waits for this report instead of producing the
// record a second time, so an outage adds no duplicates.
type delivery struct {
	once sync.Once
	done chan struct{} // closed once err is set
	err  error         // the delivery report's error; nil = delivered
}

// finish records the outcome; only the first call counts.
func (d *delivery) finish(err error) {
	d.once.Do(func() {
		d.err = err
		close(d.done)
	})
}

// New returns an export; it connects in Initialize.
func New(opts Options, res runtime.Resources) (*Sink, error) {
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 20 * time.Second
	}
	skipped, err := res.Meter.Int64Counter("bridge_kafka.export.loop_skipped",
		metric.WithDescription("Danube messages not exported because the import read them from this Kafka topic (loop guard)."))
	if err != nil {
		return nil, err
	}
	return &Sink{
		opts: opts, log: res.Logger, skipped: skipped, pending: map[string]*delivery{},
		down: &kafkaconn.Reachability{Brokers: fmt.Sprint(opts.Kafka["bootstrap.servers"])},
		errs: &kafkaconn.ErrorLog{Log: res.Logger, Msg: "kafka producer error; librdkafka retries", Every: time.Minute},
	}, nil
}

// dialTimeout bounds Initialize's first request to Kafka.
const dialTimeout = 5 * time.Second

// Concurrent opts in to the runtime's streaming mode (MAX_IN_FLIGHT concurrent Process calls).
// With Options.Batch the runtime hands over batches to ProcessBatch instead.
func (s *Sink) Concurrent() bool { return !s.opts.Batch }

// Initialize creates the producer and asks Kafka for the topic's metadata (which creates it when
// the brokers create topics on demand). Kafka not answering yet is Disconnected: the runtime calls
// Initialize again after a backoff. Refused credentials, a topic that does not exist and a
// property librdkafka rejects are not.
func (s *Sink) Initialize(ctx context.Context) error {
	p, err := s.newProducer()
	if err != nil {
		return runtime.Fatal(err)
	}
	if err := s.dial(ctx, p); err != nil {
		p.Close()
		s.events.Wait()
		return err
	}
	s.p = p
	s.down.Watch(s.metadata, s.opts.Topic)
	s.log.Info("kafka export started", "danube_topic", s.opts.Origin, "kafka_topic", s.opts.Topic)
	return nil
}

// dial makes the first request to Kafka, a metadata request for the topic; librdkafka's error
// events (watch) say why it failed. A broker that creates topics on demand may answer the first
// request before the topic exists: the request is repeated for up to dialTimeout until it does.
func (s *Sink) dial(ctx context.Context, p *kafka.Producer) error {
	deadline := time.Now().Add(dialTimeout)
	for {
		err := s.down.Probe(p.GetMetadata, s.opts.Topic, dialTimeout)
		if cause := s.down.Err(); cause != nil && kafkaconn.Unauthenticated(cause) {
			return fmt.Errorf("kafka export to %q: %w", s.opts.Topic, cause)
		}
		if err != nil {
			return runtime.Disconnected(fmt.Errorf("kafka export to %q: kafka unreachable: no answer from the brokers %s within %v: %w",
				s.opts.Topic, s.down.Brokers, dialTimeout, err))
		}
		err = s.down.Missing()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kafka export to %q: %w, and the brokers do not create topics on demand (auto.create.topics.enable=false): create it", s.opts.Topic, err)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// metadata is GetMetadata of the current producer (Reconnect may replace it).
func (s *Sink) metadata(topic *string, all bool, timeoutMs int) (*kafka.Metadata, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.p.GetMetadata(topic, all, timeoutMs)
}

func (s *Sink) newProducer() (*kafka.Producer, error) {
	cm := kafka.ConfigMap{}
	for k, v := range s.opts.Kafka {
		cm[k] = v
	}
	// Records are produced as the runtime hands them over; a short linger still groups the
	// concurrent ones into one request.
	if _, set := cm["linger.ms"]; !set {
		cm["linger.ms"] = 2
	}
	cm["enable.idempotence"] = true // acks=all, no duplicates or reordering from the producer's retries
	cm["message.timeout.ms"] = int(s.opts.DeliveryTimeout.Milliseconds())
	// Delivery reports come through Events with the record's *delivery as its Opaque; only their
	// error is read, so librdkafka's copy of key and value is not converted back to Go.
	cm["go.delivery.report.fields"] = "none"
	cm["go.logs.channel.enable"] = true // ForwardLogs
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	s.events.Go(func() { s.watch(p) })
	s.events.Go(func() { kafkaconn.ForwardLogs(s.log, p.Logs()) })
	return p, nil
}

// watch drains the producer's events: a delivery report completes its record's delivery, errors
// are logged and "all brokers down" wakes the Process calls waiting for Kafka.
func (s *Sink) watch(p *kafka.Producer) {
	for ev := range p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			if d, ok := e.Opaque.(*delivery); ok {
				d.finish(e.TopicPartition.Error)
			}
			if e.TopicPartition.Error == nil {
				s.down.Up()
				s.errs.Recovered("kafka_topic", s.opts.Topic)
			}
		case kafka.Error:
			s.down.Event(e)
			s.errs.Error(e, "kafka_topic", s.opts.Topic)
		}
	}
}

// Process produces one record and returns once Kafka's delivery report confirmed it. While Kafka
// is unreachable it returns Disconnected at once (the runtime pauses the Danube consumers, so no
// delivery attempt is spent, and repeats the call once Reconnect reached Kafka); the record stays
// queued in the producer, and the repeated call waits for its report rather than producing it again.
func (s *Sink) Process(ctx context.Context, r *runtime.SinkRecord) error {
	id, d, err := s.start(ctx, r)
	if d == nil {
		return err
	}
	if err := s.await(ctx, d); err != nil {
		return err
	}
	s.forget(id, d)
	if d.err != nil {
		return s.classify(r, d.err)
	}
	return nil
}

// ProcessBatch (EXPORT_BATCH_SIZE > 1) produces the records of a batch in their Danube order, which
// the idempotent producer keeps per Kafka partition (so per key), then waits for every delivery
// report. While Kafka is unreachable it returns Disconnected for the whole batch and the runtime
// repeats it after reconnecting: records already delivered or still queued in the producer are
// not produced again.
func (s *Sink) ProcessBatch(ctx context.Context, recs []*runtime.SinkRecord) error {
	ids := make([]string, len(recs))
	ds := make([]*delivery, len(recs))
	errs := make([]error, len(recs))
	for i, r := range recs {
		ids[i], ds[i], errs[i] = s.start(ctx, r)
	}
	for _, d := range ds {
		if d == nil {
			continue
		}
		if err := s.await(ctx, d); err != nil {
			return err // whole batch again; nothing forgotten, so nothing is produced twice
		}
	}
	failed := false
	for i, d := range ds {
		if d == nil {
			failed = failed || errs[i] != nil
			continue
		}
		s.forget(ids[i], d)
		if d.err != nil {
			errs[i], failed = s.classify(recs[i], d.err), true
		}
	}
	if failed {
		return &runtime.BatchError{Errs: errs}
	}
	return nil
}

// start returns the delivery of r, producing r unless a produce of the same Danube message is
// pending already. A nil delivery comes with the outcome: nil for a record the loop guard skips,
// or the produce error.
func (s *Sink) start(ctx context.Context, r *runtime.SinkRecord) (string, *delivery, error) {
	attrs := r.Attributes()
	if headers.FromKafka(attrs, s.opts.Topic) {
		s.skipped.Add(ctx, 1)
		return "", nil, nil // imported from this very Kafka topic: producing it would loop
	}
	id := r.MessageID()
	s.pmu.Lock()
	d, queued := s.pending[id]
	if !queued {
		d = &delivery{done: make(chan struct{})}
		s.pending[id] = d
	}
	s.pmu.Unlock()
	if !queued {
		if err := s.produce(ctx, r, attrs, d); err != nil {
			s.forget(id, d)
			return id, nil, err
		}
	}
	return id, d, nil
}

// await waits for d's delivery report; it returns Disconnected at once while Kafka is down.
func (s *Sink) await(ctx context.Context, d *delivery) error {
	select {
	case <-d.done:
		return nil
	case <-s.down.Lost():
		return runtime.Disconnected(fmt.Errorf("produce to Kafka topic %q: %w", s.opts.Topic, cmp.Or(s.down.Err(), errUnreachable)))
	case <-ctx.Done():
		// Shutdown timeout: the record stays unacked and Danube delivers it again (the producer
		// may still deliver this copy: a duplicate, never a loss).
		return ctx.Err()
	}
}

var errUnreachable = errors.New("kafka unreachable")

// forget drops a delivery whose report was taken (or that was never produced).
func (s *Sink) forget(id string, d *delivery) {
	s.pmu.Lock()
	if s.pending[id] == d {
		delete(s.pending, id)
	}
	s.pmu.Unlock()
}

// produce hands the record to the producer; its report completes d.
func (s *Sink) produce(ctx context.Context, r *runtime.SinkRecord, attrs map[string]string, d *delivery) error {
	rec := headers.FromMessage(r.Message.Key, r.Payload(), attrs, r.Message.PublishTime, s.opts.Origin)
	rec.Headers = traced(r.Context(), rec.Headers)
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &s.opts.Topic, Partition: kafka.PartitionAny},
		Key:            rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp, Opaque: d,
	}
	s.mu.RLock()
	p := s.p
	s.mu.RUnlock()
	for {
		err := p.Produce(msg, nil)
		if err == nil {
			return nil
		}
		var ke kafka.Error
		if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull {
			select { // librdkafka's queue is full: let it drain
			case <-time.After(10 * time.Millisecond):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return s.classify(r, err)
	}
}

// traced replaces the message's trace headers with the sink's span, so that Kafka consumers
// continue the trace from the export.
func traced(ctx context.Context, hs []kafka.Header) []kafka.Header {
	carrier := map[string]string{}
	telemetry.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return hs
	}
	out := hs[:0]
	for _, h := range hs {
		if _, replaced := carrier[h.Key]; !replaced {
			out = append(out, h)
		}
	}
	for k, v := range carrier {
		out = append(out, kafka.Header{Key: k, Value: []byte(v)})
	}
	return out
}

// classify maps a produce or delivery failure to the runtime's classes: the record's own fault
// (too large, invalid) is invalid data for the dead-letter topic; an unreachable or timed-out Kafka
// and a producer in a fatal state are Disconnected (held, reconnected, produced again: no delivery
// attempt spent); a refused authorization stops the export.
func (s *Sink) classify(r *runtime.SinkRecord, err error) error {
	var ke kafka.Error
	if !errors.As(err, &ke) {
		return fmt.Errorf("produce to Kafka topic %q: %w", s.opts.Topic, err)
	}
	err = fmt.Errorf("produce to Kafka topic %q: %w", s.opts.Topic, ke)
	switch ke.Code() {
	case kafka.ErrMsgSizeTooLarge, kafka.ErrInvalidMsgSize, kafka.ErrInvalidMsg, kafka.ErrRecordListTooLarge,
		kafka.ErrInvalidRecord, kafka.ErrInvalidTimestamp, kafka.ErrInvalidArg:
		return runtime.InvalidData(fmt.Errorf("message %s (%d bytes) rejected by Kafka: %w", r.MessageID(), len(r.Payload()), err))
	case kafka.ErrTopicAuthorizationFailed, kafka.ErrClusterAuthorizationFailed:
		return runtime.Fatal(err)
	case kafka.ErrMsgTimedOut, kafka.ErrTimedOut, kafka.ErrTimedOutQueue, kafka.ErrRequestTimedOut, kafka.ErrTransport,
		kafka.ErrAllBrokersDown, kafka.ErrUnknownTopic, kafka.ErrUnknownTopicOrPart, kafka.ErrPurgeQueue, kafka.ErrPurgeInflight:
		return runtime.Disconnected(err)
	}
	if ke.IsFatal() {
		return runtime.Disconnected(err)
	}
	return runtime.Retryable(err)
}

// Reconnect replaces a producer that librdkafka declared failed for good (an idempotent
// producer's fatal error; the records queued in it are produced again by the new one), then
// succeeds once Kafka answers a metadata request: librdkafka reconnects by itself, and the runtime
// repeats the calls that returned Disconnected only when Kafka is back.
func (s *Sink) Reconnect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ferr := s.p.GetFatalError(); ferr != nil {
		old := s.p
		p, err := s.newProducer()
		if err != nil {
			return err
		}
		s.p = p
		s.log.Warn("kafka producer replaced after a fatal error", "kafka_topic", s.opts.Topic, "err", ferr)
		old.Close()
		// Records the failed producer never reported are produced again by the new one.
		s.pmu.Lock()
		for _, d := range s.pending {
			d.finish(kafka.NewError(kafka.ErrPurgeQueue, "the failed producer was replaced", false))
		}
		s.pmu.Unlock()
	}
	return s.down.Check(ctx, s.p.GetMetadata, s.opts.Topic)
}

// HealthCheck reports, without waiting for Kafka, a producer in a fatal state (Disconnected: the
// runtime reconnects), and Kafka unreachable or refusing the credentials, until a delivery or a
// background metadata request gets through, or the topic missing.
func (s *Sink) HealthCheck(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.p == nil {
		return nil
	}
	if err := s.p.GetFatalError(); err != nil {
		return runtime.Disconnected(fmt.Errorf("kafka producer failed: %w", err))
	}
	return s.down.Health()
}

// Shutdown closes the producer. Every Process call has returned by then, so nothing the runtime
// acked is still queued in it.
func (s *Sink) Shutdown(context.Context) error {
	s.down.Close() // before taking mu: a probe in progress holds it
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.Close()
	}
	s.events.Wait()
	return nil
}
