package devbroker

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

func TestHealthCheck(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/hc"
	pid := e.producer(topic, "p", nonReliable)
	cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Shared)
	s := e.receive(cid)
	tests := []struct {
		name string
		kind pb.HealthCheckRequest_ClientType
		id   uint64
		want pb.HealthCheckResponse_ClientStatus
	}{
		{"producer", pb.HealthCheckRequest_Producer, pid, pb.HealthCheckResponse_OK},
		{"consumer", pb.HealthCheckRequest_Consumer, cid, pb.HealthCheckResponse_OK},
		{"unknown producer", pb.HealthCheckRequest_Producer, 1, pb.HealthCheckResponse_CLOSE},
		{"unknown consumer", pb.HealthCheckRequest_Consumer, 1, pb.HealthCheckResponse_CLOSE},
		{"consumer id as producer", pb.HealthCheckRequest_Producer, cid, pb.HealthCheckResponse_CLOSE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.health(tc.kind, tc.id); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	_, err := e.hc.HealthCheck(ctx(t), &pb.HealthCheckRequest{Client: 5, Id: pid})
	wantCode(t, err, codes.InvalidArgument, "Invalid client type")

	e.b.ForceClose(pid)
	e.b.ForceClose(cid)
	if e.health(pb.HealthCheckRequest_Producer, pid) != pb.HealthCheckResponse_CLOSE ||
		e.health(pb.HealthCheckRequest_Consumer, cid) != pb.HealthCheckResponse_CLOSE {
		t.Fatal("ForceClose did not make health answer CLOSE")
	}
	if err := s.ended(t); err != nil {
		t.Fatalf("force-closed stream ended with %v, want EOF", err)
	}
	// Re-subscribing (what clients do on CLOSE) restores OK.
	e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Shared)
	if e.health(pb.HealthCheckRequest_Consumer, cid) != pb.HealthCheckResponse_OK {
		t.Fatal("re-subscribed consumer not OK")
	}
}

func TestFailNext(t *testing.T) {
	e := startEnv(t, fastConfig())
	e.b.FailNext("/danube.ProducerService/CreateProducer", 2, codes.ResourceExhausted)
	req := &pb.ProducerRequest{TopicName: "/default/f", ProducerName: "p"}
	for i := 0; i < 2; i++ {
		_, err := e.prod.CreateProducer(ctx(t), req)
		wantCode(t, err, codes.ResourceExhausted, "")
	}
	if _, err := e.prod.CreateProducer(ctx(t), req); err != nil {
		t.Fatalf("third call: %v", err)
	}
	cid := e.subscribe("/default/f", "s", "c", pb.ConsumerRequest_Shared)
	e.b.FailNext("/danube.ConsumerService/ReceiveMessages", 1, codes.Unavailable)
	cl, err := e.cons.ReceiveMessages(ctx(t), &pb.ReceiveRequest{ConsumerId: cid})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Recv()
	wantCode(t, err, codes.Unavailable, "")
}

func TestClusterModeFirstCreateUnavailable(t *testing.T) {
	e := startEnv(t, fastConfig())
	e.b.SetClusterMode(true)
	req := &pb.ProducerRequest{TopicName: "/default/cl", ProducerName: "p"}
	_, err := e.prod.CreateProducer(ctx(t), req)
	wantCode(t, err, codes.Unavailable, "The topic metadata was created, need to redo the lookup to find the correct broker")
	if _, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: "/default/cl"}); err != nil {
		t.Fatalf("lookup after create: %v", err)
	}
	if _, err := e.prod.CreateProducer(ctx(t), req); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestRedirectTopic(t *testing.T) {
	e := startEnv(t, fastConfig())
	other, err := Start(Config{AdminAddr: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const topic = "/default/moved"
	e.b.RedirectTopic(topic, other)
	r, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{RequestId: 5, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetResponseType() != pb.TopicLookupResponse_Redirect || r.GetBrokerUrl() != other.URL() || r.GetConnectUrl() != other.URL() || r.GetRequestId() != 5 {
		t.Fatalf("lookup %v", r)
	}
	const msg = "The topic exists but is served by another broker, redo the Lookup request"
	_, err = e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: topic, ProducerName: "p"})
	wantCode(t, err, codes.Unavailable, msg)
	_, err = e.cons.Subscribe(ctx(t), &pb.ConsumerRequest{TopicName: topic, ConsumerName: "c", Subscription: "s"})
	wantCode(t, err, codes.Unavailable, msg)
	e.b.RedirectTopic(topic, nil)
	e.producer(topic, "p", nonReliable)
}

func TestRestartForgetsInMemoryState(t *testing.T) {
	e := startEnv(t, fastConfig())
	addr, admin := e.b.Addr(), e.b.AdminAddr()
	pid := e.producer("/default/r", "p", nonReliable)
	cid := e.subscribe("/default/r", "s", "c", pb.ConsumerRequest_Shared)
	s := e.receive(cid)
	e = restart(t, e)
	if e.b.Addr() != addr || e.b.AdminAddr() != admin {
		t.Fatalf("restart moved ports: %s %s -> %s %s", addr, admin, e.b.Addr(), e.b.AdminAddr())
	}
	wantCode(t, s.ended(t), codes.Unavailable, "")
	_, err := e.prod.SendMessage(ctx(t), &pb.StreamMessage{MsgId: &pb.MsgID{ProducerId: pid, TopicName: "/default/r"}})
	wantCode(t, err, codes.NotFound, "")
	if e.health(pb.HealthCheckRequest_Consumer, cid) != pb.HealthCheckResponse_CLOSE {
		t.Fatal("consumer survived restart")
	}
	_, err = e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: "/default/r"})
	wantCode(t, err, codes.NotFound, "")
}

func TestNonReliableIdleSubscriptionReaped(t *testing.T) {
	cfg := fastConfig()
	cfg.SubscriptionIdleGrace = 20 * time.Millisecond
	e := startEnv(t, cfg)
	const topic = "/default/idle"
	pid := e.producer(topic, "p", nonReliable)
	cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	s := e.receive(cid)
	e.send(topic, pid, 1, "delivered", nil)
	s.next(t) // the stream is established on the server
	s.cancel()
	eventually(t, "consumer inactive", func() bool { return e.health(pb.HealthCheckRequest_Consumer, cid) == pb.HealthCheckResponse_CLOSE })
	e.send(topic, pid, 2, "lost", nil) // failed dispatch marks the subscription idle
	eventually(t, "subscription reaped", func() bool {
		_, err := e.cons.Subscribe(ctx(t), &pb.ConsumerRequest{TopicName: topic, ConsumerName: "new", Subscription: "sub"})
		return err == nil
	})
}
