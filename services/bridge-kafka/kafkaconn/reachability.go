package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Metadata is a Kafka client's GetMetadata.
type Metadata func(topic *string, all bool, timeoutMs int) (*kafka.Metadata, error)

// Reachability is what a client knows of Kafka, for /readyz and for callers waiting for Kafka (a
// delivery report): the outage or the refused authentication librdkafka reported, until Kafka
// answers again, and whether the client's topic exists, which Watch checks in the background. Its
// answers never wait for Kafka, so a readiness probe is answered at once however Kafka is doing.
// Set Brokers before use.
type Reachability struct {
	// Brokers is KAFKA_BOOTSTRAP_SERVERS, for the messages.
	Brokers string

	down  atomic.Pointer[error] // "kafka unreachable" or "authentication failed", until Kafka answers
	topic atomic.Pointer[error] // the last probe's finding about the topic; nil = it exists

	mu   sync.Mutex
	lost chan struct{} // closed while Kafka is down; guarded by mu

	stop chan struct{}
	wg   sync.WaitGroup
}

// Event records what librdkafka's error event e says about Kafka: every broker down, or the
// authentication refused (which librdkafka follows with "all brokers down": the refusal is kept as
// the reason, since waiting does not fix it).
func (r *Reachability) Event(e kafka.Error) {
	switch e.Code() {
	case kafka.ErrAuthentication, kafka.ErrSaslAuthenticationFailed:
		r.markDown(fmt.Errorf("kafka authentication failed: check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD: %w", e))
	case kafka.ErrAllBrokersDown:
		if cur := r.down.Load(); cur != nil && Unauthenticated(*cur) {
			return
		}
		r.markDown(&unreachable{brokers: r.Brokers, err: e})
	}
}

// unreachable is Kafka down. librdkafka's own "all brokers down" text counts the brokers it knows
// oddly (a producer says "0/1 brokers are down"), so the message names the configured brokers.
type unreachable struct {
	brokers string
	err     error
}

func (u *unreachable) Error() string {
	return "kafka unreachable: no answer from the brokers " + u.brokers
}

func (u *unreachable) Unwrap() error { return u.err }

// Unauthenticated reports whether err is Kafka refusing the credentials, which waiting cannot fix.
func Unauthenticated(err error) bool {
	var ke kafka.Error
	if !errors.As(err, &ke) {
		return false
	}
	return ke.Code() == kafka.ErrAuthentication || ke.Code() == kafka.ErrSaslAuthenticationFailed
}

func (r *Reachability) markDown(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down.Store(&err)
	if r.lost == nil {
		r.lost = make(chan struct{})
	}
	select {
	case <-r.lost:
	default:
		close(r.lost)
	}
}

// Up records that Kafka answered (a record, a delivery, a commit). It is cheap while Kafka is up.
func (r *Reachability) Up() {
	if r.down.Load() == nil {
		return
	}
	r.up(nil)
}

// up marks Kafka up, if it is still marked down by was (any error when nil).
func (r *Reachability) up(was *error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.down.Load(); cur == nil || was != nil && cur != was {
		return
	}
	r.down.Store(nil)
	select {
	case <-r.lost:
		r.lost = nil // the next Lost waits for the next outage
	default:
	}
}

// Lost returns a channel that is closed while Kafka is reported down (at once if it is now).
func (r *Reachability) Lost() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost == nil {
		r.lost = make(chan struct{})
	}
	return r.lost
}

// Err returns why Kafka is marked down, else nil.
func (r *Reachability) Err() error {
	if e := r.down.Load(); e != nil {
		return *e
	}
	return nil
}

// Health is the readiness answer, at once: Kafka down or refusing the credentials, else a topic
// the last probe did not find, else nil.
func (r *Reachability) Health() error {
	if err := r.Err(); err != nil {
		return err
	}
	return r.Missing()
}

// Missing returns the last probe's finding that the topic does not exist, else nil.
func (r *Reachability) Missing() error {
	if e := r.topic.Load(); e != nil {
		return *e
	}
	return nil
}

// Check asks Kafka for topic's metadata while Kafka is marked down, bounded by ctx and 2 s: an answer
// marks it up again, else it returns why Kafka is down. It waits for Kafka; Health does not.
func (r *Reachability) Check(ctx context.Context, metadata Metadata, topic string) error {
	down := r.down.Load()
	if down == nil {
		return nil
	}
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if _, err := metadata(&topic, false, int(timeout.Milliseconds())); err != nil {
		return *down
	}
	r.up(down)
	return nil
}

// Probe asks Kafka for topic's metadata once, bounded by timeout, and records the answer: Kafka is
// up, and whether topic exists. A failed request changes nothing (librdkafka's events say why);
// its error is returned.
func (r *Reachability) Probe(metadata Metadata, topic string, timeout time.Duration) error {
	md, err := metadata(&topic, false, int(timeout.Milliseconds()))
	if err != nil {
		return err
	}
	r.Up()
	var missing error
	if tm, ok := md.Topics[topic]; !ok || tm.Error.Code() == kafka.ErrUnknownTopicOrPart || tm.Error.Code() == kafka.ErrUnknownTopic {
		missing = fmt.Errorf("kafka topic %q does not exist", topic)
	}
	if missing == nil {
		r.topic.Store(nil)
	} else {
		r.topic.Store(&missing)
	}
	return nil
}

// Watch probes topic in the background until Close: every second while Health reports a problem,
// every 10 s otherwise, each request bounded by 2 s.
func (r *Reachability) Watch(metadata Metadata, topic string) {
	r.stop = make(chan struct{})
	r.wg.Go(func() {
		for {
			_ = r.Probe(metadata, topic, 2*time.Second)
			every := 10 * time.Second
			if r.Health() != nil {
				every = time.Second
			}
			select {
			case <-r.stop:
				return
			case <-time.After(every):
			}
		}
	})
}

// Close stops Watch and waits for a probe in progress, so that the client can be closed.
func (r *Reachability) Close() {
	if r.stop != nil {
		close(r.stop)
		r.wg.Wait()
		r.stop = nil
	}
}
