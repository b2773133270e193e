// Package kafkaexport is the bridge's export: a runtime sink that produces the messages of a Danube
// topic to a Kafka topic with an idempotent producer. A Danube message is acked only after Kafka's
// delivery report confirmed the record (acks=all); a record Kafka refuses for good goes to the
// dead-letter topic; an unreachable Kafka holds the messages and reconnects without spending
// delivery attempts.
package kafkaexport

import (
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
	events sync.WaitGroup
	down   kafkaconn.Reachability // the last "all brokers down", until Kafka answers again
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
	return &Sink{opts: opts, log: res.Logger, skipped: skipped}, nil
}

// Concurrent opts in to the runtime's streaming mode (MAX_IN_FLIGHT concurrent Process calls).
func (s *Sink) Concurrent() bool { return true }

// Initialize creates the producer.
func (s *Sink) Initialize(context.Context) error {
	p, err := s.newProducer()
	if err != nil {
		return runtime.Fatal(err)
	}
	s.p = p
	s.log.Info("kafka export started", "danube_topic", s.opts.Origin, "kafka_topic", s.opts.Topic)
	return nil
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
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	s.events.Go(func() { s.watch(p) })
	return p, nil
}

// watch drains the producer's event channel (delivery reports go to each record's own channel):
// errors are logged and "all brokers down" feeds the health check.
func (s *Sink) watch(p *kafka.Producer) {
	for ev := range p.Events() {
		if e, ok := ev.(kafka.Error); ok {
			if e.Code() == kafka.ErrAllBrokersDown {
				s.down.Down(e)
			}
			s.log.Warn("kafka producer error; librdkafka retries", "kafka_topic", s.opts.Topic, "err", e, "fatal", e.IsFatal())
		}
	}
}

// Process produces one record and returns once Kafka's delivery report confirmed it.
func (s *Sink) Process(ctx context.Context, r *runtime.SinkRecord) error {
	attrs := r.Attributes()
	if headers.FromKafka(attrs, s.opts.Topic) {
		s.skipped.Add(ctx, 1)
		return nil // imported from this very Kafka topic: producing it would loop
	}
	rec := headers.FromMessage(r.Message.Key, r.Payload(), attrs, r.Message.PublishTime, s.opts.Origin)
	rec.Headers = traced(r.Context(), rec.Headers)
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &s.opts.Topic, Partition: kafka.PartitionAny},
		Key:            rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp,
	}
	done := make(chan kafka.Event, 1)
	s.mu.RLock()
	p := s.p
	s.mu.RUnlock()
	for {
		err := p.Produce(msg, done)
		if err == nil {
			break
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
	select {
	case ev := <-done:
		m, ok := ev.(*kafka.Message)
		if !ok {
			return fmt.Errorf("kafka delivery report: unexpected %T %v", ev, ev)
		}
		if m.TopicPartition.Error != nil {
			return s.classify(r, m.TopicPartition.Error)
		}
		s.down.Up()
		return nil
	case <-ctx.Done():
		// Shutdown timeout: the record stays unacked and Danube delivers it again (the producer
		// may still deliver this copy: a duplicate, never a loss).
		return ctx.Err()
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
// producer's fatal error); otherwise librdkafka reconnects by itself and the runtime only waited.
func (s *Sink) Reconnect(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.GetFatalError() == nil {
		return nil
	}
	old := s.p
	p, err := s.newProducer()
	if err != nil {
		return err
	}
	s.p = p
	s.log.Warn("kafka producer replaced after a fatal error", "kafka_topic", s.opts.Topic, "err", old.GetFatalError())
	old.Close()
	return nil
}

// HealthCheck reports a producer in a fatal state (Disconnected: the runtime reconnects) and an
// unreachable Kafka, until a metadata request or a delivery gets through.
func (s *Sink) HealthCheck(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.p.GetFatalError(); err != nil {
		return runtime.Disconnected(fmt.Errorf("kafka producer failed: %w", err))
	}
	return s.down.Check(ctx, s.p.GetMetadata, s.opts.Topic)
}

// Shutdown closes the producer. Every Process call has returned by then, so nothing the runtime
// acked is still queued in it.
func (s *Sink) Shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.Close()
	}
	s.events.Wait()
	return nil
}
