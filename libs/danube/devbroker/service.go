package devbroker

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker/internal/wal"
	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// clientAPI implements the services of the client port. Each method takes the
// core lock for its whole duration; see core.
type clientAPI struct {
	pb.UnimplementedProducerServiceServer
	c *core
}

type consumerAPI struct {
	pb.UnimplementedConsumerServiceServer
	c *core
}

type discoveryAPI struct {
	pb.UnimplementedDiscoveryServer
	c *core
}

type healthAPI struct {
	pb.UnimplementedHealthCheckServer
	c *core
}

type storageAPI struct {
	pb.UnimplementedStorageServiceServer
}

func (storageAPI) ListSegmentDescriptors(context.Context, *pb.ListSegmentDescriptorsRequest) (*pb.ListSegmentDescriptorsResponse, error) {
	// The development broker never seals segments to durable storage.
	return &pb.ListSegmentDescriptorsResponse{}, nil
}

func registerClientAPI(s *grpc.Server, c *core) {
	pb.RegisterProducerServiceServer(s, &clientAPI{c: c})
	pb.RegisterConsumerServiceServer(s, &consumerAPI{c: c})
	pb.RegisterDiscoveryServer(s, &discoveryAPI{c: c})
	pb.RegisterHealthCheckServer(s, &healthAPI{c: c})
	pb.RegisterStorageServiceServer(s, storageAPI{})
	registerSchemaAPI(s, c)
}

var errServedElsewhere = status.Error(codes.Unavailable,
	"The topic exists but is served by another broker, redo the Lookup request")

// servedHere checks what CreateProducer and Subscribe check first: a valid
// topic name, and a topic not redirected to another broker.
func (c *core) servedHere(name string) error {
	if err := checkTopicName(name); err != nil {
		return err
	}
	if _, ok := c.faults.redirect(name); ok {
		return errServedElsewhere
	}
	return nil
}

func (a *clientAPI) CreateProducer(_ context.Context, req *pb.ProducerRequest) (*pb.ProducerResponse, error) {
	c := a.c
	name := req.GetTopicName()
	if err := c.servedHere(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ds := req.GetDispatchStrategy()
	t := c.topics[name]
	if t == nil {
		if ds != pb.DispatchStrategy_NonReliable && ds != pb.DispatchStrategy_Reliable {
			return nil, status.Error(codes.InvalidArgument, "Dispatch strategy is missing")
		}
		var err error
		if t, err = c.createTopic(name, ds == pb.DispatchStrategy_Reliable); err != nil {
			return nil, err
		}
		if ref := req.GetSchemaRef(); ref != nil {
			// v0.15.1 records a new topic's subject without checking it is registered, and the
			// topic it loads has no schema when it is not: the producer is created all the same.
			if c.schemas.Subject(ref.GetSubject()) == nil {
				c.log.Warn("schema subject not registered; topic created without a schema", "topic", name, "subject", ref.GetSubject())
			} else if err := c.setSchemaSubject(t, ref.GetSubject()); err != nil {
				return nil, err
			}
		}
		if c.faults.clusterMode() {
			return nil, status.Error(codes.Unavailable,
				"The topic metadata was created, need to redo the lookup to find the correct broker")
		}
	} else {
		// An unknown strategy value is "not requested" upstream: no mismatch check.
		known := ds == pb.DispatchStrategy_NonReliable || ds == pb.DispatchStrategy_Reliable
		if known && (ds == pb.DispatchStrategy_Reliable) != t.reliable {
			return nil, status.Error(codes.FailedPrecondition,
				"Producer requested dispatch strategy does not match topic strategy")
		}
		if ref := req.GetSchemaRef(); ref != nil {
			subj := ref.GetSubject()
			switch {
			case t.schemaSubject != "" && t.schemaSubject != subj:
				return nil, status.Errorf(codes.FailedPrecondition,
					"Topic '%s' uses schema subject '%s', cannot use '%s'. Only admin can change topic schema.",
					name, t.schemaSubject, subj)
			case t.schemaSubject == "":
				if c.schemas.Subject(subj) == nil {
					return nil, status.Errorf(codes.FailedPrecondition,
						"Failed to assign schema '%s' to topic '%s': subject not found. Ensure schema is registered first.",
						subj, name)
				}
				if err := c.setSchemaSubject(t, subj); err != nil {
					return nil, err
				}
			}
		}
	}
	pname := req.GetProducerName()
	if p := t.producers[pname]; p != nil {
		p.closed = false
		return &pb.ProducerResponse{RequestId: req.GetRequestId(), ProducerId: p.id, ProducerName: pname}, nil
	}
	p := &producer{id: c.newID(), name: pname, topic: t}
	t.producers[pname] = p
	c.producers[p.id] = p
	c.log.Debug("producer created", "topic", name, "producer", pname, "id", p.id)
	return &pb.ProducerResponse{RequestId: req.GetRequestId(), ProducerId: p.id, ProducerName: pname}, nil
}

func (a *clientAPI) SendMessage(_ context.Context, m *pb.StreamMessage) (*pb.MessageResponse, error) {
	if m.GetMsgId() == nil {
		return nil, status.Error(codes.Internal, "msg_id is required")
	}
	log, next, err := a.c.send(m)
	if err != nil {
		return nil, err
	}
	// The fsync runs outside the broker lock, so producers sending meanwhile
	// share the next one instead of queueing behind this one.
	if log != nil {
		if err := log.SyncThrough(next); err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "Unable to publish the message: %v", err)
		}
	}
	return &pb.MessageResponse{RequestId: m.GetRequestId()}, nil
}

