package danube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

const defaultReceiveBuffer = 100

// ConsumerOptions describe a consumer.
type ConsumerOptions struct {
	Topic        string           // base topic; partitions are discovered via TopicPartitions
	Name         string           // consumer name (required): unique within the subscription, since two live consumers with one name take the stream from each other
	Subscription string           // required
	Type         SubscriptionType // zero value is Exclusive (wire value 0); set it explicitly
	KeyFilters   []string         // KeyShared only: glob patterns (* and ?) of routing keys to receive
	Buffer       int              // receive channel size; 0 = 100
}

// Message is a message received from Danube.
type Message struct {
	Topic         string // exact (partition) topic, msg_id.topic_name
	Offset        uint64 // msg_id.topic_offset (reliable topics; 0 otherwise)
	ProducerID    uint64
	ProducerName  string
	BrokerAddr    string
	RequestID     uint64
	Payload       []byte
	Attributes    map[string]string
	Key           string    // routing_key ("" when absent)
	PublishTime   time.Time // from publish_time (ms since epoch)
	SchemaID      *uint64
	SchemaVersion *uint32

	msgID     *danubepb.MsgID // echoed unchanged in Ack/Nack
	partition string          // the subscribed topic that delivered it: where Ack/Nack go
}

// ID identifies m in logs: "topic:/ns/t-part-0/producer:7/offset:42".
func (m *Message) ID() string {
	b := make([]byte, 0, len(m.Topic)+40)
	b = append(b, "topic:"...)
	b = append(b, m.Topic...)
	b = append(b, "/producer:"...)
	b = strconv.AppendUint(b, m.ProducerID, 10)
	b = append(b, "/offset:"...)
	b = strconv.AppendUint(b, m.Offset, 10)
	return string(b)
}

// Consumer receives from every partition of a topic through one channel. It
// resubscribes by itself when the broker closes it, its stream ends, or the
// broker forgets it, and keeps trying until closed.
type Consumer struct {
	c     *Client
	opts  ConsumerOptions
	msgs  chan *Message
	parts map[string]*partitionConsumer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
}

// partitionConsumer is the subscription on one exact topic.
type partitionConsumer struct {
	cons  *Consumer
	topic string

	mu     sync.Mutex
	broker broker
	id     uint64
	reqID  uint64

	attached   chan struct{} // closed once a stream is open on the broker
	attachOnce sync.Once
}

// errBrokerClose is the cause of a stream cancelled by a health-check CLOSE.
var errBrokerClose = errors.New("health check CLOSE")

// Subscribe discovers the topic's partitions and subscribes to each before
// returning; receiving starts at once.
func (c *Client) Subscribe(ctx context.Context, o ConsumerOptions) (*Consumer, error) {
	if err := validTopic("ConsumerOptions.Topic", o.Topic); err != nil {
		return nil, err
	}
	if o.Name == "" {
		return nil, errors.New("danube: ConsumerOptions.Name is required")
	}
	if o.Subscription == "" {
		return nil, errors.New("danube: ConsumerOptions.Subscription is required")
	}
	if o.Type < Exclusive || o.Type > KeyShared {
		return nil, fmt.Errorf("danube: ConsumerOptions.Type = %d, want Exclusive, Shared, Failover or KeyShared", int(o.Type))
	}
	if o.Buffer < 0 {
		return nil, fmt.Errorf("danube: ConsumerOptions.Buffer = %d, want >= 0", o.Buffer)
	}
	if o.Buffer == 0 {
		o.Buffer = defaultReceiveBuffer
	}
	topics, err := c.partitions(ctx, o.Topic)
	if err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("danube: subscribe to topic %q: %w", o.Topic, status.Error(codes.NotFound, "topic has no partitions"))
	}
	cctx, cancel := context.WithCancel(context.Background())
	cons := &Consumer{c: c, opts: o, msgs: make(chan *Message, o.Buffer), parts: make(map[string]*partitionConsumer, len(topics)), ctx: cctx, cancel: cancel}
	for _, t := range topics {
		pc := &partitionConsumer{cons: cons, topic: t, attached: make(chan struct{})}
		err := c.retry(ctx, "Subscribe", t, func() error { return pc.subscribe(ctx) })
		if err != nil {
			cancel()
			return nil, err
		}
		cons.parts[t] = pc
	}
	for _, pc := range cons.parts {
		cons.wg.Add(1)
		go pc.run()
	}
	// Return only once every stream is open: a consumer that subscribed but never streamed still
	// counts as attached on the broker, which then dispatches to it, times its messages out and
	// spends their delivery attempts, and Close could not detach it.
	wait, stop := context.WithTimeout(ctx, attachTimeout)
	defer stop()
	for _, pc := range cons.parts {
		select {
		case <-pc.attached:
		case <-wait.Done():
			_ = cons.Close()
			return nil, fmt.Errorf("danube: subscribe to topic %q: the message stream of %s did not open: %w", o.Topic, pc.topic, wait.Err())
		}
	}
	return cons, nil
}

