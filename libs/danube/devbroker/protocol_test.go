package devbroker

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

const (
	nonReliable = pb.DispatchStrategy_NonReliable
	reliable    = pb.DispatchStrategy_Reliable
)

func TestTopicNameValidation(t *testing.T) {
	e := startEnv(t, fastConfig())
	for _, name := range []string{"default/t", "/default/t/x", "/default/t.x", "/default/t x", "/def ault/t", ""} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			want := fmt.Sprintf("The topic: %s has an invalid format, should be: /namespace_name/topic_name", name)
			_, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: name})
			wantCode(t, err, codes.InvalidArgument, want)
			_, err = e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{Topic: name})
			wantCode(t, err, codes.InvalidArgument, want)
			_, err = e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: name, ProducerName: "p"})
			wantCode(t, err, codes.InvalidArgument, want)
			_, err = e.cons.Subscribe(ctx(t), &pb.ConsumerRequest{TopicName: name, ConsumerName: "c", Subscription: "s"})
			wantCode(t, err, codes.InvalidArgument, want)
		})
	}
	// Upstream's check accepts any three alnum parts and Unicode letters.
	e.producer("/default/ünï_co-de", "p", nonReliable)
}

func TestLookup(t *testing.T) {
	e := startEnv(t, fastConfig())
	_, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{RequestId: 3, Topic: "/default/unknown"})
	wantCode(t, err, codes.NotFound, "Unable to find the requested topic")

	e.producer("/default/known", "p", nonReliable)
	r, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{RequestId: 42, Topic: "/default/known"})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetRequestId() != 42 || r.GetResponseType() != pb.TopicLookupResponse_Connect ||
		r.GetBrokerUrl() != e.b.URL() || r.GetConnectUrl() != e.b.URL() || r.GetProxy() {
		t.Fatalf("lookup = %v, want Connect to %s", r, e.b.URL())
	}
	if want := "http://" + e.b.Addr(); e.b.URL() != want {
		t.Fatalf("URL() = %s, want %s", e.b.URL(), want)
	}
}

func TestCreateProducer(t *testing.T) {
	e := startEnv(t, fastConfig())
	e.producer("/default/rel", "existing", reliable)
	e.producer("/default/part-part-0", "existing", nonReliable)
	e.producer("/default/plain", "existing", nonReliable)
	tests := []struct {
		name     string
		req      *pb.ProducerRequest
		code     codes.Code
		msg      string
		sameAsID string // topic|producer whose id must be returned
	}{
		{"auto-create", &pb.ProducerRequest{RequestId: 9, TopicName: "/default/new", ProducerName: "p"}, codes.OK, "", ""},
		{"idempotent by name", &pb.ProducerRequest{RequestId: 10, TopicName: "/default/rel", ProducerName: "existing", DispatchStrategy: reliable}, codes.OK, "", "/default/rel"},
		{"strategy mismatch", &pb.ProducerRequest{TopicName: "/default/rel", ProducerName: "x"}, codes.FailedPrecondition,
			"Producer requested dispatch strategy does not match topic strategy", ""},
		{"strategy mismatch reverse", &pb.ProducerRequest{TopicName: "/default/plain", ProducerName: "x", DispatchStrategy: reliable}, codes.FailedPrecondition,
			"Producer requested dispatch strategy does not match topic strategy", ""},
		{"missing namespace", &pb.ProducerRequest{TopicName: "/nope/t", ProducerName: "p"}, codes.Unavailable, "Unable to find the namespace nope", ""},
		{"invalid strategy", &pb.ProducerRequest{TopicName: "/default/bad", ProducerName: "p", DispatchStrategy: 7}, codes.InvalidArgument, "Dispatch strategy is missing", ""},
		{"unknown strategy on existing topic is not checked", &pb.ProducerRequest{TopicName: "/default/rel", ProducerName: "odd", DispatchStrategy: 7}, codes.OK, "", ""},
		{"partition vs plain", &pb.ProducerRequest{TopicName: "/default/plain-part-0", ProducerName: "p"}, codes.AlreadyExists, "", ""},
		{"plain vs partition", &pb.ProducerRequest{TopicName: "/default/part", ProducerName: "p"}, codes.AlreadyExists, "", ""},
		{"unregistered schema on a new topic is accepted, as on v0.15.1", &pb.ProducerRequest{TopicName: "/default/sch", ProducerName: "p", DispatchStrategy: reliable, SchemaRef: &pb.SchemaReference{Subject: "nope"}}, codes.OK, "", ""},
	}
	first, err := e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: "/default/rel", ProducerName: "existing", DispatchStrategy: reliable})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.prod.CreateProducer(ctx(t), tc.req)
			wantCode(t, err, tc.code, tc.msg)
			if err != nil {
				return
			}
			if r.GetRequestId() != tc.req.GetRequestId() || r.GetProducerName() != tc.req.GetProducerName() || r.GetProducerId() == 0 {
				t.Fatalf("response %v for %v", r, tc.req)
			}
			if tc.sameAsID != "" && r.GetProducerId() != first.GetProducerId() {
				t.Fatalf("producer id %d, want existing %d", r.GetProducerId(), first.GetProducerId())
			}
		})
	}
}

