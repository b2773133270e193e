package devbroker

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

func TestReliableWindowAndOutOfOrderAcks(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxUnackedMessages = 3
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/window"
	pid := e.producer(topic, "p", reliable)
	s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	for i := 0; i < 6; i++ {
		e.send(topic, pid, uint64(i), fmt.Sprint(i), nil)
	}
	var got []*pb.StreamMessage
	for i := 0; i < 3; i++ {
		got = append(got, s.next(t))
	}
	s.quiet(t) // window full
	expect := func(off uint64) {
		t.Helper()
		if m := s.next(t); m.GetMsgId().GetTopicOffset() != off {
			t.Fatalf("offset %d, want %d", m.GetMsgId().GetTopicOffset(), off)
		}
	}
	e.ack(got[2], "sub") // out of order: frees a slot although the cursor stays before 0
	expect(3)
	e.ack(got[2], "sub") // duplicate: ignored, frees nothing
	s.quiet(t)
	e.ack(got[0], "sub")
	expect(4)
	e.ack(got[1], "sub")
	expect(5)
}

func TestAckNackErrors(t *testing.T) {
	e := startEnv(t, fastConfig())
	e.producer("/default/t", "p", reliable)
	e.subscribe("/default/t", "sub", "c", pb.ConsumerRequest_Shared)
	tests := []struct {
		name  string
		topic string
		sub   string
		ack   string
		nack  string
	}{
		{"unknown topic", "/default/zz", "sub",
			"Error acknowledging message: topic /default/zz not found on this broker",
			"Error negatively acknowledging message: topic /default/zz not found on this broker"},
		{"unknown subscription", "/default/t", "nope",
			"Error acknowledging message: subscription nope not found on topic /default/t",
			"Error negatively acknowledging message: subscription nope not found on topic /default/t"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := &pb.MsgID{TopicName: tc.topic}
			_, err := e.cons.Ack(ctx(t), &pb.AckRequest{MsgId: id, SubscriptionName: tc.sub})
			wantCode(t, err, codes.Internal, tc.ack)
			_, err = e.cons.Nack(ctx(t), &pb.NackRequest{MsgId: id, SubscriptionName: tc.sub})
			wantCode(t, err, codes.Internal, tc.nack)
		})
	}
	// An ack for an offset outside the window is accepted and ignored.
	r, err := e.cons.Ack(ctx(t), &pb.AckRequest{RequestId: 5, MsgId: &pb.MsgID{TopicName: "/default/t", TopicOffset: 1000}, SubscriptionName: "sub"})
	if err != nil || r.GetRequestId() != 5 {
		t.Fatalf("ack = %v, %v", r, err)
	}
}

func TestAckTimeoutRedelivers(t *testing.T) {
	cfg := fastConfig()
	cfg.AckTimeout = 30 * time.Millisecond
	e := startEnv(t, cfg)
	const topic = "/default/timeout"
	pid := e.producer(topic, "p", reliable)
	s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	e.send(topic, pid, 1, "m", nil)
	first := s.next(t)
	again := s.next(t) // not acked: redelivered after timeout + backoff
	if again.GetMsgId().GetTopicOffset() != first.GetMsgId().GetTopicOffset() || string(again.GetPayload()) != "m" {
		t.Fatalf("redelivered %v", again)
	}
	e.ack(again, "sub")
	s.quiet(t)
}

func TestRedeliveryDelay(t *testing.T) {
	p := failurePolicy{BaseDelay: time.Second, MaxDelay: 60 * time.Second}
	tests := []struct {
		attempt   int
		requested time.Duration
		want      time.Duration
	}{
		{1, 0, time.Second}, {2, 0, 2 * time.Second}, {5, 0, 16 * time.Second}, {7, 0, 60 * time.Second},
		{1, 5 * time.Second, 5 * time.Second}, {1, 10 * time.Minute, 60 * time.Second},
	}
	for _, tc := range tests {
		if got := p.delay(tc.attempt, tc.requested); got != tc.want {
			t.Errorf("delay(%d, %v) = %v, want %v", tc.attempt, tc.requested, got, tc.want)
		}
	}
	p.Fixed = true
	if got := p.delay(4, 0); got != time.Second {
		t.Errorf("fixed delay = %v", got)
	}
}

func setPolicy(t *testing.T, e *env, topic, sub string, poison apb.SubscriptionPoisonPolicy, dlt *string) {
	t.Helper()
	_, err := e.tAdm.SetSubscriptionFailurePolicy(ctx(t), &apb.SetSubscriptionFailurePolicyRequest{
		Topic: topic, Subscription: sub,
		FailurePolicy: &apb.SubscriptionFailurePolicy{
			MaxRedeliveryCount: 2, AckTimeoutMs: 60000, BaseRedeliveryDelayMs: 1, MaxRedeliveryDelayMs: 5,
			BackoffStrategy: apb.SubscriptionBackoffStrategy_Exponential, PoisonPolicy: poison, DeadLetterTopic: dlt,
		},
	})
	if err != nil {
		t.Fatalf("SetSubscriptionFailurePolicy: %v", err)
	}
}