// attachTimeout bounds how long Subscribe waits for the message streams to open.
const attachTimeout = 30 * time.Second

// Messages returns the channel every partition delivers to. It is closed by
// Close.
func (c *Consumer) Messages() <-chan *Message { return c.msgs }

// Topics returns the exact topics the consumer is subscribed to, sorted.
func (c *Consumer) Topics() []string {
	out := make([]string, 0, len(c.parts))
	for t := range c.parts {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Close cancels every stream and health check, waits for all of the
// consumer's goroutines to exit, and closes Messages(). Messages still
// buffered are dropped; unacked reliable messages are redelivered by the
// broker.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		close(c.msgs)
	})
	return nil
}

// Closed reports whether Close was called: the consumer's Ack and Nack then fail with ErrClosed.
func (c *Consumer) Closed() bool { return c.ctx.Err() != nil }

// Ack acknowledges m on its partition's broker.
func (c *Consumer) Ack(ctx context.Context, m *Message) error {
	pc, err := c.partitionOf(m)
	if err == nil {
		err = c.c.retry(ctx, "Ack", m.Topic, func() error {
			b, cc, err := pc.conn()
			if err != nil {
				return err
			}
			_, err = danubepb.NewConsumerServiceClient(cc).Ack(rpcCtx(ctx, b), &danubepb.AckRequest{
				RequestId: m.RequestID, MsgId: m.msgID, SubscriptionName: c.opts.Subscription,
			})
			return err
		})
		if err != nil {
			err = fmt.Errorf("danube: ack offset %d on topic %q: %w", m.Offset, m.Topic, err)
		}
	}
	c.c.cfg.hooks.ack(AckEvent{Topic: m.Topic, Offset: m.Offset, Err: err})
	return err
}

// Nack asks the broker to redeliver m after at least delay (the broker's
// redelivery policy may wait longer); reason is recorded by the broker.
func (c *Consumer) Nack(ctx context.Context, m *Message, delay time.Duration, reason string) error {
	pc, err := c.partitionOf(m)
	if err == nil {
		req := &danubepb.NackRequest{RequestId: m.RequestID, MsgId: m.msgID, SubscriptionName: c.opts.Subscription}
		ms := uint64(max(delay, 0).Milliseconds())
		req.DelayMs = &ms
		if reason != "" {
			req.Reason = &reason
		}
		err = c.c.retry(ctx, "Nack", m.Topic, func() error {
			b, cc, err := pc.conn()
			if err != nil {
				return err
			}
			_, err = danubepb.NewConsumerServiceClient(cc).Nack(rpcCtx(ctx, b), req)
			return err
		})
		if err != nil {
			err = fmt.Errorf("danube: nack offset %d on topic %q: %w", m.Offset, m.Topic, err)
		}
	}
	c.c.cfg.hooks.ack(AckEvent{Topic: m.Topic, Offset: m.Offset, Nack: true, Err: err})
	return err
}

func (c *Consumer) partitionOf(m *Message) (*partitionConsumer, error) {
	if m == nil || m.msgID == nil {
		return nil, errors.New("danube: message was not received by this client")
	}
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	pc, ok := c.parts[m.partition]
	if !ok {
		return nil, fmt.Errorf("danube: message from topic %q was not received by this consumer", m.Topic)
	}
	return pc, nil
}

func (pc *partitionConsumer) conn() (broker, *grpc.ClientConn, error) {
	pc.mu.Lock()
	b := pc.broker
	pc.mu.Unlock()
	cc, err := pc.cons.c.conn(b)
	return b, cc, err
}

// subscribe looks the partition up and subscribes there.
func (pc *partitionConsumer) subscribe(ctx context.Context) error {
	c, o := pc.cons.c, pc.cons.opts
	b, err := c.lookup(ctx, pc.topic)
	if err != nil {
		return err
	}
	cc, err := c.conn(b)
	if err != nil {
		return err
	}
	pc.mu.Lock()
	pc.reqID++
	reqID := pc.reqID
	pc.mu.Unlock()
	resp, err := danubepb.NewConsumerServiceClient(cc).Subscribe(rpcCtx(ctx, b), &danubepb.ConsumerRequest{
		RequestId:        reqID,
		TopicName:        pc.topic,
		ConsumerName:     o.Name,
		Subscription:     o.Subscription,
		SubscriptionType: danubepb.ConsumerRequest_SubscriptionType(o.Type),
		KeyFilters:       o.KeyFilters,
	})
	if err != nil {
		return fmt.Errorf("danube: subscribe consumer %q to topic %q (subscription %q) at %s: %w", o.Name, pc.topic, o.Subscription, b.connectURL, err)
	}
	pc.mu.Lock()
	pc.broker, pc.id = b, resp.GetConsumerId()
	pc.mu.Unlock()
	return nil
}

