package runtime

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// BenchmarkSourceOverhead measures the source runtime's own cost per message (records, spans,
// metrics, watermark) with a no-op connector and no network: the Danube producer is a no-op
// publisher (the sink's is BenchmarkSinkOverhead in internal/sink). End-to-end numbers through the development
// broker are in bench_test.go.

func benchEnv(b *testing.B) *env {
	srv, err := telemetry.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	m, err := telemetry.NewMetrics(srv.MeterProvider(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	return &env{log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: m, danube: &telemetry.Flag{}}
}

type nopPublisher struct{}

func (nopPublisher) Send(context.Context, danube.ProducerMessage) (uint64, error) { return 0, nil }
func (nopPublisher) Close() error                                                 { return nil }

// nopSource returns batches of 100 records (one position per batch, like one LSN per
// transaction) until total were returned, then blocks. The final record's position is -1, so the
// benchmark knows when everything was committed.
type nopSource struct {
	SourceBase
	left  int
	batch []SourceRecord[int]
	all   chan struct{}
}

func (s *nopSource) Poll(ctx context.Context) ([]SourceRecord[int], error) {
	if s.left <= 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	k := min(s.left, len(s.batch))
	s.left -= k
	if s.left > 0 {
		return s.batch[:k], nil
	}
	out := append([]SourceRecord[int](nil), s.batch[:k]...)
	out[k-1] = out[k-1].WithPosition(-1)
	return out, nil
}

func (s *nopSource) Commit(_ context.Context, ps []int) error {
	if ps[len(ps)-1] == -1 {
		close(s.all)
	}
	return nil
}

func BenchmarkSourceOverhead(b *testing.B) {
	batch := make([]SourceRecord[int], 100)
	for i := range batch {
		batch[i] = SourceRecord[int]{Payload: make([]byte, 100), Key: "k", Attributes: map[string]string{"a": "b"}}
	}
	batch[99] = batch[99].WithPosition(0)
	src := &nopSource{left: b.N, batch: batch, all: make(chan struct{})}
	cfg := &SourceConfig{MaxInFlight: 1000, Topic: "/default/bench"}
	e := benchEnv(b)
	r := &sourceRunner[int]{cfg: cfg, conn: src, env: e, policy: cfg.Retry(),
		tracer: telemetry.Tracer(), slots: make(chan struct{}, cfg.MaxInFlight), work: context.Background(),
		senders: map[string]*sender[int]{}, commitWake: make(chan struct{}, 1), busy: newLiveness(0)}
	r.gate = newGate(src, e, r.busy, r.policy)
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
