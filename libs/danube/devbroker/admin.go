package devbroker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apb "github.com/danube-messaging/danube-connect-go/proto/adminpb"
)

// The admin port serves the subset of danube_admin that tests and local
// users need: namespaces, topics (plain and partitioned), subscriptions and
// their failure policy; plus the schema registry, as the real broker does.

type namespaceAdmin struct {
	apb.UnimplementedNamespaceAdminServer
	c *core
}

type topicAdmin struct {
	apb.UnimplementedTopicAdminServer
	c *core
}

type brokerAdmin struct {
	apb.UnimplementedBrokerAdminServer
	c *core
}

func registerAdminAPI(s *grpc.Server, c *core) {
	apb.RegisterNamespaceAdminServer(s, &namespaceAdmin{c: c})
	apb.RegisterTopicAdminServer(s, &topicAdmin{c: c})
	apb.RegisterBrokerAdminServer(s, &brokerAdmin{c: c})
	registerSchemaAPI(s, c)
}

func (a *brokerAdmin) ListNamespaces(context.Context, *apb.Empty) (*apb.NamespaceListResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &apb.NamespaceListResponse{}
	for ns := range c.namespaces {
		out.Namespaces = append(out.Namespaces, ns)
	}
	sort.Strings(out.Namespaces)
	return out, nil
}

func (a *brokerAdmin) ListBrokers(context.Context, *apb.Empty) (*apb.BrokerListResponse, error) {
	c := a.c
	return &apb.BrokerListResponse{Brokers: []*apb.BrokerInfo{{
		BrokerId: "1", BrokerAddr: c.url, BrokerRole: "Cluster_Leader", BrokerStatus: "active",
	}}}, nil
}

func (a *brokerAdmin) GetLeaderBroker(context.Context, *apb.Empty) (*apb.BrokerResponse, error) {
	return &apb.BrokerResponse{Leader: "1"}, nil
}

func validNamespace(ns string) bool {
	if ns == "" {
		return false
	}
	for _, r := range ns {
		if !(r == '_' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
			return false
		}
	}
	return true
}

// adminFailed is how v0.15.1 reports every failed admin create or delete: NOT_FOUND, whatever
// the cause, with the cause in the text.
func adminFailed(action, name string, cause error) error {
	return adminFailure(action, name, status.Convert(cause).Message())
}

// adminFailure is adminFailed with the cause as the broker words it.
func adminFailure(action, name, cause string) error {
	return status.Errorf(codes.NotFound, "Unable to %s %s due to %s", action, shortName(name), cause)
}

// checkDispatch rejects a dispatch strategy outside the enum, the one admin create failure v0.15.1
// reports as INVALID_ARGUMENT.
func checkDispatch(ds apb.DispatchStrategy) error {
	if ds != apb.DispatchStrategy_NonReliable && ds != apb.DispatchStrategy_Reliable {
		return status.Error(codes.InvalidArgument, "invalid dispatch_strategy value")
	}
	return nil
}

func (a *namespaceAdmin) CreateNamespace(_ context.Context, req *apb.NamespaceRequest) (*apb.NamespaceResponse, error) {
	c := a.c
	ns := req.GetName()
	if !validNamespace(ns) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid namespace name %q", ns)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.namespaces[ns]; ok {
		return nil, adminFailure("create the namespace", ns, fmt.Sprintf("Namespace %s already exists.", ns))
	}
	if err := c.persist(metaRec{Op: opNamespacePut, Name: ns}); err != nil {
		return nil, adminFailed("create the namespace", ns, errPersist(err))
	}
	c.namespaces[ns] = struct{}{}
	c.maybeCompact()
	return &apb.NamespaceResponse{Success: true}, nil
}

