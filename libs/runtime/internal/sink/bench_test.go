package sink

import (
	"context"
	"fmt"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// BenchmarkSinkOverhead measures the sink stages' own cost per message (batching, records, spans,
// metrics, retry bookkeeping, settling) with a no-op connector and no network: the Danube consumer
// is a no-op acker. End-to-end numbers through the development broker are in libs/runtime's
// bench_test.go.
func BenchmarkSinkOverhead(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			cfg := &Config{BatchSize: size, BatchTimeout: time.Second}
			r := testProcessor[record](context.Background(), nopRecords{}, benchMetrics(b))
			const pool = 4000 // a multiple of every batch size: offsets stay aligned when they wrap
			msgs := make([]*danube.Message, pool)
			for i := range msgs {
				msgs[i] = &danube.Message{Topic: "/default/bench", Offset: uint64(i), Payload: make([]byte, 100),
					Attributes: map[string]string{"a": "b"}}
			}
			in := make(chan delivery, 1024)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			b.ReportAllocs()
			b.ResetTimer()
			go func() { done <- newBatchLoop(r, in, cfg).run(ctx, context.Background()) }()
			for i := range b.N {
				in <- delivery{nopAcker{}, msgs[i%pool]}
			}
			for len(in) > 0 {
				time.Sleep(time.Microsecond)
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			r.settle.close()
		})
	}
}

func benchMetrics(b *testing.B) *telemetry.Metrics {
	srv, err := telemetry.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	m, err := telemetry.NewMetrics(srv.MeterProvider(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return m
}

type nopAcker struct{}

func (nopAcker) Ack(context.Context, *danube.Message) error                         { return nil }
func (nopAcker) Nack(context.Context, *danube.Message, time.Duration, string) error { return nil }
func (nopAcker) Closed() bool                                                       { return false }

// nopRecords writes nothing, at once.
type nopRecords struct{}

func (nopRecords) Init(ctx context.Context, rec *record, m *danube.Message) {
	*rec = record{msg: m, ctx: ctx}
}
func (nopRecords) Process(context.Context, []*record, []error) {}
func (nopRecords) Class(error) class.Class                     { return class.Retryable }
