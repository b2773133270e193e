package kafkaconn

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Reachability remembers librdkafka's last "all brokers down" until Kafka answers again, so that a
// health check reports an outage the client would otherwise only log. The zero value is "up".
type Reachability struct{ down atomic.Pointer[kafka.Error] }

// Down records that librdkafka reported every broker down.
func (r *Reachability) Down(err kafka.Error) { r.down.Store(&err) }

// Up records that Kafka answered (a record, a delivery, a commit).
func (r *Reachability) Up() { r.down.Store(nil) }

// Check reports Kafka unreachable while it is marked down and a metadata request for topic, bounded
// by ctx and 2 s, fails too; an answer marks it up again.
func (r *Reachability) Check(ctx context.Context, metadata func(topic *string, all bool, timeoutMs int) (*kafka.Metadata, error), topic string) error {
	down := r.down.Load()
	if down == nil {
		return nil
	}
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if _, err := metadata(&topic, false, int(timeout.Milliseconds())); err != nil {
		return fmt.Errorf("kafka unreachable: %w", *down)
	}
	r.down.CompareAndSwap(down, nil)
	return nil
}
