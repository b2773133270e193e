package devbroker

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

func TestAdminNamespacesAndTopics(t *testing.T) {
	e := startEnv(t, fastConfig())
	_, err := e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: "/orders/t", ProducerName: "p"})
	wantCode(t, err, codes.Unavailable, "Unable to find the namespace orders")
	if _, err := e.nsAdm.CreateNamespace(ctx(t), &apb.NamespaceRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.nsAdm.CreateNamespace(ctx(t), &apb.NamespaceRequest{Name: "orders"})
	wantCode(t, err, codes.NotFound, "Unable to create the namespace orders due to Namespace orders already exists.")
	e.producer("/orders/t", "p", nonReliable)

	if _, err := e.tAdm.CreatePartitionedTopic(ctx(t), &apb.PartitionedTopicRequest{BaseName: "/orders/parts", Partitions: 12, DispatchStrategy: apb.DispatchStrategy_Reliable}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: "/orders/single", DispatchStrategy: apb.DispatchStrategy_Reliable}); err != nil {
		t.Fatal(err)
	}
	_, err = e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: "/orders/single"})
	wantCode(t, err, codes.NotFound, "Unable to create the topic /orders/single due to The topic /orders/single already exists")

	parts, err := e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{RequestId: 4, Topic: "/orders/parts"})
	if err != nil || parts.GetRequestId() != 4 || len(parts.GetPartitions()) != 12 ||
		parts.GetPartitions()[0] != "/orders/parts-part-0" || parts.GetPartitions()[2] != "/orders/parts-part-10" {
		t.Fatalf("partitions %v %v", parts, err)
	}
	single, _ := e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{Topic: "/orders/single"})
	if !slices.Equal(single.GetPartitions(), []string{"/orders/single"}) {
		t.Fatalf("single %v", single.GetPartitions())
	}
	none, err := e.disc.TopicPartitions(ctx(t), &pb.TopicLookupRequest{Topic: "/orders/zzz"})
	if err != nil || len(none.GetPartitions()) != 0 {
		t.Fatalf("none %v %v", none, err)
	}
	// A default (non-reliable) producer cannot attach to a reliable partition.
	_, err = e.prod.CreateProducer(ctx(t), &pb.ProducerRequest{TopicName: "/orders/parts-part-3", ProducerName: "p-3"})
	wantCode(t, err, codes.FailedPrecondition, "Producer requested dispatch strategy does not match topic strategy")

	list, err := e.tAdm.ListNamespaceTopics(ctx(t), &apb.NamespaceRequest{Name: "orders"})
	if err != nil || len(list.GetTopics()) != 14 || list.GetTopics()[0].GetDelivery() != "Reliable" {
		t.Fatalf("list %v %v", list, err)
	}
	names, err := e.nsAdm.GetNamespaceTopics(ctx(t), &apb.NamespaceRequest{Name: "orders"})
	if err != nil || !slices.Contains(names.GetTopics(), "/orders/t") {
		t.Fatalf("names %v %v", names, err)
	}
	_, err = e.tAdm.SetSubscriptionFailurePolicy(ctx(t), &apb.SetSubscriptionFailurePolicyRequest{Topic: "/orders/t", Subscription: "s",
		FailurePolicy: &apb.SubscriptionFailurePolicy{PoisonPolicy: apb.SubscriptionPoisonPolicy_Drop}})
	wantCode(t, err, codes.FailedPrecondition, "subscription failure policy can only be configured for reliable topics")
	_, err = e.tAdm.SetSubscriptionFailurePolicy(ctx(t), &apb.SetSubscriptionFailurePolicyRequest{Topic: "/orders/single", Subscription: "s"})
	wantCode(t, err, codes.InvalidArgument, "failure_policy must be provided")
	_, err = e.tAdm.SetSubscriptionFailurePolicy(ctx(t), &apb.SetSubscriptionFailurePolicyRequest{Topic: "/orders/single", Subscription: "s",
		FailurePolicy: &apb.SubscriptionFailurePolicy{PoisonPolicy: 9}})
	wantCode(t, err, codes.InvalidArgument, "invalid poison_policy value")
	unset, err := e.tAdm.GetSubscriptionFailurePolicy(ctx(t), &apb.GetSubscriptionFailurePolicyRequest{Topic: "/orders/single", Subscription: "s"})
	if err != nil || unset.FailurePolicy != nil {
		t.Fatalf("unset policy = %v, %v", unset, err)
	}
	setPolicy(t, e, "/orders/single", "s", apb.SubscriptionPoisonPolicy_Drop, nil) // before the subscription exists
	e.subscribe("/orders/single", "s", "c", pb.ConsumerRequest_Shared)
	got, err := e.tAdm.GetSubscriptionFailurePolicy(ctx(t), &apb.GetSubscriptionFailurePolicyRequest{Topic: "/orders/single", Subscription: "s"})
	if err != nil || got.GetFailurePolicy().GetPoisonPolicy() != apb.SubscriptionPoisonPolicy_Drop || got.GetFailurePolicy().GetMaxRedeliveryCount() != 2 ||
		got.GetSubscriptionType() != int32(pb.ConsumerRequest_Shared) {
		t.Fatalf("policy %v %v", got, err)
	}
}

