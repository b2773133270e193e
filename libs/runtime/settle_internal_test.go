package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// heldAcker holds every Ack until release is closed, reporting when one starts and ends.
type heldAcker struct {
	started, acked chan uint64
	release        chan struct{}
}

func newHeldAcker() *heldAcker {
	return &heldAcker{started: make(chan uint64, 16), acked: make(chan uint64, 16), release: make(chan struct{})}
}

func (a *heldAcker) Ack(ctx context.Context, m *danube.Message) error {
	a.started <- m.Offset
	select {
	case <-a.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.acked <- m.Offset
	return nil
}

func (a *heldAcker) Nack(context.Context, *danube.Message, time.Duration, string) error { return nil }

type recordingSink struct {
	SinkBase
	processed chan uint64
}

func (s recordingSink) Process(_ context.Context, r *SinkRecord) error {
	s.processed <- r.Message.Offset
	return nil
}

// testProcessor is a sink's process and settle stages without a broker: deliveries go straight
// into a batch loop over it.
func testProcessor(work context.Context, cfg *SinkConfig, conn SinkConnector, e *env) *processor {
	busy := newLiveness(0)
	p := &processor{conn: conn, env: e, busy: busy, tracer: telemetry.Tracer(), policy: disposal{retry: cfg.Retry()}}
	p.gate = newGate(conn, e, busy, cfg.Retry())
	p.settle = newSettler(work, e, nil)
	p.holds = newHolds(noValve{}, e.log, e.metrics)
	return p
}

// noValve is the intake of a sink without a broker: nothing to close or reopen.
type noValve struct{}

func (noValve) close()                  {}
func (noValve) reopen(done func(error)) { done(nil) }

func testRunner(t *testing.T, work context.Context) (*processor, recordingSink) {
	t.Helper()
	cfg := &SinkConfig{BatchSize: 1, BatchTimeout: config.Millis(time.Second)}
	e := &env{log: slog.New(slog.DiscardHandler), danube: &telemetry.Flag{}}
	sink := recordingSink{processed: make(chan uint64, 16)}
	return testProcessor(work, cfg, sink, e), sink
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func msgAt(off uint64) *danube.Message { return &danube.Message{Topic: "/default/t", Offset: off} }

// The next record is processed while the previous record's ack is still on the wire.
func TestSinkProcessesNextWhileAckInFlight(t *testing.T) {
	acker := newHeldAcker()
	r, sink := testRunner(t, context.Background())
	in := make(chan delivery, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- newBatchLoop(r, in, &SinkConfig{BatchSize: 1, BatchTimeout: config.Millis(time.Second)}).run(ctx, context.Background())
	}()

	in <- delivery{acker, msgAt(0)}
	if got := recv(t, sink.processed, "record 0 processed"); got != 0 {
		t.Fatalf("processed %d first, want 0", got)
	}
	if got := recv(t, acker.started, "ack of record 0 started"); got != 0 {
		t.Fatalf("ack of %d started first, want 0", got)
	}
	// Ack 0 is held: with acks sent from the loop, record 1 would wait for it.
	in <- delivery{acker, msgAt(1)}
	if got := recv(t, sink.processed, "record 1 processed while ack 0 is held"); got != 1 {
		t.Fatalf("processed %d, want 1", got)
	}
	close(acker.release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.settle.close()
	if a, b := <-acker.acked, <-acker.acked; a+b != 1 {
		t.Fatalf("acked %d and %d, want 0 and 1", a, b)
	}
}

// A graceful stop returns only after every pending ack was sent.
func TestSinkDrainWaitsForPendingAcks(t *testing.T) {
	acker := newHeldAcker()
	r, sink := testRunner(t, context.Background())
	in := make(chan delivery, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- newBatchLoop(r, in, &SinkConfig{BatchSize: 1, BatchTimeout: config.Millis(time.Second)}).run(ctx, context.Background())
	}()
	in <- delivery{acker, msgAt(7)}
	recv(t, sink.processed, "record processed")
	recv(t, acker.started, "ack started")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { r.settle.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("settler closed while an ack was still held")
	case <-acker.acked:
		t.Fatal("ack completed before release")
	default:
	}
	close(acker.release)
	recv(t, closed, "settler close after release")
	if got := recv(t, acker.acked, "ack"); got != 7 {
		t.Fatalf("acked %d, want 7", got)
	}
}

func TestLivenessFailsOnlyWhileACallIsStuck(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLiveness(time.Minute)
	l.now = func() time.Time { return now }
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("idle: %v", err)
	}
	leave := l.enter()
	now = now.Add(time.Minute)
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	now = now.Add(time.Second)
	want := "a connector call has been running for 1m1s (LIVENESS_TIMEOUT_MS=60000)"
	if err := l.Check(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("stuck: got %v, want %s", err, want)
	}
	leave()
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("after the call: %v", err)
	}
}

func TestPermanentPublishErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.InvalidArgument, "bad"), true},
		{fmt.Errorf("danube: send: %w", status.Error(codes.PermissionDenied, "schema")), true},
		{status.Error(codes.ResourceExhausted, "grpc: trying to send message larger than max (5000000 vs. 4194304)"), true},
		{status.Error(codes.ResourceExhausted, "broker busy"), false},
		{status.Error(codes.Unavailable, "down"), false},
		{fmt.Errorf("wrapped: %w", danube.ErrClosed), false},
		{context.DeadlineExceeded, false},
	} {
		if got := permanent(c.err); got != c.want {
			t.Errorf("permanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestLivenessCountsTheOldestOfOverlappingCalls(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLiveness(time.Minute)
	l.now = func() time.Time { return now }
	leaveOld := l.enter()
	now = now.Add(30 * time.Second)
	leaveNew := l.enter()
	now = now.Add(31 * time.Second)
	want := "a connector call has been running for 1m1s (LIVENESS_TIMEOUT_MS=60000)"
	if err := l.Check(context.Background()); err == nil || err.Error() != want {
		t.Fatalf("oldest stuck: got %v, want %s", err, want)
	}
	leaveOld() // the newer call (31 s) is within the bound
	if err := l.Check(context.Background()); err != nil {
		t.Fatalf("after the oldest left: %v", err)
	}
	leaveNew()
}