func TestSendMessage(t *testing.T) {
	e := startEnv(t, fastConfig())
	pid := e.producer("/default/s", "p", nonReliable)
	other := e.producer("/default/other", "p", nonReliable)
	tests := []struct {
		name string
		msg  *pb.StreamMessage
		code codes.Code
		text string
	}{
		{"echoes request id", &pb.StreamMessage{RequestId: 77, MsgId: &pb.MsgID{ProducerId: pid, TopicName: "/default/s"}}, codes.OK, ""},
		{"unknown producer", &pb.StreamMessage{MsgId: &pb.MsgID{ProducerId: 12345, TopicName: "/default/s"}}, codes.NotFound, "The producer with id 12345 does not exist"},
		{"producer of another topic", &pb.StreamMessage{MsgId: &pb.MsgID{ProducerId: other, TopicName: "/default/s"}}, codes.PermissionDenied,
			fmt.Sprintf("Unable to publish the message: producer %d is not attached to topic /default/s", other)},
		{"missing msg_id", &pb.StreamMessage{}, codes.Internal, "msg_id is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.prod.SendMessage(ctx(t), tc.msg)
			wantCode(t, err, tc.code, tc.text)
			if err == nil && r.GetRequestId() != tc.msg.GetRequestId() {
				t.Fatalf("request_id %d, want %d", r.GetRequestId(), tc.msg.GetRequestId())
			}
		})
	}
}

func TestNonReliableDelivery(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/nr"
	pid := e.producer(topic, "p", nonReliable)
	e.send(topic, pid, 1, "before-subscription", nil) // discarded: no subscription yet
	cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	s := e.receive(cid)
	e.send(topic, pid, 2, "hello", strp("k"))
	m := s.next(t)
	if string(m.GetPayload()) != "hello" || m.GetRequestId() != 2 || m.GetSubscriptionName() != "" ||
		m.GetMsgId().GetTopicOffset() != 0 || m.GetMsgId().GetProducerId() != pid || m.GetRoutingKey() != "k" ||
		m.GetMsgId().GetBrokerAddr() != e.b.URL() {
		t.Fatalf("delivered %v", m)
	}
	e.ack(m, "sub") // accepted and ignored
	s.quiet(t)
}

func TestNonReliableDropsWhenConsumerChannelFull(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/drop"
	pid := e.producer(topic, "p", nonReliable)
	cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	for i := 1; i <= 10; i++ { // no stream yet: only the 4-slot channel holds messages
		e.send(topic, pid, uint64(i), fmt.Sprint(i), nil)
	}
	s := e.receive(cid)
	for i := 1; i <= consumerChanCap; i++ {
		if m := s.next(t); string(m.GetPayload()) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", m.GetPayload(), i)
		}
	}
	s.quiet(t)
}

