package danube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

const sendMethod = "/danube.ProducerService/SendMessage"

// barrier opens once want goroutines have arrived.
type barrier struct {
	mu   sync.Mutex
	n    int
	want int
	open chan struct{}
}

func newBarrier(want int) *barrier { return &barrier{want: want, open: make(chan struct{})} }

// wait blocks until the barrier opens; the bound only turns a hang into a
// failure.
func (b *barrier) wait(t *testing.T) {
	t.Helper()
	select {
	case <-b.open:
	case <-time.After(10 * time.Second):
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Fatalf("only %d of %d calls in flight together", b.n, b.want)
	}
}

func (b *barrier) arrive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.n == b.want {
		close(b.open)
	}
}

// scriptedProducerBroker serves producers only; send decides each
// SendMessage. It hands out producer ids 1, 2, … in CreateProducer order, so
// a test can tell which registration a send used.
type scriptedProducerBroker struct {
	danubepb.UnimplementedDiscoveryServer
	danubepb.UnimplementedProducerServiceServer
	danubepb.UnimplementedHealthCheckServer

	send func(ctx context.Context, m *danubepb.StreamMessage) error

	mu      sync.Mutex
	creates int
	reqIDs  map[uint64]int // request id -> times seen, over every rpc
}

func (s *scriptedProducerBroker) seen(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqIDs[id]++
}

func (s *scriptedProducerBroker) TopicLookup(context.Context, *danubepb.TopicLookupRequest) (*danubepb.TopicLookupResponse, error) {
	return nil, status.Error(codes.NotFound, "Unable to find the requested topic")
}

func (s *scriptedProducerBroker) CreateProducer(_ context.Context, r *danubepb.ProducerRequest) (*danubepb.ProducerResponse, error) {
	s.seen(r.GetRequestId())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates++
	return &danubepb.ProducerResponse{RequestId: r.GetRequestId(), ProducerId: uint64(s.creates), ProducerName: r.GetProducerName()}, nil
}

func (s *scriptedProducerBroker) SendMessage(ctx context.Context, m *danubepb.StreamMessage) (*danubepb.MessageResponse, error) {
	s.seen(m.GetRequestId())
	if err := s.send(ctx, m); err != nil {
		return nil, err
	}
	return &danubepb.MessageResponse{RequestId: m.GetRequestId()}, nil
}

func (s *scriptedProducerBroker) HealthCheck(context.Context, *danubepb.HealthCheckRequest) (*danubepb.HealthCheckResponse, error) {
	return &danubepb.HealthCheckResponse{Status: danubepb.HealthCheckResponse_OK}, nil
}

// start serves s on a local port until the test ends and returns its URL.
func (s *scriptedProducerBroker) start(t testing.TB) string {
	t.Helper()
	s.reqIDs = map[uint64]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	danubepb.RegisterDiscoveryServer(srv, s)
	danubepb.RegisterProducerServiceServer(srv, s)
	danubepb.RegisterHealthCheckServer(srv, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// sendAll runs writers goroutines, each sending perWriter messages "w<w>-<i>"
// in order (waiting for gate, if set, before the second half), and returns
// every Send's error and request id.
func sendAll(ctx context.Context, p *Producer, writers, perWriter int, gate <-chan struct{}) ([]error, []uint64) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		ids  []uint64
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if gate != nil && i == perWriter/2 {
					<-gate
				}
				id, err := p.Send(ctx, ProducerMessage{Payload: fmt.Appendf(nil, "w%d-%d", w, i)})
				mu.Lock()
				errs = append(errs, err)
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs, ids
}

func checkSends(t *testing.T, errs []error, ids []uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if seen[ids[i]] {
			t.Fatalf("request id %d returned twice", ids[i])
		}
		seen[ids[i]] = true
	}
}

// consumeAll receives and acks until every payload of sendAll(writers,
// perWriter) has arrived, and returns how often each arrived and the offsets
// in arrival order.
func consumeAll(t *testing.T, cons *Consumer, writers, perWriter int) (map[string]int, []uint64) {
	t.Helper()
	got := map[string]int{}
	var offsets []uint64
	for len(got) < writers*perWriter {
		m := receive(t, cons)
		got[string(m.Payload)]++
		offsets = append(offsets, m.Offset)
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatalf("Ack offset %d: %v", m.Offset, err)
		}
	}
	for w := range writers {
		for i := range perWriter {
			if k := fmt.Sprintf("w%d-%d", w, i); got[k] == 0 {
				t.Errorf("%s never arrived", k)
			}
		}
	}
	return got, offsets
}

