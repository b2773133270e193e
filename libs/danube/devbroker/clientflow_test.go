package devbroker

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// These tests replay, at the gRPC level, the call sequences the official
// clients make in their own integration suites (danube-go integration_tests,
// danube-broker/tests): lookup-then-create, TopicPartitions-then-subscribe,
// round-robin queues and fan-out.

// officialCreate is what both clients do: look the topic up (ignoring
// NOT_FOUND), then CreateProducer, then health-check the id.
func (e *env) officialCreate(topic, name string, ds pb.DispatchStrategy) uint64 {
	e.t.Helper()
	_, err := e.disc.TopicLookup(ctx(e.t), &pb.TopicLookupRequest{RequestId: 1, Topic: topic})
	if err != nil {
		wantCode(e.t, err, codes.NotFound, "Unable to find the requested topic")
	}
	id := e.producer(topic, name, ds)
	if e.health(pb.HealthCheckRequest_Producer, id) != pb.HealthCheckResponse_OK {
		e.t.Fatalf("producer %d not healthy", id)
	}
	return id
}

// officialSubscribe resolves partitions on the service URL, then subscribes
// to each partition with the same consumer and subscription names.
func (e *env) officialSubscribe(topic, sub, name string, typ pb.ConsumerRequest_SubscriptionType) []*stream {
	e.t.Helper()
	parts, err := e.disc.TopicPartitions(ctx(e.t), &pb.TopicLookupRequest{RequestId: 1, Topic: topic})
	if err != nil || len(parts.GetPartitions()) == 0 {
		e.t.Fatalf("TopicPartitions(%s) = %v, %v", topic, parts, err)
	}
	var out []*stream
	for _, p := range parts.GetPartitions() {
		r, err := e.disc.TopicLookup(ctx(e.t), &pb.TopicLookupRequest{Topic: p})
		if err != nil || r.GetResponseType() != pb.TopicLookupResponse_Connect {
			e.t.Fatalf("lookup %s = %v, %v", p, r, err)
		}
		out = append(out, e.receive(e.subscribe(p, sub, name, typ)))
	}
	return out
}

func TestClientFlowPartitionedProducer(t *testing.T) {
	for _, typ := range []pb.ConsumerRequest_SubscriptionType{pb.ConsumerRequest_Exclusive, pb.ConsumerRequest_Shared} {
		t.Run(typ.String(), func(t *testing.T) {
			e := startEnv(t, fastConfig())
			const base = "/default/part_basic-1732"
			var pids []uint64
			for i := 0; i < 3; i++ {
				pids = append(pids, e.officialCreate(fmt.Sprintf("%s-part-%d", base, i), fmt.Sprintf("producer_part_basic-%d", i), nonReliable))
			}
			streams := e.officialSubscribe(base, "sub_part_basic", "cons_part_basic", typ)
			if len(streams) != 3 {
				t.Fatalf("%d partitions", len(streams))
			}
			for i := 0; i < 3; i++ { // round-robin: one message per partition
				part := fmt.Sprintf("%s-part-%d", base, i)
				e.send(part, pids[i], uint64(i+1), fmt.Sprint("Hello Danube ", i+1), nil)
				m := streams[i].next(t)
				if m.GetMsgId().GetTopicName() != part {
					t.Fatalf("message from %s on the stream of %s", m.GetMsgId().GetTopicName(), part)
				}
				e.ack(m, "sub_part_basic")
			}
		})
	}
}

func TestClientFlowSharedQueueExactRoundRobin(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/queue_shared-1"
	pid := e.officialCreate(topic, "producer_queue_shared", nonReliable)
	var streams []*stream
	for i := 0; i < 3; i++ {
		streams = append(streams, e.officialSubscribe(topic, "queue-shared-sub", fmt.Sprint("queue-cons-", i), pb.ConsumerRequest_Shared)...)
	}
	for i := 0; i < 36; i++ {
		e.send(topic, pid, uint64(i+1), fmt.Sprint("m", i), nil)
	}
	for c, s := range streams {
		for n := 0; n < 12; n++ {
			if m := s.next(t); string(m.GetPayload()) != fmt.Sprint("m", 3*n+c) {
				t.Fatalf("consumer %d got %q, want m%d", c, m.GetPayload(), 3*n+c)
			}
		}
	}
	for _, s := range streams {
		s.quiet(t)
	}
}

func TestClientFlowFanoutExclusive(t *testing.T) {
	e := startEnv(t, fastConfig())
	const topic = "/default/fanout_exclusive-1"
	pid := e.officialCreate(topic, "producer_fanout_exclusive", nonReliable)
	var streams []*stream
	for i := 0; i < 3; i++ {
		streams = append(streams, e.officialSubscribe(topic, fmt.Sprint("fanout-sub-", i), fmt.Sprint("fanout-cons-", i), pb.ConsumerRequest_Exclusive)...)
	}
	for i := 0; i < 24; i++ {
		e.send(topic, pid, uint64(i+1), fmt.Sprint("m", i), nil)
	}
	for c, s := range streams {
		for i := 0; i < 24; i++ {
			if m := s.next(t); string(m.GetPayload()) != fmt.Sprint("m", i) {
				t.Fatalf("consumer %d message %d = %q", c, i, m.GetPayload())
			}
		}
	}
}

func TestClientFlowReliableNackRedelivery(t *testing.T) {
	for _, typ := range []pb.ConsumerRequest_SubscriptionType{pb.ConsumerRequest_Exclusive, pb.ConsumerRequest_Shared} {
		t.Run(typ.String(), func(t *testing.T) {
			e := startEnv(t, fastConfig())
			const topic = "/default/reliable_nack-1"
			pid := e.officialCreate(topic, "producer_reliable_nack", reliable)
			s := e.officialSubscribe(topic, "rel_sub_nack", "cons_rel_nack", typ)[0]
			e.send(topic, pid, 1, "nack-redelivery-test", nil)
			first := s.next(t)
			zero := uint64(0)
			e.nack(first, "rel_sub_nack", &zero, "testing nack redelivery")
			again := s.next(t)
			if again.GetMsgId().GetTopicOffset() != first.GetMsgId().GetTopicOffset() || string(again.GetPayload()) != "nack-redelivery-test" {
				t.Fatalf("redelivered %v", again)
			}
			e.ack(again, "rel_sub_nack")
			s.quiet(t)
		})
	}
}

func TestClientFlowConsumerOnMissingTopic(t *testing.T) {
	e := startEnv(t, fastConfig())
	parts, err := e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{Topic: "/default/never-created"})
	if err != nil || len(parts.GetPartitions()) != 0 {
		t.Fatalf("TopicPartitions = %v, %v; clients fail locally on an empty list", parts, err)
	}
}
