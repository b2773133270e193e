package danube

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// closingBroker answers the health check with CLOSE for the first consumer
// id while keeping its stream open and silent: the state of a real broker
// that unloaded a subscription whose consumer has nothing to receive. The
// development broker always ends the stream as well, so this scripted
// server is the only way to prove the client reacts to CLOSE on an idle
// stream.
type closingBroker struct {
	danubepb.UnimplementedDiscoveryServer
	danubepb.UnimplementedConsumerServiceServer
	danubepb.UnimplementedHealthCheckServer

	mu         sync.Mutex
	subscribes int
	open       map[uint64]bool // consumer ids with an attached stream
	streamEnds chan uint64
}

func (s *closingBroker) streaming(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[id]
}

func (s *closingBroker) TopicLookup(context.Context, *danubepb.TopicLookupRequest) (*danubepb.TopicLookupResponse, error) {
	return nil, status.Error(codes.NotFound, "Unable to find the requested topic")
}

func (s *closingBroker) TopicPartitions(_ context.Context, r *danubepb.TopicLookupRequest) (*danubepb.TopicPartitionsResponse, error) {
	return &danubepb.TopicPartitionsResponse{RequestId: r.GetRequestId(), Partitions: []string{r.GetTopic()}}, nil
}

func (s *closingBroker) Subscribe(_ context.Context, r *danubepb.ConsumerRequest) (*danubepb.ConsumerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribes++
	return &danubepb.ConsumerResponse{RequestId: r.GetRequestId(), ConsumerId: uint64(s.subscribes), ConsumerName: r.GetConsumerName()}, nil
}

func (s *closingBroker) ReceiveMessages(r *danubepb.ReceiveRequest, stream grpc.ServerStreamingServer[danubepb.StreamMessage]) error {
	s.mu.Lock()
	s.open[r.GetConsumerId()] = true
	s.mu.Unlock()
	<-stream.Context().Done()
	s.streamEnds <- r.GetConsumerId()
	return nil
}

func (s *closingBroker) HealthCheck(_ context.Context, r *danubepb.HealthCheckRequest) (*danubepb.HealthCheckResponse, error) {
	// CLOSE only once consumer 1's stream is attached (and idle).
	if r.GetId() == 1 && s.streaming(1) {
		return &danubepb.HealthCheckResponse{Status: danubepb.HealthCheckResponse_CLOSE}, nil
	}
	return &danubepb.HealthCheckResponse{Status: danubepb.HealthCheckResponse_OK}, nil
}

func TestConsumerReactsToCloseOnIdleStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake := &closingBroker{open: map[uint64]bool{}, streamEnds: make(chan uint64, 4)}
	danubepb.RegisterDiscoveryServer(srv, fake)
	danubepb.RegisterConsumerServiceServer(srv, fake)
	danubepb.RegisterHealthCheckServer(srv, fake)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	ev := newEvents()
	c, err := NewClient("http://"+ln.Addr().String(), fastOpts(WithHooks(ev.hooks()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cons, err := c.Subscribe(testCtx(t), ConsumerOptions{Topic: "/default/idle", Name: "c", Subscription: "s", Type: Shared})
	if err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "resubscribe after CLOSE", func(e *events) bool { return e.reconnected("consumer") == 1 })
	if id := <-fake.streamEnds; id != 1 {
		t.Fatalf("first stream ended for consumer %d, want 1", id)
	}
	ev.mu.Lock()
	if r := ev.reconnects[0]; r.Reason != "health check CLOSE" || r.Topic != "/default/idle" {
		t.Errorf("reconnect = %+v, want reason health check CLOSE", r)
	}
	ev.mu.Unlock()
	if got := consumerID(cons, "/default/idle"); got != 2 {
		t.Errorf("consumer id after resubscribe = %d, want 2", got)
	}
	eventually(t, "one health loop (for the new id only)", func() bool { return c.healthLoops.Load() == 1 })
	eventually(t, "stream of consumer 2 attached", func() bool { return fake.streaming(2) })
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if id := <-fake.streamEnds; id != 2 {
		t.Fatalf("stream ended on Close for consumer %d, want 2", id)
	}
	if n := c.healthLoops.Load(); n != 0 {
		t.Errorf("health loops after Close = %d", n)
	}
}
