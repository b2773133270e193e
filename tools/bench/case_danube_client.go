package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func init() { register(&danubeClientCase{}) }

// danubeClientCase measures libs/danube alone: the ceiling of every connector's Danube side.
type danubeClientCase struct {
	url string // an external broker instead of the in-process development broker
}

func (*danubeClientCase) Name() string { return "danube-client" }

func (c *danubeClientCase) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "danube-client-url", "", "measure the danube-client case against this broker (e.g. a real one, with dispatch.max_unacked_messages 1000 or more) instead of an in-process development broker")
}

func (*danubeClientCase) About() string {
	return "The Go client alone, 1 KiB reliable messages. **window 10**: one producer `Send`s one message at " +
		"a time while one Exclusive consumer receives and acks each (`produce → consume + ack`, default " +
		"window of 10 unacked messages); the baseline is the same producer with no consumer (`produce only`), " +
		"the round trip every reliable publish pays. **pipelined**: what the runtime does: 64 `Send`s in " +
		"flight (as a source with MAX_IN_FLIGHT=64), alone (the baseline) and while a consumer receives " +
		"and acks each message with 64 acks in flight (as a sink), window 1000. These rates are the " +
		"ceiling of any source or sink on the same broker: each message costs one unary `SendMessage`, " +
		"or one streamed delivery and one unary `Ack` (the v0.15 protocol has no batch publish and no " +
		"batch ack). Unless `-danube-client-url` names an external broker, the development broker runs " +
		"in the same process, and CPU (getrusage, per message) is client and broker together; with an " +
		"external broker it is the client's alone. Peak RSS is not measured (it would be the bench " +
		"command's own)."
}

func (c *danubeClientCase) Run(ctx context.Context, env *Env) (Result, error) {
	n := 20000
	if env.Quick {
		n = 200
	}
	groups := []Group{{Setting: "window 10, one at a time"}, {Setting: "pipelined, 64 in flight"}}
	for i, inFlight := range []int{1, benchInFlight} {
		g := &groups[i]
		for _, consume := range []bool{false, true} {
			variant := "produce only"
			if consume {
				variant = "produce → consume + ack"
			}
			env.Logf("danube-client: %s: %s: %d messages", g.Setting, variant, n)
			row, err := c.measure(ctx, n, inFlight, consume)
			if err != nil {
				return Result{}, fmt.Errorf("%s: %s: %w", g.Setting, variant, err)
			}
			row.Variant = variant
			g.Rows = append(g.Rows, row)
		}
	}
	return Result{Groups: groups}, nil
}

// benchInFlight is how many sends and acks the pipelined setting keeps in flight.
const benchInFlight = 64

var payload1KiB = bytes.Repeat([]byte("x"), 1024)

// measure sends n messages on a new topic from inFlight goroutines and, when consume, receives and
// acks them with inFlight acks in flight at once: a consumer that keeps up, since a v0.15.1 broker
// loses messages from a subscription left far behind (TestFallingBehindLosesNothing). The rate
// runs from the first send to the last ack.
func (c *danubeClientCase) measure(ctx context.Context, n, inFlight int, consume bool) (Row, error) {
	url := c.url
	if url == "" {
		window := 1000
		if inFlight == 1 {
			window = 0 // the real broker's default, 10
		}
		b, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: window})
		if err != nil {
			return Row{}, err
		}
		defer b.Close()
		url = b.URL()
	}
	client, err := danube.NewClient(url)
	if err != nil {
		return Row{}, err
	}
	defer client.Close()
	topic := fmt.Sprintf("/default/bench-client-%d", time.Now().UnixNano()) // an external broker keeps its topics
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "bench", Dispatch: danube.Reliable})
	if err != nil {
		return Row{}, err
	}
	defer prod.Close()
	acked := make(chan error, 1)
	var cons *danube.Consumer
	if consume {
		if cons, err = client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "bench", Subscription: "bench", Type: danube.Exclusive}); err != nil {
			return Row{}, err
		}
		defer cons.Close()
	}

	cpu0, start := selfCPU(), time.Now()
	if consume {
		go func() { acked <- consumeAck(ctx, cons, n, inFlight) }()
	} else {
		close(acked)
	}
	if err := send(ctx, prod, n, inFlight); err != nil {
		return Row{}, err
	}
	if err := <-acked; err != nil {
		return Row{}, err
	}
	return Row{Msgs: n, Rate: float64(n) / time.Since(start).Seconds(),
		CPUMicros: float64(selfCPU()-cpu0) / float64(time.Microsecond) / float64(n)}, nil
}

// send sends n messages from inFlight goroutines.
func send(ctx context.Context, prod *danube.Producer, n, inFlight int) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, inFlight)
	)
	for range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: payload1KiB}); err != nil {
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

// consumeAck receives n messages and acks them from acks goroutines, within two minutes.
func consumeAck(ctx context.Context, cons *danube.Consumer, n, acks int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var (
		wg     sync.WaitGroup
		toAck  = make(chan *danube.Message, acks)
		ackErr atomic.Pointer[error]
	)
	for range acks {
		wg.Go(func() {
			for m := range toAck {
				if err := cons.Ack(ctx, m); err != nil {
					ackErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	finish := func(err error) error {
		close(toAck)
		wg.Wait()
		if p := ackErr.Load(); err == nil && p != nil {
			err = *p
		}
		return err
	}
	for i := 0; i < n; i++ {
		select {
		case m, ok := <-cons.Messages():
			if !ok {
				return finish(fmt.Errorf("consumer closed after %d of %d messages", i, n))
			}
			toAck <- m
		case <-ctx.Done():
			return finish(fmt.Errorf("received %d of %d messages: %w", i, n, ctx.Err()))
		}
	}
	return finish(nil)
}