// run streams the partition until the consumer closes, resubscribing
// whenever the stream ends.
func (pc *partitionConsumer) run() {
	cons := pc.cons
	c := cons.c
	defer cons.wg.Done()
	for {
		reason := pc.stream()
		if cons.ctx.Err() != nil || c.isClosed() {
			// With the client closed there is nothing to resubscribe
			// through; Close still closes Messages().
			return
		}
		c.log.Info("danube: resubscribing", "topic", pc.topic, "consumer", cons.opts.Name, "reason", reason)
		for attempt := 1; ; attempt++ {
			if attempt > 1 || reason != errBrokerClose.Error() {
				// Give a restarting broker a moment; a CLOSE from a live
				// broker resubscribes at once.
				d := c.cfg.backoff.Next(attempt)
				c.cfg.hooks.retry(RetryEvent{Op: "Subscribe", Topic: pc.topic, Attempt: attempt, Delay: d, Err: errors.New(reason)})
				if backoff.Sleep(cons.ctx, d) != nil {
					return
				}
				c.resetConnectBackoff()
			}
			err := pc.subscribe(cons.ctx)
			if cons.ctx.Err() != nil {
				return
			}
			c.cfg.hooks.reconnect(ReconnectEvent{Topic: pc.topic, Kind: "consumer", Reason: reason, Err: err})
			if err == nil {
				break
			}
			c.log.Warn("danube: resubscribe failed", "topic", pc.topic, "consumer", cons.opts.Name, "attempt", attempt, "err", err)
		}
	}
}

// stream receives until the stream ends and returns why it ended. A health
// loop for the same consumer id runs alongside and cancels the stream on
// CLOSE; it is stopped before stream returns.
func (pc *partitionConsumer) stream() string {
	cons := pc.cons
	c := cons.c
	pc.mu.Lock()
	b, id := pc.broker, pc.id
	pc.reqID++
	reqID := pc.reqID
	pc.mu.Unlock()

	ctx, cancel := context.WithCancelCause(cons.ctx)
	hcDone := make(chan struct{})
	go func() {
		defer close(hcDone)
		c.healthLoop(ctx, b, danubepb.HealthCheckRequest_Consumer, id, pc.topic, func() { cancel(errBrokerClose) })
	}()
	defer func() {
		cancel(nil)
		<-hcDone
	}()

	cc, err := c.conn(b)
	if err != nil {
		return err.Error()
	}
	stream, err := danubepb.NewConsumerServiceClient(cc).ReceiveMessages(rpcCtx(ctx, b), &danubepb.ReceiveRequest{RequestId: reqID, ConsumerId: id})
	if err == nil {
		// The broker answers with headers once the stream is attached.
		if _, err = stream.Header(); err == nil {
			pc.attachOnce.Do(func() { close(pc.attached) })
		}
	}
	for err == nil {
		var sm *danubepb.StreamMessage
		sm, err = stream.Recv()
		if err != nil {
			break
		}
		m := messageFromProto(sm, pc.topic)
		c.cfg.hooks.receive(ReceiveEvent{Topic: m.Topic, Bytes: len(m.Payload), Offset: m.Offset})
		// A received message is delivered even if the stream is being
		// cancelled; only Close drops it (reliable topics redeliver it).
		select {
		case cons.msgs <- m:
		case <-cons.ctx.Done():
			err = cons.ctx.Err()
		}
	}
	switch {
	case errors.Is(context.Cause(ctx), errBrokerClose):
		return errBrokerClose.Error()
	case errors.Is(err, io.EOF):
		return "stream ended"
	case status.Code(err) != codes.Unknown:
		return status.Code(err).String()
	}
	return err.Error()
}

func messageFromProto(sm *danubepb.StreamMessage, partition string) *Message {
	id := sm.GetMsgId()
	if id == nil {
		id = &danubepb.MsgID{}
	}
	m := &Message{
		Topic:         id.GetTopicName(),
		Offset:        id.GetTopicOffset(),
		ProducerID:    id.GetProducerId(),
		ProducerName:  sm.GetProducerName(),
		BrokerAddr:    id.GetBrokerAddr(),
		RequestID:     sm.GetRequestId(),
		Payload:       sm.GetPayload(),
		Attributes:    sm.GetAttributes(),
		Key:           sm.GetRoutingKey(),
		SchemaID:      sm.SchemaId,
		SchemaVersion: sm.SchemaVersion,
		msgID:         id,
		partition:     partition,
	}
	if m.Topic == "" {
		m.Topic = partition
	}
	if ms := sm.GetPublishTime(); ms > 0 {
		m.PublishTime = time.UnixMilli(int64(ms))
	}
	return m
}