func TestPoisonPolicies(t *testing.T) {
	tests := []struct {
		name   string
		poison apb.SubscriptionPoisonPolicy
		flows  bool // does the next message flow after the poison one?
		dlq    bool
	}{
		{"block stalls the subscription", apb.SubscriptionPoisonPolicy_Block, false, false},
		{"drop skips", apb.SubscriptionPoisonPolicy_Drop, true, false},
		{"dead letter republishes", apb.SubscriptionPoisonPolicy_DeadLetter, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, fastConfig())
			const topic = "/default/poison"
			const dlt = "/default/poison-dlq"
			pid := e.producer(topic, "p", reliable)
			setPolicy(t, e, topic, "sub", tc.poison, strp(dlt)) // applied when the subscription is created
			cid := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
			var dlqStream *stream
			if tc.dlq {
				e.producer(dlt, "dlq-admin", reliable)
				dlqStream = e.receive(e.subscribe(dlt, "dlq-sub", "d", pb.ConsumerRequest_Exclusive))
			}
			s := e.receive(cid)
			e.send(topic, pid, 1, "poison", nil)
			e.send(topic, pid, 2, "next", nil)
			// Both are in the window; nack "poison" until its budget (2 redeliveries) is spent.
			for attempt := 1; attempt <= 3; attempt++ {
				m := s.next(t)
				if string(m.GetPayload()) == "next" {
					e.ack(m, "sub")
					m = s.next(t)
				}
				if string(m.GetPayload()) != "poison" {
					t.Fatalf("attempt %d got %q", attempt, m.GetPayload())
				}
				e.nack(m, "sub", nil, "bad payload")
			}
			e.send(topic, pid, 3, "after", nil)
			if tc.flows {
				if m := s.next(t); string(m.GetPayload()) != "after" {
					t.Fatalf("got %q, want after", m.GetPayload())
				}
			} else {
				s.quiet(t)
			}
			if tc.dlq {
				m := dlqStream.next(t)
				want := map[string]string{
					"x-original-topic": topic, "x-original-subscription": "sub",
					"x-original-topic-offset": "0", "x-original-producer-id": strconv.FormatUint(pid, 10),
					"x-original-broker-addr": e.b.URL(), "x-poison-policy": "dead_letter",
					"x-delivery-attempt": "3", "x-failure-reason": "bad payload",
				}
				for k, v := range want {
					if got := m.GetAttributes()[k]; got != v {
						t.Errorf("attribute %s = %q, want %q", k, got, v)
					}
				}
				if string(m.GetPayload()) != "poison" || m.GetMsgId().GetTopicName() != dlt || m.GetRoutingKey() != "" ||
					m.GetMsgId().GetTopicOffset() != 0 {
					t.Fatalf("dead letter %v", m)
				}
			}
		})
	}
}

// TestDeadLetterCreatesTopic: as on v0.15.1, dead-lettering creates a missing dead-letter topic
// (reliable) and the subscription moves on; a namespace that does not exist keeps the message
// blocked.
func TestDeadLetterCreatesTopic(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/dl-create"
	for _, dlt := range []string{"/default/dl-create-dlq", "/missing/dl-create-dlq"} {
		sub := "sub-" + strings.Split(dlt, "/")[1]
		pid := e.producer(topic, "p-"+sub, reliable)
		setPolicy(t, e, topic, sub, apb.SubscriptionPoisonPolicy_DeadLetter, strp(dlt))
		s := e.receive(e.subscribe(topic, sub, "c", pb.ConsumerRequest_Exclusive))
		e.send(topic, pid, 1, "poison", nil)
		for attempt := 1; attempt <= 3; attempt++ {
			e.nack(s.next(t), sub, nil, "")
		}
		e.send(topic, pid, 2, "after", nil)
		if dlt == "/missing/dl-create-dlq" {
			s.quiet(t) // no namespace, no topic: the message blocks the subscription
			continue
		}
		if m := s.next(t); string(m.GetPayload()) != "after" {
			t.Fatalf("got %q", m.GetPayload())
		}
		d, err := e.tAdm.DescribeTopic(ctx(t), &apb.DescribeTopicRequest{Name: dlt})
		if err != nil || d.GetDelivery() != "Reliable" {
			t.Fatalf("dead-letter topic: %v %v", d, err)
		}
	}
}

func TestNackDelayHonoured(t *testing.T) {
	cfg := fastConfig()
	cfg.RedeliveryMaxDelay = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/nackdelay"
	pid := e.producer(topic, "p", reliable)
	s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	e.send(topic, pid, 1, "m", nil)
	m := s.next(t)
	delay := uint64(300)
	start := time.Now()
	e.nack(m, "sub", &delay, "later")
	again := s.next(t)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("redelivered after %v, want >= 300ms", el)
	}
	if again.GetMsgId().GetTopicOffset() != m.GetMsgId().GetTopicOffset() {
		t.Fatalf("redelivered offset %d", again.GetMsgId().GetTopicOffset())
	}
}