// send publishes m and returns the log SendMessage must sync through next
// before it reports success; log is nil when nothing was written to disk.
func (c *core) send(m *pb.StreamMessage) (log *wal.Log, next uint64, err error) {
	id := m.GetMsgId()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.producers[id.GetProducerId()]
	if p == nil {
		return nil, 0, status.Errorf(codes.NotFound, "The producer with id %d does not exist", id.GetProducerId())
	}
	if len(m.GetPayload()) > maxMessageSize {
		return nil, 0, status.Errorf(codes.InvalidArgument,
			"message size %d exceeds max_message_size %d", len(m.GetPayload()), maxMessageSize)
	}
	t := c.topics[id.GetTopicName()]
	switch {
	case t == nil:
		return nil, 0, status.Errorf(codes.PermissionDenied,
			"Unable to publish the message: topic %s not found on this broker", id.GetTopicName())
	case p.topic != t:
		return nil, 0, status.Errorf(codes.PermissionDenied,
			"Unable to publish the message: producer %d is not attached to topic %s", p.id, t.name)
	}
	if err := c.validateMessage(t, m); err != nil {
		return nil, 0, status.Errorf(codes.PermissionDenied, "Unable to publish the message: %v", err)
	}
	if err := c.publish(t, m); err != nil {
		return nil, 0, status.Errorf(codes.PermissionDenied, "Unable to publish the message: %v", err)
	}
	if t.reliable && t.log != nil {
		return t.log, t.next(), nil
	}
	return nil, 0, nil
}

