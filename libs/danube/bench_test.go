package danube

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

var payload1KiB = make([]byte, 1024)

func reportRate(b *testing.B, n int, d time.Duration) {
	if d > 0 {
		b.ReportMetric(float64(n)/d.Seconds(), "msgs/s")
	}
}

// BenchmarkProduce measures Send of 1 KiB messages, one at a time (Send
// returns after the broker's reply).
func BenchmarkProduce(b *testing.B) {
	for _, tc := range []struct {
		name       string
		dispatch   DispatchStrategy
		partitions int
		parallel   bool
	}{
		{"NonReliable", NonReliable, 0, false},
		{"Reliable", Reliable, 0, false},
		{"Reliable-4partitions-parallel", Reliable, 4, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			br := fastBroker(b, devbroker.Config{})
			c := newTestClient(b, br.URL())
			p := mustProducer(b, c, ProducerOptions{Topic: "/default/bench", Name: "bench", Dispatch: tc.dispatch, Partitions: tc.partitions})
			ctx := testCtx(b)
			b.SetBytes(int64(len(payload1KiB)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if tc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := p.Send(ctx, ProducerMessage{Payload: payload1KiB}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for range b.N {
					if _, err := p.Send(ctx, ProducerMessage{Payload: payload1KiB}); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportRate(b, b.N, time.Since(start))
		})
	}
}

// BenchmarkConsumeAck measures receiving and acking 1 KiB messages from a
// reliable topic (broker window: 10 unacked messages, its default).
func BenchmarkConsumeAck(b *testing.B) {
	br := fastBroker(b, devbroker.Config{})
	c := newTestClient(b, br.URL())
	topic := fmt.Sprintf("/default/bench-consume-%d", b.N)
	p := mustProducer(b, c, ProducerOptions{Topic: topic, Name: "bench", Dispatch: Reliable})
	cons := mustConsumer(b, c, ConsumerOptions{Topic: topic, Name: "bench", Subscription: "bench", Type: Exclusive})
	ctx := testCtx(b)
	for range b.N {
		if _, err := p.Send(ctx, ProducerMessage{Payload: payload1KiB}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(payload1KiB)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m := <-cons.Messages()
		if err := cons.Ack(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N, time.Since(start))
}

// BenchmarkSendInFlight measures Send of 1 KiB messages to one producer on
// one reliable partition, from 1 goroutine (sequential: one round trip per
// message) and from 16 and 64 goroutines (that many Sends in flight). The
// devbroker cases are bound by CPU, as client and broker share the machine;
// the latency-1ms cases answer after 1 ms, like a broker across a network,
// where one round trip per message is the limit that pipelining lifts.
func BenchmarkSendInFlight(b *testing.B) {
	for _, tc := range []struct {
		broker   string
		inFlight int
	}{
		{"devbroker", 1}, {"devbroker", 16}, {"devbroker", 64},
		{"latency-1ms", 1}, {"latency-1ms", 16}, {"latency-1ms", 64},
	} {
		name := fmt.Sprintf("%s/inflight-%d", tc.broker, tc.inFlight)
		if tc.inFlight == 1 {
			name = tc.broker + "/sequential"
		}
		inFlight := tc.inFlight
		b.Run(name, func(b *testing.B) {
			var url string
			if tc.broker == "devbroker" {
				url = fastBroker(b, devbroker.Config{}).URL()
			} else {
				fake := &scriptedProducerBroker{send: func(context.Context, *danubepb.StreamMessage) error {
					time.Sleep(time.Millisecond)
					return nil
				}}
				url = fake.start(b)
			}
			c := newTestClient(b, url)
			p := mustProducer(b, c, ProducerOptions{Topic: "/default/bench-inflight", Name: "bench"})
			ctx := testCtx(b)
			b.SetBytes(int64(len(payload1KiB)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var (
				next atomic.Int64
				wg   sync.WaitGroup
			)
			for range inFlight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := p.Send(ctx, ProducerMessage{Payload: payload1KiB}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			reportRate(b, b.N, time.Since(start))
		})
	}
}