func (a *namespaceAdmin) DeleteNamespace(_ context.Context, req *apb.NamespaceRequest) (*apb.NamespaceResponse, error) {
	c := a.c
	ns := req.GetName()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.namespaces[ns]; !ok {
		return nil, adminFailure("delete the namespace", ns, fmt.Sprintf("Namespace %s does not exist", ns))
	}
	for _, t := range c.topics {
		if t.ns == ns {
			return nil, adminFailure("delete the namespace", ns, fmt.Sprintf("Namespace %s is not empty", ns))
		}
	}
	if err := c.persist(metaRec{Op: opNamespaceDel, Name: ns}); err != nil {
		return nil, adminFailed("delete the namespace", ns, errPersist(err))
	}
	delete(c.namespaces, ns)
	c.maybeCompact()
	return &apb.NamespaceResponse{Success: true}, nil
}

func (c *core) namespaceTopics(ns string) ([]*topic, error) {
	if _, ok := c.namespaces[ns]; !ok {
		return nil, status.Errorf(codes.NotFound, "Namespace %s does not exist", ns)
	}
	var out []*topic
	for _, t := range c.topics {
		if t.ns == ns {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (a *namespaceAdmin) GetNamespaceTopics(_ context.Context, req *apb.NamespaceRequest) (*apb.TopicListResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, err := c.namespaceTopics(req.GetName())
	if err != nil {
		return nil, err
	}
	out := &apb.TopicListResponse{Topics: []string{}}
	for _, t := range ts {
		out.Topics = append(out.Topics, t.name)
	}
	return out, nil
}

func (a *namespaceAdmin) GetNamespacePolicies(_ context.Context, req *apb.NamespaceRequest) (*apb.PolicyResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.namespaces[req.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "Namespace %s does not exist", req.GetName())
	}
	return &apb.PolicyResponse{Policies: `{"max_producers_per_topic":0,"max_subscriptions_per_topic":0,"max_consumers_per_topic":0,"max_consumers_per_subscription":0,"max_publish_rate":0,"max_dispatch_rate":0,"max_subscription_dispatch_rate":0,"max_message_size":10485760}`}, nil
}

func delivery(t *topic) string {
	if t.reliable {
		return "Reliable"
	}
	return "NonReliable"
}

func (a *topicAdmin) ListNamespaceTopics(_ context.Context, req *apb.NamespaceRequest) (*apb.TopicInfoListResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, err := c.namespaceTopics(req.GetName())
	if err != nil {
		return nil, err
	}
	out := &apb.TopicInfoListResponse{}
	for _, t := range ts {
		out.Topics = append(out.Topics, &apb.TopicInfo{Name: t.name, BrokerId: "1", Delivery: delivery(t)})
	}
	return out, nil
}

func (a *topicAdmin) ListBrokerTopics(context.Context, *apb.BrokerRequest) (*apb.TopicInfoListResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &apb.TopicInfoListResponse{}
	for _, t := range c.topics {
		out.Topics = append(out.Topics, &apb.TopicInfo{Name: t.name, BrokerId: "1", Delivery: delivery(t)})
	}
	sort.Slice(out.Topics, func(i, j int) bool { return out.Topics[i].Name < out.Topics[j].Name })
	return out, nil
}

func (c *core) adminCreateTopic(name string, subject *string, ds apb.DispatchStrategy) error {
	if err := checkTopicName(name); err != nil {
		return err
	}
	if subject != nil && c.schemas.Subject(*subject) == nil {
		return status.Errorf(codes.FailedPrecondition, "Schema subject %s is not registered. Ensure schema is registered first.", *subject)
	}
	t, err := c.createTopic(name, ds == apb.DispatchStrategy_Reliable)
	if err != nil {
		return err
	}
	if subject != nil {
		return c.setSchemaSubject(t, *subject)
	}
	return nil
}

func (a *topicAdmin) CreateTopic(_ context.Context, req *apb.NewTopicRequest) (*apb.TopicResponse, error) {
	c := a.c
	if err := checkDispatch(req.GetDispatchStrategy()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.adminCreateTopic(req.GetName(), req.SchemaSubject, req.GetDispatchStrategy()); err != nil {
		return nil, adminFailed("create the topic", req.GetName(), err)
	}
	return &apb.TopicResponse{Success: true}, nil
}

func (a *topicAdmin) CreatePartitionedTopic(_ context.Context, req *apb.PartitionedTopicRequest) (*apb.TopicResponse, error) {
	c := a.c
	if req.GetPartitions() == 0 {
		return nil, status.Error(codes.InvalidArgument, "partitions must be at least 1")
	}
	if err := checkDispatch(req.GetDispatchStrategy()); err != nil {
		return nil, err
	}
	// The longest partition name decides, so that no partition is created
	// before a later one is found too long.
	last := req.GetBaseName() + "-part-" + strconv.FormatUint(uint64(req.GetPartitions()-1), 10)
	if err := checkTopicName(req.GetBaseName()); err != nil {
		return nil, adminFailed("create the topic", req.GetBaseName(), err)
	}
	if err := checkTopicName(last); err != nil {
		return nil, adminFailed("create the topic", last, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[req.GetBaseName()]; ok {
		return nil, adminFailure("create the topic", req.GetBaseName(), fmt.Sprintf("The topic %s already exists", req.GetBaseName()))
	}
	for i := uint32(0); i < req.GetPartitions(); i++ {
		name := req.GetBaseName() + "-part-" + strconv.FormatUint(uint64(i), 10)
		if err := c.adminCreateTopic(name, req.SchemaSubject, req.GetDispatchStrategy()); err != nil {
			return nil, adminFailed("create the topic", name, err)
		}
	}
	return &apb.TopicResponse{Success: true}, nil
}

func (a *topicAdmin) DeleteTopic(_ context.Context, req *apb.TopicRequest) (*apb.TopicResponse, error) {
	c := a.c
	name := req.GetName()
	c.mu.Lock()
	defer c.mu.Unlock()
	var victims []string
	if _, ok := c.topics[name]; ok {
		if strings.Contains(name, "-part-") {
			return nil, adminFailure("delete the topic", name, fmt.Sprintf("Cannot delete a single partition %s; delete the partitioned topic", name))
		}
		victims = []string{name}
	} else {
		for other := range c.topics {
			if strings.HasPrefix(other, name+"-part-") {
				victims = append(victims, other)
			}
		}
	}
	if len(victims) == 0 {
		return &apb.TopicResponse{Success: true}, nil // as v0.15.1: nothing to delete is a success
	}
	for _, v := range victims {
		if err := c.persist(metaRec{Op: opTopicDel, Name: v}); err != nil {
			return nil, adminFailed("delete the topic", name, errPersist(err))
		}
		t := c.topics[v]
		for _, p := range t.producers {
			delete(c.producers, p.id)
		}
		for _, s := range t.subs {
			s.closeConsumers()
		}
		if t.log != nil {
			_ = t.log.Close()
			t.log = nil
		}
		delete(c.topics, v)
	}
	c.maybeCompact()
	return &apb.TopicResponse{Success: true}, nil
}

func (a *topicAdmin) ListSubscriptions(_ context.Context, req *apb.TopicRequest) (*apb.SubscriptionListResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[req.GetName()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "Unable to find the topic: %s", req.GetName())
	}
	out := &apb.SubscriptionListResponse{Subscriptions: []string{}}
	for name := range t.subs {
		out.Subscriptions = append(out.Subscriptions, name)
	}
	sort.Strings(out.Subscriptions)
	return out, nil
}

func (a *topicAdmin) Unsubscribe(_ context.Context, req *apb.SubscriptionRequest) (*apb.SubscriptionResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.findSubscription(req.GetTopic(), req.GetSubscription())
	if err == nil && s.anyActive() {
		err = lookupError("Unable to unsubscribe as the subscription " + s.name + " has active consumers")
	}
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "Unable to unsubscribe the subscription %s due to error: %v", req.GetSubscription(), err)
	}
	if err := c.persist(metaRec{Op: opSubDel, Name: s.topic.name, Sub: s.name}); err != nil {
		return nil, errPersist(err)
	}
	s.closeConsumers()
	delete(s.topic.subs, s.name)
	s.topic.trim()
	c.maybeCompact()
	return &apb.SubscriptionResponse{Success: true}, nil
}

func (a *topicAdmin) UnloadTopic(context.Context, *apb.TopicRequest) (*apb.TopicResponse, error) {
	return nil, status.Error(codes.Unimplemented, "topic unload not available in standalone/edge mode")
}

func (a *topicAdmin) DescribeTopic(ctx context.Context, req *apb.DescribeTopicRequest) (*apb.DescribeTopicResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[req.GetName()]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "Unable to find the topic: %s", req.GetName())
	}
	out := &apb.DescribeTopicResponse{Name: t.name, BrokerId: "1", Delivery: delivery(t), Subscriptions: []string{}}
	for name := range t.subs {
		out.Subscriptions = append(out.Subscriptions, name)
	}
	sort.Strings(out.Subscriptions)
	if err := sendStatsHeader(ctx, t, out.Subscriptions); err != nil {
		return nil, status.Errorf(codes.Internal, "subscription stats: %v", err)
	}
	if s := c.schemas.Subject(t.schemaSubject); s != nil {
		subj, id, mode := s.Name, s.ID, s.Compat
		out.SchemaSubject, out.SchemaId, out.CompatibilityMode = &subj, &id, &mode
		if l := s.Latest(); l != nil {
			v, typ := l.Version, l.Type
			out.SchemaVersion, out.SchemaType = &v, &typ
		}
	}
	return out, nil
}

