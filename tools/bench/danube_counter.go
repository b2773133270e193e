package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// danubeCounter is a development broker with a reliable topic, counting the messages the broker
// has accepted into it (acked to their producer) until n arrived; done closes then. It reads the
// count from the broker itself, through an idle subscription's backlog, rather than through a
// consumer: a consumer receiving and acking every message would spend the cores the source under
// test needs, and the source's rate would be the consumer's.
type danubeCounter struct {
	broker *devbroker.Broker
	got    atomic.Int64
	first  atomic.Int64 // unix nanoseconds when the first message was seen
	last   atomic.Int64 // and when the n-th was
	done   chan struct{}
	stop   chan struct{}
}

// counterPoll is how often the broker is asked: the error it adds to a span is at most this.
const counterPoll = time.Millisecond

const counterSubscription = "bench-counter"

func newDanubeCounter(ctx context.Context, topic string, n int) (*danubeCounter, error) {
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: 1000})
	if err != nil {
		return nil, err
	}
	dc := &danubeCounter{broker: broker, done: make(chan struct{}), stop: make(chan struct{})}
	if err := dc.createTopic(ctx, topic); err != nil {
		dc.close()
		return nil, err
	}
	go dc.poll(topic, int64(n))
	return dc, nil
}

// createTopic creates the reliable topic and the subscription whose backlog counts its messages.
func (dc *danubeCounter) createTopic(ctx context.Context, topic string) error {
	client, err := danube.NewClient(dc.broker.URL())
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "bench-create", Dispatch: danube.Reliable})
	if err != nil {
		return err
	}
	_ = prod.Close()
	cons, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "bench-counter", Subscription: counterSubscription, Type: danube.Exclusive})
	if err != nil {
		return err
	}
	return cons.Close()
}

func (dc *danubeCounter) poll(topic string, n int64) {
	tick := time.NewTicker(counterPoll)
	defer tick.Stop()
	for {
		select {
		case <-dc.stop:
			return
		case now := <-tick.C:
			st, _ := dc.broker.SubscriptionStats(topic, counterSubscription)
			got := int64(st.Backlog)
			if got == 0 {
				continue
			}
			dc.first.CompareAndSwap(0, now.UnixNano())
			dc.got.Store(got)
			if got >= n {
				dc.last.Store(now.UnixNano())
				close(dc.done)
				return
			}
		}
	}
}

func (dc *danubeCounter) close() {
	select {
	case <-dc.stop:
	default:
		close(dc.stop)
	}
	_ = dc.broker.Close()
}
