package devbroker

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
	spb "github.com/danube-messaging/danube-connect-go/proto/schemapb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every awaited event; quietFor is how long a test watches for
// something that must NOT happen.
const (
	waitFor  = 5 * time.Second
	quietFor = 150 * time.Millisecond
)

// fastConfig shrinks every timer so redelivery tests take milliseconds.
func fastConfig() Config {
	return Config{
		AckTimeout:          200 * time.Millisecond,
		RedeliveryBaseDelay: 10 * time.Millisecond,
		RedeliveryMaxDelay:  40 * time.Millisecond,
		RetryTick:           5 * time.Millisecond,
		CursorFlushInterval: 20 * time.Millisecond,
	}
}

type env struct {
	t     *testing.T
	b     *Broker
	conn  *grpc.ClientConn
	prod  pb.ProducerServiceClient
	cons  pb.ConsumerServiceClient
	disc  pb.DiscoveryClient
	hc    pb.HealthCheckClient
	reg   spb.SchemaRegistryClient
	nsAdm apb.NamespaceAdminClient
	tAdm  apb.TopicAdminClient
}

func startEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	b, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return dialEnv(t, b)
}

// restart restarts e's broker and returns an env on a fresh connection: the
// old one may still pick the dead transport for its next call (Unavailable
// "error reading from server: EOF"), which a real client would retry.
func restart(t *testing.T, e *env) *env {
	t.Helper()
	if err := e.b.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	return dialEnv(t, e.b)
}

func dialEnv(t *testing.T, b *Broker) *env {
	t.Helper()
	conn, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	e := &env{t: t, b: b, conn: conn,
		prod: pb.NewProducerServiceClient(conn), cons: pb.NewConsumerServiceClient(conn),
		disc: pb.NewDiscoveryClient(conn), hc: pb.NewHealthCheckClient(conn), reg: spb.NewSchemaRegistryClient(conn)}
	if b.AdminAddr() != "-" {
		ac, err := grpc.NewClient(b.AdminAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("dial admin: %v", err)
		}
		t.Cleanup(func() { ac.Close() })
		e.nsAdm, e.tAdm = apb.NewNamespaceAdminClient(ac), apb.NewTopicAdminClient(ac)
	}
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("got %v (%q), want %v (%q)", st.Code(), st.Message(), code, msg)
	}
}

func (e *env) producer(topic, name string, ds pb.DispatchStrategy) uint64 {
	e.t.Helper()
	r, err := e.prod.CreateProducer(ctx(e.t), &pb.ProducerRequest{RequestId: 1, ProducerName: name, TopicName: topic, DispatchStrategy: ds})
	if err != nil {
		e.t.Fatalf("CreateProducer(%s, %s): %v", topic, name, err)
	}
	return r.GetProducerId()
}

func (e *env) send(topic string, pid uint64, reqID uint64, payload string, key *string) {
	e.t.Helper()
	r, err := e.prod.SendMessage(ctx(e.t), &pb.StreamMessage{
		RequestId: reqID, MsgId: &pb.MsgID{ProducerId: pid, TopicName: topic, BrokerAddr: e.b.URL()},
		Payload: []byte(payload), PublishTime: 1, ProducerName: "p", RoutingKey: key,
	})
	if err != nil {
		e.t.Fatalf("SendMessage: %v", err)
	}
	if r.GetRequestId() != reqID {
		e.t.Fatalf("MessageResponse.request_id = %d, want %d", r.GetRequestId(), reqID)
	}
}

func (e *env) subscribe(topic, sub, name string, typ pb.ConsumerRequest_SubscriptionType, filters ...string) uint64 {
	e.t.Helper()
	r, err := e.cons.Subscribe(ctx(e.t), &pb.ConsumerRequest{RequestId: 7, TopicName: topic, ConsumerName: name,
		Subscription: sub, SubscriptionType: typ, KeyFilters: filters})
	if err != nil {
		e.t.Fatalf("Subscribe(%s, %s, %s): %v", topic, sub, name, err)
	}
	if r.GetRequestId() != 7 || r.GetConsumerName() != name {
		e.t.Fatalf("ConsumerResponse = %v", r)
	}
	return r.GetConsumerId()
}

// stream is a running ReceiveMessages call feeding a channel.
type stream struct {
	msgs   chan *pb.StreamMessage
	err    chan error
	cancel context.CancelFunc
}