func (a *consumerAPI) Subscribe(_ context.Context, req *pb.ConsumerRequest) (*pb.ConsumerResponse, error) {
	c := a.c
	name := req.GetTopicName()
	if err := c.servedHere(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[name]
	if t == nil {
		return nil, status.Errorf(codes.NotFound, "Unable to find the topic: %s", name)
	}
	now := time.Now()
	subName := req.GetSubscription()
	s := t.subs[subName]
	if s != nil {
		if z := s.evicted[req.GetConsumerName()]; z != nil {
			// The evicted name gets its old id back, attached and healthy, and no keys (v0.15.1).
			z.endSession(nil)
			z.active = true
			return &pb.ConsumerResponse{RequestId: req.GetRequestId(), ConsumerId: z.id, ConsumerName: z.name}, nil
		}
		for _, cons := range s.consumers {
			if cons.name == req.GetConsumerName() {
				// Same-name reattach: take over the stream and reset its pending state.
				cons.endSession(nil)
				cons.active = true
				cons.forced = false
				s.release(cons, now)
				return &pb.ConsumerResponse{RequestId: req.GetRequestId(), ConsumerId: cons.id, ConsumerName: cons.name}, nil
			}
		}
	}
	if s == nil {
		typ := req.GetSubscriptionType()
		if typ < pb.ConsumerRequest_Exclusive || typ > pb.ConsumerRequest_KeyShared {
			return nil, status.Errorf(codes.PermissionDenied,
				"Not able to subscribe to the topic %s due to unknown subscription type %d", name, typ)
		}
		sm := &subMeta{Name: subName, Type: int32(typ)}
		if t.reliable {
			sm.Cursor = t.next() // where newSubscription starts it
		}
		if err := c.persist(metaRec{Op: opSubPut, Name: t.name, Subscr: sm}); err != nil {
			return nil, errPersist(err)
		}
		s = c.newSubscription(t, subName, typ)
		c.maybeCompact()
	}
	if s.typ == pb.ConsumerRequest_Exclusive && len(s.consumers) > 0 {
		return nil, status.Errorf(codes.PermissionDenied,
			"Not able to subscribe to the topic %s due to Exclusive subscription can't be shared", name)
	}
	cons := &consumer{
		id:      c.newID(),
		name:    req.GetConsumerName(),
		sub:     s,
		filters: append([]string(nil), req.GetKeyFilters()...),
		active:  true,
		notify:  make(chan struct{}, 1),
	}
	if t.reliable {
		// v0.15.1 writes the live subscription's policy back on every new consumer, undoing an
		// admin change made since the subscription was loaded.
		if err := c.persist(metaRec{Op: opPolicy, Name: t.name, Sub: subName, Policy: &s.policy}); err != nil {
			return nil, errPersist(err)
		}
		t.policies[subName] = s.policy
		c.maybeCompact()
	}
	s.addConsumer(cons)
	c.consumers[cons.id] = cons
	s.dispatch(now)
	c.log.Debug("consumer subscribed", "topic", name, "subscription", subName, "consumer", cons.name, "id", cons.id)
	return &pb.ConsumerResponse{RequestId: req.GetRequestId(), ConsumerId: cons.id, ConsumerName: cons.name}, nil
}

func (c *core) newSubscription(t *topic, name string, typ pb.ConsumerRequest_SubscriptionType) *subscription {
	s := &subscription{core: c, name: name, typ: typ, topic: t}
	if t.reliable {
		s.window = newWindow(typ == pb.ConsumerRequest_KeyShared)
		s.ackFloor = t.next()
		s.next = s.ackFloor
		s.live = s.next
		s.policy = c.defaultPolicy()
		if p, ok := t.policies[name]; ok {
			s.policy = p
		}
		s.maxUnacked = c.cfg.MaxUnackedMessages
	}
	t.subs[name] = s
	return s
}

func (c *core) defaultPolicy() failurePolicy {
	return failurePolicy{
		MaxRedeliveryCount: c.cfg.MaxRedeliveryCount,
		AckTimeout:         c.cfg.AckTimeout,
		BaseDelay:          c.cfg.RedeliveryBaseDelay,
		MaxDelay:           c.cfg.RedeliveryMaxDelay,
		Poison:             poisonBlock,
	}
}

func (a *consumerAPI) ReceiveMessages(req *pb.ReceiveRequest, stream grpc.ServerStreamingServer[pb.StreamMessage]) error {
	c := a.c
	c.mu.Lock()
	cons := c.consumers[req.GetConsumerId()]
	if cons == nil || c.closed {
		c.mu.Unlock()
		return status.Errorf(codes.NotFound, "The consumer with the id %d does not exist", req.GetConsumerId())
	}
	cons.endSession(nil) // takeover
	sess := &session{done: make(chan struct{})}
	cons.sess = sess
	wasActive := cons.active
	cons.active = true
	cons.forced = false
	if !wasActive {
		if cons.sub.window != nil {
			cons.sub.dispatch(time.Now())
		}
	}
	c.mu.Unlock()
	// Like the real broker, answer with the response headers at once: a client knows its stream is
	// attached (and that a Close will detach it) without waiting for a first message.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		c.detach(cons, sess)
		return err
	}

	ctx := stream.Context()
	// The queue and spare swap arrays, so steady delivery allocates no queue:
	// the consumer's queue is never the array being sent.
	var spare []*pb.StreamMessage
	for {
		c.mu.Lock()
		if cons.sess != sess {
			c.mu.Unlock()
			<-sess.done
			return sess.err
		}
		batch := cons.queue
		cons.queue = spare[:0]
		c.mu.Unlock()
		for _, m := range batch {
			if err := stream.Send(m); err != nil {
				c.detach(cons, sess)
				return err
			}
		}
		clear(batch) // drop references to sent messages
		spare = batch
		select {
		case <-cons.notify:
		case <-sess.done:
			return sess.err
		case <-ctx.Done():
			c.detach(cons, sess)
			return ctx.Err()
		}
	}
}

