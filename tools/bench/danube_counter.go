package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// danubeCounter is a development broker with topic and a consumer counting (and acking) the n
// arrivals a source case waits for; done closes at the n-th.
type danubeCounter struct {
	broker *devbroker.Broker
	client *danube.Client
	cons   *danube.Consumer
	got    atomic.Int64
	first  atomic.Int64 // unix nanoseconds of the first arrival
	last   atomic.Int64 // and of the last
	done   chan struct{}
}

func newDanubeCounter(ctx context.Context, topic string, n int) (*danubeCounter, error) {
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: 1000})
	if err != nil {
		return nil, err
	}
	dc := &danubeCounter{broker: broker, done: make(chan struct{})}
	if dc.client, err = danube.NewClient(broker.URL()); err != nil {
		dc.close()
		return nil, err
	}
	prod, err := dc.client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "bench-create", Dispatch: danube.Reliable})
	if err != nil {
		dc.close()
		return nil, err
	}
	_ = prod.Close()
	if dc.cons, err = dc.client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "bench-reader", Subscription: "bench-reader", Type: danube.Exclusive}); err != nil {
		dc.close()
		return nil, err
	}
	go func() {
		for m := range dc.cons.Messages() {
			now := time.Now().UnixNano()
			dc.first.CompareAndSwap(0, now)
			dc.last.Store(now)
			_ = dc.cons.Ack(ctx, m)
			if dc.got.Add(1) == int64(n) {
				close(dc.done)
			}
		}
	}()
	return dc, nil
}

func (dc *danubeCounter) close() {
	if dc.cons != nil {
		_ = dc.cons.Close()
	}
	if dc.client != nil {
		_ = dc.client.Close()
	}
	_ = dc.broker.Close()
}
