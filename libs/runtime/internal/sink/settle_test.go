package sink

import (
	"context"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"log/slog"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
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
func (a *heldAcker) Closed() bool                                                       { return false }

// record is the test's record type: the message and its context.
type record struct {
	msg *danube.Message
	ctx context.Context
}

// recordingRecords writes every record at once, reporting its offset.
type recordingRecords struct{ processed chan uint64 }

func (recordingRecords) Init(ctx context.Context, rec *record, m *danube.Message) {
	*rec = record{msg: m, ctx: ctx}
}

func (r recordingRecords) Process(_ context.Context, recs []*record, errs []error) {
	for i, rec := range recs {
		r.processed <- rec.msg.Offset
		errs[i] = nil
	}
}

func (recordingRecords) Class(error) class.Class { return class.Retryable }

// openGate is a gate with nothing to reconnect.
type openGate struct{}

func (openGate) Run(f func()) uint64                            { f(); return 0 }
func (openGate) OK()                                            {}
func (openGate) Reconnect(context.Context, uint64, error) error { return nil }

type noBusy struct{}

func (noBusy) Enter() func() { return func() {} }

// noValve is the intake of a sink without a broker: nothing to close or reopen.
type noValve struct{}

func (noValve) close()                  {}
func (noValve) reopen(done func(error)) { done(nil) }

// testProcessor is a sink's process and settle stages without a broker: deliveries go straight
// into a batch loop over it.
func testProcessor[R any](work context.Context, recs Records[R], m *telemetry.Metrics) *processor[R] {
	h := &Host{Host: host.Host{Log: slog.New(slog.DiscardHandler), Metrics: m, Danube: &telemetry.Flag{}, Busy: noBusy{}}, Gate: openGate{}}
	p := newProcessor(&Config{Retry: retry.Policy{MaxRetries: 3}}, h, recs)
	p.settle = newSettler(work, h, nil)
	p.holds = newHolds(noValve{}, h.Log, m)
	return p
}

func testRunner(t *testing.T, work context.Context) (*processor[record], recordingRecords) {
	t.Helper()
	recs := recordingRecords{processed: make(chan uint64, 16)}
	return testProcessor[record](work, recs, nil), recs
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
		done <- newBatchLoop(r, in, &Config{BatchSize: 1, BatchTimeout: time.Second}).run(ctx, context.Background())
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
		done <- newBatchLoop(r, in, &Config{BatchSize: 1, BatchTimeout: time.Second}).run(ctx, context.Background())
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

// closedAcker is the consumer of an intake closed for an outage: its acks fail, after release.
type closedAcker struct{ release chan struct{} }

func (a closedAcker) Ack(context.Context, *danube.Message) error {
	<-a.release
	return danube.ErrClosed
}
func (closedAcker) Nack(context.Context, *danube.Message, time.Duration, string) error {
	return danube.ErrClosed
}
func (closedAcker) Closed() bool { return true }

// A record written after its consumer was closed is in the replay filter as soon as its ack is
// queued, before intake reopens: the broker's redelivery to the new consumer may come before the
// failed ack returns, and must be acked, not written again.
func TestWrittenRecordOfClosedConsumerIsRememberedAtOnce(t *testing.T) {
	replay := newReplayFilter(10)
	h := &Host{Host: host.Host{Log: slog.New(slog.DiscardHandler)}}
	s := newSettler(context.Background(), h, replay)
	a := closedAcker{release: make(chan struct{})}
	m := msgAt(3)
	s.ack(delivery{a, m})
	if !replay.take(m) {
		t.Fatal("the redelivery of a record written after its consumer closed would be written again")
	}
	close(a.release)
	s.close()
}

// lateAcker is a consumer that was open when its record's ack was queued, and closed before the
// ack was sent: the ack fails once released.
type lateAcker struct{ release chan struct{} }

func (a lateAcker) Ack(context.Context, *danube.Message) error {
	<-a.release
	return danube.ErrClosed
}
func (lateAcker) Nack(context.Context, *danube.Message, time.Duration, string) error { return nil }
func (lateAcker) Closed() bool                                                       { return false }

// drained returns only once a queued ack was sent; one that failed has put its record in the
// replay filter by then, so intake may reopen without writing the redelivery again.
func TestDrainedWaitsForQueuedAcks(t *testing.T) {
	replay := newReplayFilter(10)
	s := newSettler(context.Background(), &Host{Host: host.Host{Log: slog.New(slog.DiscardHandler)}}, replay)
	defer s.close()
	a := lateAcker{release: make(chan struct{})}
	m := msgAt(5)
	s.ack(delivery{a, m})
	done := make(chan struct{})
	go func() { s.drained(context.Background()); close(done) }()
	select {
	case <-done:
		t.Fatal("drained returned while an ack was still queued")
	case <-time.After(50 * time.Millisecond):
	}
	close(a.release)
	recv(t, done, "drained after the ack failed")
	if !replay.take(m) {
		t.Fatal("the failed ack's record is not in the replay filter once drained returned")
	}
}