// reliableTopic finds the topic a subscription setting applies to; like the
// real broker, settings are stored per (topic, subscription) whether or not
// the subscription exists yet, and apply when it is created.
func (c *core) reliableTopic(name string) (*topic, error) {
	t := c.topics[name]
	if t == nil || !t.reliable {
		return nil, status.Error(codes.FailedPrecondition, "subscription failure policy can only be configured for reliable topics")
	}
	return t, nil
}

func (a *topicAdmin) SetSubscriptionFailurePolicy(_ context.Context, req *apb.SetSubscriptionFailurePolicyRequest) (*apb.SubscriptionResponse, error) {
	c := a.c
	fp := req.GetFailurePolicy()
	if fp == nil {
		return nil, status.Error(codes.InvalidArgument, "failure_policy must be provided")
	}
	p := failurePolicy{
		MaxRedeliveryCount: int(fp.GetMaxRedeliveryCount()),
		AckTimeout:         time.Duration(fp.GetAckTimeoutMs()) * time.Millisecond,
		BaseDelay:          time.Duration(fp.GetBaseRedeliveryDelayMs()) * time.Millisecond,
		MaxDelay:           time.Duration(fp.GetMaxRedeliveryDelayMs()) * time.Millisecond,
		DeadLetterTopic:    fp.GetDeadLetterTopic(),
	}
	switch fp.GetBackoffStrategy() {
	case apb.SubscriptionBackoffStrategy_Fixed:
		p.Fixed = true
	case apb.SubscriptionBackoffStrategy_Exponential:
	default:
		return nil, status.Error(codes.InvalidArgument, "invalid backoff_strategy value")
	}
	switch fp.GetPoisonPolicy() {
	case apb.SubscriptionPoisonPolicy_Block:
		p.Poison = poisonBlock
	case apb.SubscriptionPoisonPolicy_Drop:
		p.Poison = poisonDrop
	case apb.SubscriptionPoisonPolicy_DeadLetter:
		if strings.TrimSpace(p.DeadLetterTopic) == "" { // as the real broker: checked here, not at the first poison message
			return nil, status.Error(codes.InvalidArgument, "dead_letter_topic must be configured when poison_policy is DeadLetter")
		}
		p.Poison = poisonDeadLetter
	default:
		return nil, status.Error(codes.InvalidArgument, "invalid poison_policy value")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.reliableTopic(req.GetTopic())
	if err != nil {
		return nil, err
	}
	if err := c.persist(metaRec{Op: opPolicy, Name: t.name, Sub: req.GetSubscription(), Policy: &p}); err != nil {
		return nil, errPersist(err)
	}
	// Stored only: as in v0.15.1, a live subscription keeps the policy it was loaded with until its
	// next load (a broker restart), and a new consumer joining writes that live policy back.
	t.policies[req.GetSubscription()] = p
	c.maybeCompact()
	return &apb.SubscriptionResponse{Success: true}, nil
}

func (a *topicAdmin) GetSubscriptionFailurePolicy(_ context.Context, req *apb.GetSubscriptionFailurePolicyRequest) (*apb.GetSubscriptionFailurePolicyResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &apb.GetSubscriptionFailurePolicyResponse{}
	t := c.topics[req.GetTopic()]
	if t == nil {
		return out, nil
	}
	if s := t.subs[req.GetSubscription()]; s != nil {
		out.SubscriptionType = int32(s.typ)
	}
	p, ok := t.policies[req.GetSubscription()]
	if !ok {
		// The real broker stores the effective policy when it creates a reliable subscription.
		s := t.subs[req.GetSubscription()]
		if s == nil || !t.reliable {
			return out, nil
		}
		p = s.policy
	}
	fp := &apb.SubscriptionFailurePolicy{
		MaxRedeliveryCount:    uint32(p.MaxRedeliveryCount),
		AckTimeoutMs:          uint64(p.AckTimeout / time.Millisecond),
		BaseRedeliveryDelayMs: uint64(p.BaseDelay / time.Millisecond),
		MaxRedeliveryDelayMs:  uint64(p.MaxDelay / time.Millisecond),
		BackoffStrategy:       apb.SubscriptionBackoffStrategy_Exponential,
	}
	if p.Fixed {
		fp.BackoffStrategy = apb.SubscriptionBackoffStrategy_Fixed
	}
	if p.DeadLetterTopic != "" {
		d := p.DeadLetterTopic
		fp.DeadLetterTopic = &d
	}
	switch p.Poison {
	case poisonDrop:
		fp.PoisonPolicy = apb.SubscriptionPoisonPolicy_Drop
	case poisonDeadLetter:
		fp.PoisonPolicy = apb.SubscriptionPoisonPolicy_DeadLetter
	default:
		fp.PoisonPolicy = apb.SubscriptionPoisonPolicy_Block
	}
	out.FailurePolicy = fp
	return out, nil
}

func (a *topicAdmin) SetSubscriptionDispatchConfig(_ context.Context, req *apb.SetSubscriptionDispatchConfigRequest) (*apb.SubscriptionResponse, error) {
	c := a.c
	cfg := req.GetDispatchConfig()
	if cfg == nil {
		return nil, status.Error(codes.InvalidArgument, "dispatch_config is required")
	}
	n := cfg.GetMaxUnackedMessages()
	if n < 1 || n > 10000 {
		return nil, status.Error(codes.InvalidArgument, "max_unacked_messages must be between 1 and 10000")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[req.GetTopic()]
	if t == nil {
		return nil, status.Errorf(codes.Internal, "Failed to set dispatch config: topic %s not found", req.GetTopic())
	}
	if err := c.persist(metaRec{Op: opDispatch, Name: t.name, Sub: req.GetSubscription(), MaxUnacked: int(n)}); err != nil {
		return nil, errPersist(err)
	}
	// Stored and returned, never applied: v0.15.1 dispatches every subscription with the broker's
	// default window (Config.MaxUnackedMessages).
	t.dispatchCfg[req.GetSubscription()] = int(n)
	c.maybeCompact()
	return &apb.SubscriptionResponse{Success: true}, nil
}

func (a *topicAdmin) GetSubscriptionDispatchConfig(_ context.Context, req *apb.GetSubscriptionDispatchConfigRequest) (*apb.GetSubscriptionDispatchConfigResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &apb.GetSubscriptionDispatchConfigResponse{}
	if t := c.topics[req.GetTopic()]; t != nil {
		if n, ok := t.dispatchCfg[req.GetSubscription()]; ok {
			out.DispatchConfig = &apb.SubscriptionDispatchConfig{MaxUnackedMessages: uint32(n)}
		}
	}
	return out, nil
}