// detach marks a consumer inactive after its stream went away, unless a newer
// stream already took it over.
func (c *core) detach(cons *consumer, sess *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cons.sess != sess {
		return
	}
	cons.sess = nil
	cons.active = false
	cons.sub.release(cons, time.Now())
}

func (a *consumerAPI) Ack(_ context.Context, req *pb.AckRequest) (*pb.AckResponse, error) {
	c := a.c
	id := req.GetMsgId()
	if id == nil {
		return nil, status.Error(codes.Internal, "Error acknowledging message: msg_id is required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.findSubscription(id.GetTopicName(), req.GetSubscriptionName())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "Error acknowledging message: %v", err)
	}
	s.ack(id.GetTopicOffset(), time.Now())
	return &pb.AckResponse{RequestId: req.GetRequestId()}, nil
}

func (a *consumerAPI) Nack(_ context.Context, req *pb.NackRequest) (*pb.NackResponse, error) {
	c := a.c
	id := req.GetMsgId()
	if id == nil {
		return nil, status.Error(codes.Internal, "Error negatively acknowledging message: msg_id is required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.findSubscription(id.GetTopicName(), req.GetSubscriptionName())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "Error negatively acknowledging message: %v", err)
	}
	s.nack(id.GetTopicOffset(), time.Now(), time.Duration(req.GetDelayMs())*time.Millisecond, req.GetReason())
	return &pb.NackResponse{RequestId: req.GetRequestId()}, nil
}

type lookupError string

func (e lookupError) Error() string { return string(e) }

func (c *core) findSubscription(topicName, sub string) (*subscription, error) {
	t := c.topics[topicName]
	if t == nil {
		return nil, lookupError("topic " + topicName + " not found on this broker")
	}
	s := t.subs[sub]
	if s == nil {
		return nil, lookupError("subscription " + sub + " not found on topic " + topicName)
	}
	return s, nil
}

func (a *discoveryAPI) TopicLookup(_ context.Context, req *pb.TopicLookupRequest) (*pb.TopicLookupResponse, error) {
	c := a.c
	name := req.GetTopic()
	if err := checkTopicName(name); err != nil {
		return nil, err
	}
	if url, ok := c.faults.redirect(name); ok {
		return &pb.TopicLookupResponse{
			RequestId:    req.GetRequestId(),
			ResponseType: pb.TopicLookupResponse_Redirect,
			BrokerUrl:    url,
			ConnectUrl:   url,
		}, nil
	}
	c.mu.Lock()
	_, ok := c.topics[name]
	c.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.NotFound, "Unable to find the requested topic")
	}
	return &pb.TopicLookupResponse{
		RequestId:    req.GetRequestId(),
		ResponseType: pb.TopicLookupResponse_Connect,
		BrokerUrl:    c.url,
		ConnectUrl:   c.connectURL,
		Proxy:        c.url != c.connectURL,
	}, nil
}

func (a *discoveryAPI) TopicPartitions(_ context.Context, req *pb.TopicLookupRequest) (*pb.TopicPartitionsResponse, error) {
	c := a.c
	name := req.GetTopic()
	if err := checkTopicName(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &pb.TopicPartitionsResponse{RequestId: req.GetRequestId(), Partitions: c.partitions(name)}, nil
}

func (a *healthAPI) HealthCheck(_ context.Context, req *pb.HealthCheckRequest) (*pb.HealthCheckResponse, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := false
	switch req.GetClient() {
	case pb.HealthCheckRequest_Producer:
		p := c.producers[req.GetId()]
		ok = p != nil && !p.closed
	case pb.HealthCheckRequest_Consumer:
		cons := c.consumers[req.GetId()]
		ok = cons != nil && cons.active && !cons.forced
	default:
		return nil, status.Error(codes.InvalidArgument, "Invalid client type")
	}
	if ok {
		return &pb.HealthCheckResponse{Status: pb.HealthCheckResponse_OK}, nil
	}
	return &pb.HealthCheckResponse{Status: pb.HealthCheckResponse_CLOSE}, nil
}