func (e *env) receive(id uint64) *stream {
	e.t.Helper()
	c, cancel := context.WithCancel(context.Background())
	cl, err := e.cons.ReceiveMessages(c, &pb.ReceiveRequest{RequestId: 1, ConsumerId: id})
	if err != nil {
		cancel()
		e.t.Fatalf("ReceiveMessages: %v", err)
	}
	s := &stream{msgs: make(chan *pb.StreamMessage, 1000), err: make(chan error, 1), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := cl.Recv()
			if err != nil {
				s.err <- err
				return
			}
			s.msgs <- m
		}
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	// Like the official suites' sleep after Receive: wait until the broker has
	// attached the stream, so non-reliable sends are not dropped by the race.
	eventually(e.t, "stream attached", func() bool {
		c := e.b.current()
		if c == nil {
			return true
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		cons := c.consumers[id]
		return cons == nil || cons.sess != nil
	})
	return s
}

func (s *stream) next(t *testing.T) *pb.StreamMessage {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.err:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(waitFor):
		t.Fatalf("no message within %v", waitFor)
	}
	return nil
}

func (s *stream) quiet(t *testing.T) {
	t.Helper()
	select {
	case m := <-s.msgs:
		t.Fatalf("unexpected message %q offset %d", m.GetPayload(), m.GetMsgId().GetTopicOffset())
	case <-time.After(quietFor):
	}
}

// ended waits for the stream to finish and returns its error (nil for EOF).
func (s *stream) ended(t *testing.T) error {
	t.Helper()
	for {
		select {
		case <-s.msgs:
		case err := <-s.err:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-time.After(waitFor):
			t.Fatalf("stream did not end within %v", waitFor)
		}
	}
}

func (e *env) ack(m *pb.StreamMessage, sub string) {
	e.t.Helper()
	r, err := e.cons.Ack(ctx(e.t), &pb.AckRequest{RequestId: m.GetRequestId(), MsgId: m.GetMsgId(), SubscriptionName: sub})
	if err != nil {
		e.t.Fatalf("Ack: %v", err)
	}
	if r.GetRequestId() != m.GetRequestId() {
		e.t.Fatalf("AckResponse.request_id = %d, want %d", r.GetRequestId(), m.GetRequestId())
	}
}

func (e *env) nack(m *pb.StreamMessage, sub string, delayMs *uint64, reason string) {
	e.t.Helper()
	_, err := e.cons.Nack(ctx(e.t), &pb.NackRequest{RequestId: m.GetRequestId(), MsgId: m.GetMsgId(), SubscriptionName: sub, DelayMs: delayMs, Reason: &reason})
	if err != nil {
		e.t.Fatalf("Nack: %v", err)
	}
}

func (e *env) health(kind pb.HealthCheckRequest_ClientType, id uint64) pb.HealthCheckResponse_ClientStatus {
	e.t.Helper()
	r, err := e.hc.HealthCheck(ctx(e.t), &pb.HealthCheckRequest{RequestId: 1, Client: kind, Id: id})
	if err != nil {
		e.t.Fatalf("HealthCheck: %v", err)
	}
	return r.GetStatus()
}

// eventually polls cond (for states with no event to await, like health flips).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func strp(s string) *string { return &s }

// keySharedPair subscribes consumers "a" and "b" to a reliable KeyShared subscription "sub" of
// topic and sends and acks one message with key, to learn which of them owns it.
func keySharedPair(t *testing.T, e *env, topic, key string) (pid uint64, ids map[string]uint64, streams map[string]*stream, owner, other string) {
	t.Helper()
	pid = e.producer(topic, "p", reliable)
	ids, streams = map[string]uint64{}, map[string]*stream{}
	for _, n := range []string{"a", "b"} {
		ids[n] = e.subscribe(topic, "sub", n, pb.ConsumerRequest_KeyShared)
		streams[n] = e.receive(ids[n])
	}
	e.send(topic, pid, 1, "first", &key)
	select {
	case m := <-streams["a"].msgs:
		owner, other = "a", "b"
		e.ack(m, "sub")
	case m := <-streams["b"].msgs:
		owner, other = "b", "a"
		e.ack(m, "sub")
	case <-time.After(waitFor):
		t.Fatal("first message not delivered")
	}
	return pid, ids, streams, owner, other
}