func TestAdminDispatchConfigAndUnsubscribe(t *testing.T) {
	e := startEnv(t, fastConfig())
	if _, err := e.tAdm.CreateTopic(ctx(t), &apb.NewTopicRequest{Name: "/default/dc", DispatchStrategy: apb.DispatchStrategy_Reliable}); err != nil {
		t.Fatal(err)
	}
	_, err := e.tAdm.SetSubscriptionDispatchConfig(ctx(t), &apb.SetSubscriptionDispatchConfigRequest{Topic: "/default/dc", Subscription: "s",
		DispatchConfig: &apb.SubscriptionDispatchConfig{MaxUnackedMessages: 0}})
	wantCode(t, err, codes.InvalidArgument, "max_unacked_messages must be between 1 and 10000")
	if _, err := e.tAdm.SetSubscriptionDispatchConfig(ctx(t), &apb.SetSubscriptionDispatchConfigRequest{Topic: "/default/dc", Subscription: "s",
		DispatchConfig: &apb.SubscriptionDispatchConfig{MaxUnackedMessages: 1}}); err != nil {
		t.Fatal(err)
	}
	pid := e.producer("/default/dc", "p", reliable)
	cid := e.subscribe("/default/dc", "s", "c", pb.ConsumerRequest_Exclusive)
	s := e.receive(cid)
	e.send("/default/dc", pid, 1, "a", nil)
	e.send("/default/dc", pid, 2, "b", nil)
	// Stored, not applied (as on v0.15.1): the broker's default window of 10 lets both through.
	if a, b := s.next(t), s.next(t); string(a.GetPayload()) != "a" || string(b.GetPayload()) != "b" {
		t.Fatalf("got %q, %q", a.GetPayload(), b.GetPayload())
	}
	got, err := e.tAdm.GetSubscriptionDispatchConfig(ctx(t), &apb.GetSubscriptionDispatchConfigRequest{Topic: "/default/dc", Subscription: "s"})
	if err != nil || got.GetDispatchConfig().GetMaxUnackedMessages() != 1 {
		t.Fatalf("dispatch config %v %v", got, err)
	}

	_, err = e.tAdm.Unsubscribe(ctx(t), &apb.SubscriptionRequest{Topic: "/default/dc", Subscription: "s"})
	wantCode(t, err, codes.NotFound, "Unable to unsubscribe the subscription s due to error: Unable to unsubscribe as the subscription s has active consumers")
	s.cancel()
	eventually(t, "consumer inactive", func() bool { return e.health(pb.HealthCheckRequest_Consumer, cid) == pb.HealthCheckResponse_CLOSE })
	if _, err := e.tAdm.Unsubscribe(ctx(t), &apb.SubscriptionRequest{Topic: "/default/dc", Subscription: "s"}); err != nil {
		t.Fatal(err)
	}
	subs, err := e.tAdm.ListSubscriptions(ctx(t), &apb.TopicRequest{Name: "/default/dc"})
	if err != nil || len(subs.GetSubscriptions()) != 0 {
		t.Fatalf("subscriptions %v %v", subs, err)
	}
	_, err = e.tAdm.UnloadTopic(ctx(t), &apb.TopicRequest{Name: "/default/dc"})
	wantCode(t, err, codes.Unimplemented, "topic unload not available in standalone/edge mode")
}

// As the real v0.15.1 broker: poison policy DeadLetter without a dead-letter topic is refused when
// it is set, not discovered at the first poison message.
func TestDeadLetterPolicyNeedsItsTopic(t *testing.T) {
	e := startEnv(t, fastConfig())
	_, err := e.tAdm.SetSubscriptionFailurePolicy(ctx(t), &apb.SetSubscriptionFailurePolicyRequest{Topic: "/default/dl", Subscription: "s",
		FailurePolicy: &apb.SubscriptionFailurePolicy{MaxRedeliveryCount: 3, PoisonPolicy: apb.SubscriptionPoisonPolicy_DeadLetter}})
	wantCode(t, err, codes.InvalidArgument, "dead_letter_topic must be configured when poison_policy is DeadLetter")
}

// As the real v0.15.1 broker, a reliable subscription nobody configured reports the policy it runs
// on (the defaults), not none.
func TestFailurePolicyDefaultsReported(t *testing.T) {
	e := startEnv(t, fastConfig())
	e.producer("/default/defaults", "p", pb.DispatchStrategy_Reliable)
	e.subscribe("/default/defaults", "s", "c", pb.ConsumerRequest_Exclusive)
	got, err := e.tAdm.GetSubscriptionFailurePolicy(ctx(t), &apb.GetSubscriptionFailurePolicyRequest{Topic: "/default/defaults", Subscription: "s"})
	fp := got.GetFailurePolicy()
	if err != nil || fp == nil || fp.GetPoisonPolicy() != apb.SubscriptionPoisonPolicy_Block || fp.GetMaxRedeliveryCount() != 5 || fp.GetAckTimeoutMs() != uint64(fastConfig().AckTimeout.Milliseconds()) {
		t.Fatalf("policy %v %v", got, err)
	}
}
