package runtime_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

type countingSink struct {
	runtime.SinkBase
	n    atomic.Int64
	want int64
	all  chan struct{}
}

func (c *countingSink) Process(context.Context, *runtime.SinkRecord) error {
	if c.n.Add(1) == c.want {
		close(c.all)
	}
	return nil
}

// BenchmarkEndToEndSink: a reliable producer publishes b.N 100-byte messages through the
// development broker (default window of 10 unacked) to a no-op sink that acks each.
func BenchmarkEndToEndSink(b *testing.B) {
	br := runtimetest.StartBroker(b)
	runtimetest.CreateTopic(b, br, "/default/e2e")
	cfg := runtimetest.SinkConfig(br, "e2e", "/default/e2e")
	sink := &countingSink{want: int64(b.N), all: make(chan struct{})}
	r := runtimetest.StartSink(b, cfg, sink)
	ctx := context.Background()
	p, err := runtimetest.Client(b, br).NewProducer(ctx, danube.ProducerOptions{Topic: "/default/e2e", Name: "bench", Dispatch: danube.Reliable})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	payload := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		for range b.N {
			if _, err := p.Send(ctx, danube.ProducerMessage{Payload: payload}); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	<-sink.all
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	if err := r.Stop(); err != nil {
		b.Fatal(err)
	}
}

// genSource emits n records, 100 per Poll, and reports when the last position was committed.
type genSource struct {
	runtime.SourceBase
	left int
	all  chan struct{}
}

func (g *genSource) Poll(ctx context.Context) ([]runtime.SourceRecord[int], error) {
	if g.left <= 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	k := min(g.left, 100)
	recs := make([]runtime.SourceRecord[int], k)
	for i := range recs {
		recs[i] = runtime.SourceRecord[int]{Payload: make([]byte, 100)}
	}
	g.left -= k
	recs[k-1] = recs[k-1].WithPosition(g.left)
	return recs, nil
}

func (g *genSource) Commit(_ context.Context, ps []int) error {
	if ps[len(ps)-1] == 0 {
		close(g.all)
	}
	return nil
}

// BenchmarkEndToEndSource: a no-op source publishes b.N 100-byte records to the development broker
// (one reliable producer, Send waits for the broker's reply) until all are committed.
func BenchmarkEndToEndSource(b *testing.B) {
	br := runtimetest.StartBroker(b)
	cfg := runtimetest.SourceConfig(br, "e2e-src", "/default/e2e-src")
	cfg.MaxInFlight = 1000
	src := &genSource{left: b.N, all: make(chan struct{})}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	r := runtimetest.StartSource(b, cfg, src, false)
	<-src.all
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	if err := r.Stop(); err != nil {
		b.Fatal(err)
	}
}