// checkExactlyOnce asserts each payload arrived once, at offsets 0..n-1.
func checkExactlyOnce(t *testing.T, got map[string]int, offsets []uint64) {
	t.Helper()
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s arrived %d times, want once", k, n)
		}
	}
	at := map[uint64]bool{}
	for _, o := range offsets {
		if at[o] || o >= uint64(len(offsets)) {
			t.Fatalf("offset %d repeated or beyond the %d messages: offsets %v", o, len(offsets), offsets)
		}
		at[o] = true
	}
}

func TestConcurrentSendsOnOnePartition(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	const topic = "/default/pipelined"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	const writers, perWriter = 16, 40
	var (
		errs []error
		ids  []uint64
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		errs, ids = sendAll(testCtx(t), p, writers, perWriter, nil)
	}()
	got, offsets := consumeAll(t, cons, writers, perWriter)
	<-done
	checkSends(t, errs, ids)
	checkExactlyOnce(t, got, offsets)
	expectNone(t, cons, 50*time.Millisecond)
}

// TestSendPipelinesOnOnePartition proves that concurrent Sends are in
// flight together (the broker holds every one until all have arrived), and
// that when they all fail on one registration a single Send recreates the
// producer while the others wait and then resend with the new id.
func TestSendPipelinesOnOnePartition(t *testing.T) {
	const inFlight = 16
	bar := newBarrier(inFlight)
	var (
		mu       sync.Mutex
		accepted = map[string]int{}
	)
	fake := &scriptedProducerBroker{send: func(ctx context.Context, m *danubepb.StreamMessage) error {
		if m.GetMsgId().GetProducerId() == 1 {
			bar.arrive()
			select {
			case <-bar.open:
			case <-ctx.Done():
				return ctx.Err()
			}
			return status.Errorf(codes.NotFound, "The producer with id %d does not exist", 1)
		}
		mu.Lock()
		defer mu.Unlock()
		accepted[string(m.GetPayload())]++
		return nil
	}}
	ev := newEvents()
	c := newTestClient(t, fake.start(t), WithHooks(ev.hooks()))
	p := mustProducer(t, c, ProducerOptions{Topic: "/default/scripted", Name: "prod"})
	errs, ids := sendAll(testCtx(t), p, inFlight, 1, nil)
	checkSends(t, errs, ids)

	fake.mu.Lock()
	creates := fake.creates
	for id, n := range fake.reqIDs {
		if n != 1 {
			t.Errorf("request id %d sent %d times, want once", id, n)
		}
	}
	fake.mu.Unlock()
	if creates != 2 {
		t.Errorf("CreateProducer calls = %d, want 2 (NewProducer and one recreation shared by %d Sends)", creates, inFlight)
	}
	mu.Lock()
	if len(accepted) != inFlight {
		t.Errorf("accepted %d distinct messages with the new producer id, want %d", len(accepted), inFlight)
	}
	for k, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", k, n)
		}
	}
	mu.Unlock()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.reconnects) != 1 || ev.reconnects[0] != (ReconnectEvent{Topic: "/default/scripted", Kind: "producer", Reason: "NotFound"}) {
		t.Errorf("reconnects = %+v, want one producer recreation for NotFound", ev.reconnects)
	}
}

