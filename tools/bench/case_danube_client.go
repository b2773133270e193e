package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func init() { register(danubeClientCase{}) }

// danubeClientCase measures libs/danube alone, with the development broker in the same process.
type danubeClientCase struct{}

func (danubeClientCase) Name() string { return "danube-client" }

func (danubeClientCase) About() string {
	return "The Go client alone, in one process with the in-process development broker (default window of " +
		"10 unacked messages): one producer sends reliable 1 KiB messages one `Send` at a time while one " +
		"Exclusive consumer receives and acks each (`produce → consume + ack`); the rate runs from the " +
		"first send to the last ack. The baseline is the same producer with no consumer (`produce only`): " +
		"the round trip every reliable publish pays, so the ratios show what delivering and acking add on " +
		"top (a non-reliable baseline would not do: the broker may drop non-reliable messages a busy " +
		"consumer cannot take). CPU is the whole process's, client and broker together (getrusage), per " +
		"message; peak RSS is not measured, since it would be the bench command's own."
}

func (danubeClientCase) Run(ctx context.Context, env *Env) (Result, error) {
	n := 20000
	if env.Quick {
		n = 200
	}
	g := Group{Setting: "reliable, window 10"}
	env.Logf("danube-client: %s: %d messages", g.Setting, n)
	for _, consume := range []bool{false, true} {
		row, err := measureClient(ctx, n, consume)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", row.Variant, err)
		}
		g.Rows = append(g.Rows, row)
	}
	return Result{Groups: []Group{g}}, nil
}

// measureClient publishes n messages on a fresh broker with its default window, consuming and acking them when consume.
func measureClient(ctx context.Context, n int, consume bool) (row Row, err error) {
	row = Row{Variant: "produce only", Msgs: n}
	if consume {
		row.Variant = "produce → consume + ack"
	}
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-"})
	if err != nil {
		return row, err
	}
	defer broker.Close()
	client, err := danube.NewClient(broker.URL())
	if err != nil {
		return row, err
	}
	defer client.Close()
	const topic = "/default/bench-client"
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "bench", Dispatch: danube.Reliable})
	if err != nil {
		return row, err
	}
	defer prod.Close()
	acked := make(chan error, 1)
	if consume {
		cons, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "bench", Subscription: "bench", Type: danube.Exclusive})
		if err != nil {
			return row, err
		}
		defer cons.Close()
		go func() { acked <- consumeAck(ctx, cons, n) }()
	} else {
		close(acked)
	}

	payload := bytes.Repeat([]byte("x"), 1024)
	cpu0, start := selfCPU(), time.Now()
	for range n {
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: payload}); err != nil {
			return row, err
		}
	}
	if err := <-acked; err != nil {
		return row, err
	}
	row.Rate = float64(n) / time.Since(start).Seconds()
	row.CPUMicros = float64(selfCPU()-cpu0) / float64(time.Microsecond) / float64(n)
	return row, nil
}

// consumeAck receives and acks n messages, one at a time, within two minutes.
func consumeAck(ctx context.Context, cons *danube.Consumer, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for i := 0; i < n; i++ {
		select {
		case m, ok := <-cons.Messages():
			if !ok {
				return fmt.Errorf("consumer closed after %d of %d messages", i, n)
			}
			if err := cons.Ack(ctx, m); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("received %d of %d messages: %w", i, n, ctx.Err())
		}
	}
	return nil
}
