package kafkaconn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Reachability remembers librdkafka's last "all brokers down" until Kafka answers again, so that a
// health check reports an outage the client would otherwise only log, and so that a caller waiting
// for Kafka (a delivery report) learns of the outage at once. The zero value is "up".
type Reachability struct {
	down atomic.Pointer[kafka.Error]

	mu   sync.Mutex
	lost chan struct{} // closed while Kafka is down; guarded by mu
}

// Down records that librdkafka reported every broker down.
func (r *Reachability) Down(err kafka.Error) {
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
func (r *Reachability) up(was *kafka.Error) {
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

// Err returns the "all brokers down" error while Kafka is marked down, else nil.
func (r *Reachability) Err() error {
	if e := r.down.Load(); e != nil {
		return fmt.Errorf("kafka unreachable: %w", *e)
	}
	return nil
}

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
	r.up(down)
	return nil
}
