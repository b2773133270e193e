package source

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// BenchmarkSourceOverhead measures the source engine's own cost per message (records, spans,
// metrics, watermark, commits) with a no-op connector and no network: the Danube producer is a
// no-op publisher. End-to-end numbers through the development broker are in libs/runtime's
// bench_test.go.
func BenchmarkSourceOverhead(b *testing.B) {
	batch := make([]Record[int], 100)
	for i := range batch {
		batch[i] = Record[int]{Payload: make([]byte, 100), Key: "k", Attributes: map[string]string{"a": "b"}}
	}
	batch[99].HasPos = true
	src := &nopSource{left: b.N, batch: batch, all: make(chan struct{})}
	cfg := &Config{MaxInFlight: 1000, Topic: "/default/bench"}
	r := &sourceRunner[int]{cfg: cfg, conn: src, host: benchHost(b), tracer: telemetry.Tracer(),
		slots: make(chan struct{}, cfg.MaxInFlight), work: context.Background(), senders: map[string]*sender[int]{},
		commitWake: make(chan struct{}, 1)}
	r.addSender(cfg.Topic, nopPublisher{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { done <- r.run(ctx) }()
	<-src.all
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func benchHost(b *testing.B) *Host {
	srv, err := telemetry.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	m, err := telemetry.NewMetrics(srv.MeterProvider(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return &Host{Host: host.Host{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, Danube: &telemetry.Flag{}, Busy: noBusy{}}, Gate: openGate{}}
}

type nopPublisher struct{}

func (nopPublisher) Send(context.Context, danube.ProducerMessage) (uint64, error) { return 0, nil }
func (nopPublisher) Close() error                                                 { return nil }

// nopSource returns batches of 100 records (one position per batch, like one LSN per
// transaction) until total were returned, then blocks. The final record's position is -1, so the
// benchmark knows when everything was committed.
type nopSource struct {
	left  int
	batch []Record[int]
	all   chan struct{}
}

func (s *nopSource) Poll(ctx context.Context) ([]Record[int], error) {
	if s.left <= 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	k := min(s.left, len(s.batch))
	s.left -= k
	if s.left > 0 {
		return s.batch[:k], nil
	}
	out := append([]Record[int](nil), s.batch[:k]...)
	out[k-1].Pos, out[k-1].HasPos = -1, true
	return out, nil
}

func (s *nopSource) Commit(_ context.Context, ps []int) error {
	if ps[len(ps)-1] == -1 {
		close(s.all)
	}
	return nil
}

func (*nopSource) Class(error) class.Class { return class.Retryable }
func (*nopSource) Lag() (int64, bool)      { return 0, false }

// openGate is a gate with nothing to reconnect.
type openGate struct{}

func (openGate) Run(f func()) uint64                            { f(); return 0 }
func (openGate) OK()                                            {}
func (openGate) Reconnect(context.Context, uint64, error) error { return nil }
func (openGate) Interrupt(func())                               {}
func (openGate) OnFatal(func(error))                            {}

type noBusy struct{}

func (noBusy) Enter() func() { return func() {} }