func TestReliableOffsetsStartAtTail(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/rel"
	pid := e.producer(topic, "p", reliable)
	for i := 0; i < 3; i++ {
		e.send(topic, pid, uint64(i), "old", nil)
	}
	cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	s := e.receive(cid)
	for i := 0; i < 3; i++ {
		e.send(topic, pid, uint64(10+i), fmt.Sprint("new", i), nil)
	}
	for i := 0; i < 3; i++ {
		m := s.next(t)
		if m.GetMsgId().GetTopicOffset() != uint64(3+i) || string(m.GetPayload()) != fmt.Sprint("new", i) || m.GetRequestId() != uint64(10+i) {
			t.Fatalf("message %d: offset %d payload %q", i, m.GetMsgId().GetTopicOffset(), m.GetPayload())
		}
		e.ack(m, "sub")
	}
}

func TestSubscribeRules(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/subs"
	e.producer(topic, "p", nonReliable)
	e.subscribe(topic, "excl", "owner", pb.ConsumerRequest_Exclusive)
	e.subscribe(topic, "shared", "a", pb.ConsumerRequest_Shared)
	tests := []struct {
		name string
		req  *pb.ConsumerRequest
		code codes.Code
		msg  string
	}{
		{"never auto-creates", &pb.ConsumerRequest{TopicName: "/default/none", ConsumerName: "c", Subscription: "s"}, codes.NotFound, "Unable to find the topic: /default/none"},
		{"exclusive conflict", &pb.ConsumerRequest{TopicName: topic, ConsumerName: "intruder", Subscription: "excl", SubscriptionType: pb.ConsumerRequest_Exclusive},
			codes.PermissionDenied, "Not able to subscribe to the topic /default/subs due to Exclusive subscription can't be shared"},
		{"type fixed by first subscriber", &pb.ConsumerRequest{TopicName: topic, ConsumerName: "b", Subscription: "shared", SubscriptionType: pb.ConsumerRequest_Exclusive}, codes.OK, ""},
		{"unknown subscription type", &pb.ConsumerRequest{TopicName: topic, ConsumerName: "c", Subscription: "weird", SubscriptionType: 9}, codes.PermissionDenied, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.cons.Subscribe(ctx(t), tc.req)
			wantCode(t, err, tc.code, tc.msg)
		})
	}
	cl, err := e.cons.ReceiveMessages(ctx(t), &pb.ReceiveRequest{ConsumerId: 99})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Recv()
	wantCode(t, err, codes.NotFound, "The consumer with the id 99 does not exist")
}

func TestSameNameTakeover(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/takeover"
	pid := e.producer(topic, "p", nonReliable)
	id1 := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	s1 := e.receive(id1)
	e.send(topic, pid, 1, "one", nil)
	s1.next(t)
	id2 := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	if id2 != id1 {
		t.Fatalf("reattach id %d, want %d", id2, id1)
	}
	if err := s1.ended(t); err != nil {
		t.Fatalf("old stream ended with %v, want EOF", err)
	}
	s2 := e.receive(id1)
	e.send(topic, pid, 2, "two", nil)
	if m := s2.next(t); string(m.GetPayload()) != "two" {
		t.Fatalf("got %q", m.GetPayload())
	}
	// A second ReceiveMessages for the same id takes the stream over too.
	s3 := e.receive(id1)
	if err := s2.ended(t); err != nil {
		t.Fatalf("taken-over stream ended with %v", err)
	}
	e.send(topic, pid, 3, "three", nil)
	if m := s3.next(t); string(m.GetPayload()) != "three" {
		t.Fatalf("got %q", m.GetPayload())
	}
}