func TestCloseAbortsAndWaitsForInflightSends(t *testing.T) {
	const inFlight = 8
	bar := newBarrier(inFlight)
	fake := &scriptedProducerBroker{send: func(ctx context.Context, _ *danubepb.StreamMessage) error {
		bar.arrive()
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}}
	ev := newEvents()
	c := newTestClient(t, fake.start(t), WithHooks(ev.hooks()))
	p, err := c.NewProducer(testCtx(t), ProducerOptions{Topic: "/default/closing-inflight", Name: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, inFlight)
	for range inFlight {
		go func() {
			_, err := p.Send(testCtx(t), ProducerMessage{Payload: []byte("x")})
			results <- err
		}()
	}
	bar.wait(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// The send hook runs inside Send, so Close having waited for every Send
	// means every event is already recorded.
	ev.mu.Lock()
	sends := len(ev.sends)
	ev.mu.Unlock()
	if sends != inFlight {
		t.Errorf("Close returned with %d of %d Sends finished", sends, inFlight)
	}
	if n := c.healthLoops.Load(); n != 0 {
		t.Errorf("health loops after Close = %d, want 0", n)
	}
	for range inFlight {
		if err := <-results; !errors.Is(err, ErrClosed) {
			t.Errorf("in-flight Send after Close = %v, want ErrClosed", err)
		}
	}
}

// TestConcurrentSendsAcrossFaults keeps many Sends in flight on one producer
// while the broker fails them, closes the producer or restarts; every
// message must arrive.
func TestConcurrentSendsAcrossFaults(t *testing.T) {
	const writers, perWriter = 8, 30
	for _, tc := range []struct {
		name string
		// fault runs while the writers send; the second half of every
		// writer's messages waits for it to return.
		fault func(t *testing.T, b *devbroker.Broker, p *Producer, ev *events)
		// exactlyOnce holds when no failure can leave a stored message
		// unacknowledged to the client.
		exactlyOnce bool
		// maxRecreations bounds the producer recreations: one per failed
		// send at most, however many Sends saw the failure.
		maxRecreations int
	}{
		{"FailNext-Unavailable", func(_ *testing.T, b *devbroker.Broker, _ *Producer, _ *events) {
			b.FailNext(sendMethod, writers, codes.Unavailable)
		}, true, writers},
		{"FailNext-NotFound", func(_ *testing.T, b *devbroker.Broker, _ *Producer, _ *events) {
			b.FailNext(sendMethod, writers, codes.NotFound)
		}, true, writers},
		{"FailNext-PermissionDenied", func(_ *testing.T, b *devbroker.Broker, _ *Producer, _ *events) {
			b.FailNext(sendMethod, 1, codes.PermissionDenied)
		}, true, 1},
		{"ForceClose", func(t *testing.T, b *devbroker.Broker, p *Producer, _ *events) {
			s := p.parts[0].current()
			b.ForceClose(s.id)
			eventually(t, "producer marked for recreation", s.isDead)
		}, true, 1},
		{"Restart", func(t *testing.T, b *devbroker.Broker, _ *Producer, _ *events) {
			if err := b.Restart(); err != nil {
				t.Errorf("Restart: %v", err)
			}
		}, false, writers * perWriter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fastBroker(t, devbroker.Config{DataDir: t.TempDir()})
			ev := newEvents()
			// A budget that outlasts a restart (about 50 × 10 ms).
			c := newTestClient(t, b.URL(), WithHooks(ev.hooks()), WithMaxRetries(50))
			const topic = "/default/faulty"
			p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
			cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})

			gate := make(chan struct{})
			var (
				errs []error
				ids  []uint64
				done = make(chan struct{})
			)
			go func() {
				defer close(done)
				errs, ids = sendAll(testCtx(t), p, writers, perWriter, gate)
			}()
			// Fault once the first writes are through, while others are in flight.
			ev.waitFor(t, "first sends", func(e *events) bool { return len(e.sends) >= writers })
			tc.fault(t, b, p, ev)
			close(gate)
			got, offsets := consumeAll(t, cons, writers, perWriter)
			<-done
			checkSends(t, errs, ids)
			if tc.exactlyOnce {
				checkExactlyOnce(t, got, offsets)
			}
			ev.mu.Lock()
			defer ev.mu.Unlock()
			if n := ev.reconnected("producer"); n < 1 || n > tc.maxRecreations {
				t.Errorf("producer recreations = %d, want 1..%d", n, tc.maxRecreations)
			}
		})
	}
}

