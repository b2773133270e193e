package main

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// fillTopic creates topic and the sink's subscription (consumer name, subscription: a new one
// starts at the tail), then publishes the n messages msg makes with 8 concurrent senders, before
// the sink starts, so that the sink's rate is not the producer's.
func fillTopic(ctx context.Context, url, topic, name, sub string, n int, msg func(i int) danube.ProducerMessage) error {
	client, err := danube.NewClient(url)
	if err != nil {
		return err
	}
	defer client.Close()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "bench-producer", Dispatch: danube.Reliable})
	if err != nil {
		return err
	}
	defer prod.Close()
	pre, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: name, Subscription: sub, Type: danube.Exclusive})
	if err != nil {
		return err
	}
	_ = pre.Close()
	var (
		wg   sync.WaitGroup
		seq  atomic.Int64
		errs = make(chan error, 8)
	)
	for range 8 {
		wg.Go(func() {
			for i := seq.Add(1) - 1; i < int64(n); i = seq.Add(1) - 1 {
				if _, err := prod.Send(ctx, msg(int(i))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