func TestSharedRoundRobin(t *testing.T) {
	for _, ds := range []pb.DispatchStrategy{nonReliable, reliable} {
		t.Run(ds.String(), func(t *testing.T) {
			e := startEnv(t, fastConfig())
			const topic = "/default/shared"
			pid := e.producer(topic, "p", ds)
			a := e.receive(e.subscribe(topic, "sub", "a", pb.ConsumerRequest_Shared))
			b := e.receive(e.subscribe(topic, "sub", "b", pb.ConsumerRequest_Shared))
			for i := 0; i < 4; i++ {
				e.send(topic, pid, uint64(i), fmt.Sprint(i), nil)
			}
			got := map[string]bool{}
			for _, s := range []*stream{a, b, a, b} {
				m := s.next(t)
				got[string(m.GetPayload())] = true
				e.ack(m, "sub")
			}
			if len(got) != 4 {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestFailoverFirstConsumerOnly(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/fo"
	pid := e.producer(topic, "p", nonReliable)
	a := e.receive(e.subscribe(topic, "sub", "a", pb.ConsumerRequest_Failover))
	b := e.receive(e.subscribe(topic, "sub", "b", pb.ConsumerRequest_Failover))
	for i := 0; i < 3; i++ {
		e.send(topic, pid, uint64(i), "x", nil)
		a.next(t)
	}
	b.quiet(t)
}

func TestKeySharedRouting(t *testing.T) {
	for _, ds := range []pb.DispatchStrategy{nonReliable, reliable} {
		t.Run(ds.String(), func(t *testing.T) {
			e := startEnv(t, fastConfig())
			const topic = "/default/ks"
			pid := e.producer(topic, "p", ds)
			a := e.receive(e.subscribe(topic, "sub", "a", pb.ConsumerRequest_KeyShared, "eu-*"))
			b := e.receive(e.subscribe(topic, "sub", "b", pb.ConsumerRequest_KeyShared, "us-?"))
			e.send(topic, pid, 1, "1", strp("eu-west"))
			e.send(topic, pid, 2, "2", strp("us-1"))
			e.send(topic, pid, 3, "3", strp("asia")) // matches nobody: skipped
			e.send(topic, pid, 4, "4", strp("eu-north"))
			for _, want := range []string{"1", "4"} {
				m := a.next(t)
				if string(m.GetPayload()) != want {
					t.Fatalf("a got %q want %q", m.GetPayload(), want)
				}
				e.ack(m, "sub")
			}
			m := b.next(t)
			if string(m.GetPayload()) != "2" {
				t.Fatalf("b got %q", m.GetPayload())
			}
			e.ack(m, "sub")
			a.quiet(t)
		})
	}
}

func TestKeySharedConsistentHashing(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/ksh"
	pid := e.producer(topic, "p", nonReliable)
	streams := map[string]*stream{}
	for _, n := range []string{"a", "b", "c"} {
		streams[n] = e.receive(e.subscribe(topic, "sub", n, pb.ConsumerRequest_KeyShared))
	}
	owner := map[string]string{}
	for round := 0; round < 2; round++ {
		for k := 0; k < 6; k++ {
			key := fmt.Sprint("key-", k)
			e.send(topic, pid, 1, key, &key)
			var got string
			select {
			case <-streams["a"].msgs:
				got = "a"
			case <-streams["b"].msgs:
				got = "b"
			case <-streams["c"].msgs:
				got = "c"
			}
			if prev, ok := owner[key]; ok && prev != got {
				t.Fatalf("key %s moved from %s to %s", key, prev, got)
			}
			owner[key] = got
		}
	}
}

func TestLookupAdvertisedURLs(t *testing.T) {
	cfg := fastConfig()
	cfg.AdvertisedAddr = "broker-1.internal:6650"
	cfg.ConnectURL = "http://proxy.example:9000"
	e := startEnv(t, cfg)
	e.producer("/default/adv", "p", nonReliable)
	r, err := e.disc.TopicLookup(ctx(t), &pb.TopicLookupRequest{Topic: "/default/adv"})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetBrokerUrl() != "http://broker-1.internal:6650" || r.GetConnectUrl() != "http://proxy.example:9000" || !r.GetProxy() {
		t.Fatalf("lookup %v", r)
	}
	if e.b.URL() != "http://broker-1.internal:6650" {
		t.Fatalf("URL() = %s", e.b.URL())
	}
}