func TestSharedDisconnectRedeliversToOthers(t *testing.T) {
	cfg := fastConfig()
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/shdis"
	pid := e.producer(topic, "p", reliable)
	aID := e.subscribe(topic, "sub", "a", pb.ConsumerRequest_Shared)
	a := e.receive(aID)
	e.send(topic, pid, 1, "m", nil)
	m := a.next(t)
	b := e.receive(e.subscribe(topic, "sub", "b", pb.ConsumerRequest_Shared))
	a.cancel() // a disconnects without acking
	again := b.next(t)
	if again.GetMsgId().GetTopicOffset() != m.GetMsgId().GetTopicOffset() {
		t.Fatalf("b got offset %d", again.GetMsgId().GetTopicOffset())
	}
	eventually(t, "a reported CLOSE", func() bool { return e.health(pb.HealthCheckRequest_Consumer, aID) == pb.HealthCheckResponse_CLOSE })
}

func TestExclusiveReconnectResumes(t *testing.T) {
	cfg := fastConfig()
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/exre"
	pid := e.producer(topic, "p", reliable)
	id := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	s := e.receive(id)
	e.send(topic, pid, 1, "m", nil)
	s.next(t)
	e.b.DropStream(id)
	wantCode(t, s.ended(t), codes.Unavailable, "stream dropped (fault injection)")
	// Only the same name may come back to a reliable Exclusive subscription.
	_, err := e.cons.Subscribe(ctx(t), &pb.ConsumerRequest{TopicName: topic, ConsumerName: "other", Subscription: "sub"})
	wantCode(t, err, codes.PermissionDenied, "")
	if again := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive); again != id {
		t.Fatalf("id %d, want %d", again, id)
	}
	m := e.receive(id).next(t)
	if m.GetMsgId().GetTopicOffset() != 0 {
		t.Fatalf("offset %d", m.GetMsgId().GetTopicOffset())
	}
}

func TestKeySharedReliableOwnerWaitThenEviction(t *testing.T) {
	cfg := fastConfig()
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/ks-evict"
	key := "order-42"
	pid, ids, streams, owner, other := keySharedPair(t, e, topic, key)
	e.send(topic, pid, 2, "second", &key) // in flight to the owner, never acked
	streams[owner].next(t)
	streams[owner].cancel() // the owner disconnects with the key in flight
	// After the eviction grace the key moves: the unacked message is redelivered to the other consumer.
	m := streams[other].next(t)
	if string(m.GetPayload()) != "second" || m.GetMsgId().GetTopicOffset() != 1 {
		t.Fatalf("other got %q offset %d", m.GetPayload(), m.GetMsgId().GetTopicOffset())
	}
	e.ack(m, "sub")
	if e.health(pb.HealthCheckRequest_Consumer, ids[owner]) != pb.HealthCheckResponse_CLOSE {
		t.Fatal("evicted consumer still healthy")
	}
	e.send(topic, pid, 3, "third", &key)
	if m := streams[other].next(t); string(m.GetPayload()) != "third" {
		t.Fatalf("got %q", m.GetPayload())
	}
}

// TestPolicyBeforeSubscription replays danube-broker's
// reliable_dispatch_failure_handling flow: the topic is created and the
// failure policy set through the admin API before anyone subscribes.
func TestPolicyBeforeSubscription(t *testing.T) {
	tests := []struct {
		poison apb.SubscriptionPoisonPolicy
		flows  bool
	}{
		{apb.SubscriptionPoisonPolicy_Block, false},
		{apb.SubscriptionPoisonPolicy_Drop, true},
	}
	for _, tc := range tests {
		t.Run(tc.poison.String(), func(t *testing.T) {
			e := startEnv(t, fastConfig())
			const topic = "/default/reliable_failure-1"
			if _, err := e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: topic, DispatchStrategy: apb.DispatchStrategy_Reliable}); err != nil {
				t.Fatal(err)
			}
			_, err := e.tAdm.SetSubscriptionFailurePolicy(ctx(t), &apb.SetSubscriptionFailurePolicyRequest{Topic: topic, Subscription: "sub",
				FailurePolicy: &apb.SubscriptionFailurePolicy{MaxRedeliveryCount: 0, AckTimeoutMs: 5000, BaseRedeliveryDelayMs: 50,
					MaxRedeliveryDelayMs: 50, BackoffStrategy: apb.SubscriptionBackoffStrategy_Fixed, PoisonPolicy: tc.poison}})
			if err != nil {
				t.Fatal(err)
			}
			pid := e.producer(topic, "p", reliable)
			s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
			e.send(topic, pid, 1, "poison", nil)
			zero := uint64(0)
			e.nack(s.next(t), "sub", &zero, "it")
			e.send(topic, pid, 2, "after", nil)
			if !tc.flows {
				s.quiet(t)
				return
			}
			if m := s.next(t); string(m.GetPayload()) != "after" {
				t.Fatalf("got %q", m.GetPayload())
			}
		})
	}
}