// TestSequentialSenderKeepsOrder sends from one goroutine while others send
// concurrently to the same partition and faults force resends: the
// sequential goroutine's messages stay in its call order.
func TestSequentialSenderKeepsOrder(t *testing.T) {
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	const topic = "/default/sequential"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	const noise, perNoise, seq = 8, 20, 60
	ctx := testCtx(t)
	results := make(chan error, 2)
	go func() {
		errs, _ := sendAll(ctx, p, noise, perNoise, nil)
		results <- errors.Join(errs...)
	}()
	go func() {
		for i := range seq {
			switch i {
			case seq / 3:
				b.FailNext(sendMethod, 3, codes.NotFound)
			case 2 * seq / 3:
				b.FailNext(sendMethod, 3, codes.Unavailable)
			}
			if _, err := p.Send(ctx, ProducerMessage{Payload: fmt.Appendf(nil, "seq-%d", i)}); err != nil {
				results <- err
				return
			}
		}
		results <- nil
	}()
	next := 0
	for range noise*perNoise + seq {
		m := receive(t, cons)
		var i int
		if _, err := fmt.Sscanf(string(m.Payload), "seq-%d", &i); err == nil {
			if i != next {
				t.Fatalf("sequential message %d arrived at offset %d, want %d next", i, m.Offset, next)
			}
			next++
		}
		if err := cons.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if next != seq {
		t.Fatalf("received %d sequential messages, want %d", next, seq)
	}
}

func TestZeroValueDispatchIsReliable(t *testing.T) {
	if got, ok := DispatchStrategy(0).wire(); got != danubepb.DispatchStrategy_Reliable || !ok {
		t.Errorf("zero DispatchStrategy maps to %v, %v; want Reliable", got, ok)
	}
	if got, ok := NonReliable.wire(); got != danubepb.DispatchStrategy_NonReliable || !ok {
		t.Errorf("NonReliable maps to %v, %v", got, ok)
	}
	if Reliable.String() != "Reliable" || NonReliable.String() != "NonReliable" || DispatchStrategy(7).String() != "DispatchStrategy(7)" {
		t.Errorf("String() = %s, %s, %s", Reliable, NonReliable, DispatchStrategy(7))
	}
	b := fastBroker(t, devbroker.Config{})
	c := newTestClient(t, b.URL())
	if _, err := c.NewProducer(testCtx(t), ProducerOptions{Topic: "/default/x", Name: "p", Dispatch: 7}); err == nil ||
		err.Error() != "danube: ProducerOptions.Dispatch = 7, want Reliable or NonReliable" {
		t.Errorf("NewProducer with Dispatch 7 = %v", err)
	}
	const topic = "/default/zero-dispatch"
	p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
	// The topic took the zero value's strategy: a NonReliable producer is refused.
	if _, err := c.NewProducer(testCtx(t), ProducerOptions{Topic: topic, Name: "nonrel", Dispatch: NonReliable}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("NonReliable producer on the topic = %v, want FailedPrecondition", err)
	}
	cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Exclusive})
	mustSend(t, p, ProducerMessage{Payload: []byte("a")})
	m := receive(t, cons)
	if err := cons.Nack(testCtx(t), m, 0, "again"); err != nil {
		t.Fatal(err)
	}
	// Only a reliable topic redelivers.
	if again := receive(t, cons); string(again.Payload) != "a" || again.Offset != m.Offset {
		t.Fatalf("redelivery = %q offset %d", again.Payload, again.Offset)
	}
}

// Request ids are unique and increase in the order Sends draw them, although
// concurrent Sends may reach the broker in another order.
func TestRequestIDsIncreasePerProducer(t *testing.T) {
	var last uint64
	fake := &scriptedProducerBroker{send: func(context.Context, *danubepb.StreamMessage) error { return nil }}
	c := newTestClient(t, fake.start(t))
	p := mustProducer(t, c, ProducerOptions{Topic: "/default/ids", Name: "prod"})
	for range 5 {
		id := mustSend(t, p, ProducerMessage{Payload: []byte("x")})
		if id <= last {
			t.Fatalf("request id %d after %d", id, last)
		}
		last = id
	}
	errs, ids := sendAll(testCtx(t), p, 8, 10, nil)
	checkSends(t, errs, ids)
	for _, id := range ids {
		if id <= last {
			t.Errorf("concurrent Send got request id %d, not above the earlier %d", id, last)
		}
	}
}
