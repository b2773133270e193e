package danube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// ProducerOptions describe a producer.
type ProducerOptions struct {
	Topic      string           // "/namespace/topic" (required)
	Name       string           // producer name (required; its identity on the broker)
	Partitions int              // 0 = non-partitioned; N => <topic>-part-0..N-1
	Dispatch   DispatchStrategy // NonReliable by default
	Schema     *SchemaRef       // optional
}

// SchemaRef names the registered schema a producer's messages follow. The
// resolved schema id and version are stamped on every message.
type SchemaRef struct {
	Subject    string
	Version    uint32 // pinned version; 0 = latest
	MinVersion uint32 // with Version 0: fail unless latest >= MinVersion
}

// ProducerMessage is one message to publish.
type ProducerMessage struct {
	Payload    []byte
	Key        string // routing key: selects the partition (FNV-1a 64) and KeyShared routing; "" = none
	Attributes map[string]string
}

// Producer publishes to one topic, or to every partition of it. It is safe
// for concurrent use.
type Producer struct {
	c      *Client
	opts   ProducerOptions
	parts  []*partitionProducer
	rr     atomic.Uint64
	closed atomic.Bool

	done     context.Context // cancelled by Close: aborts Sends waiting on retries
	shutdown context.CancelFunc
}

// partitionProducer is the producer of one exact topic. mu is held across a
// whole Send (retries and recreation included), which keeps the partition's
// messages in call order.
type partitionProducer struct {
	c        *Client
	topic    string
	name     string
	dispatch DispatchStrategy
	schema   *SchemaRef

	mu            sync.Mutex
	reqID         uint64
	broker        broker
	schemaID      *uint64
	schemaVersion *uint32
	hcCancel      context.CancelFunc
	hcDone        chan struct{}
	closed        bool

	id    atomic.Uint64 // 0 = not created on the broker
	stale atomic.Bool   // broker answered CLOSE; recreate before the next send
}

// NewProducer creates the producer on the broker(s), one per partition,
// before returning.
func (c *Client) NewProducer(ctx context.Context, o ProducerOptions) (*Producer, error) {
	if err := validTopic("Topic", o.Topic); err != nil {
		return nil, err
	}
	if o.Name == "" {
		return nil, errors.New("danube: ProducerOptions.Name is required")
	}
	if o.Partitions < 0 {
		return nil, fmt.Errorf("danube: ProducerOptions.Partitions = %d, want >= 0", o.Partitions)
	}
	if o.Dispatch != NonReliable && o.Dispatch != Reliable {
		return nil, fmt.Errorf("danube: ProducerOptions.Dispatch = %d, want NonReliable or Reliable", int(o.Dispatch))
	}
	if o.Schema != nil && o.Schema.Subject == "" {
		return nil, errors.New("danube: ProducerOptions.Schema.Subject is required when Schema is set")
	}
	p := &Producer{c: c, opts: o}
	p.done, p.shutdown = context.WithCancel(context.Background())
	n := max(o.Partitions, 1)
	for i := range n {
		pp := &partitionProducer{c: c, topic: o.Topic, name: o.Name, dispatch: o.Dispatch, schema: o.Schema}
		if o.Partitions > 0 {
			pp.topic = partitionName(o.Topic, i)
			pp.name = o.Name + "-" + strconv.Itoa(i)
		}
		p.parts = append(p.parts, pp)
	}
	for _, pp := range p.parts {
		pp.mu.Lock()
		err := c.retry(ctx, "CreateProducer", pp.topic, func() error { return pp.create(ctx) })
		pp.mu.Unlock()
		if err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	return p, nil
}

// validTopic checks the broker's "/namespace/topic" rule up front, so typos
// fail with the field name instead of a remote InvalidArgument.
func validTopic(field, t string) error {
	if t == "" {
		return fmt.Errorf("danube: %s is required", field)
	}
	parts := 0
	for i := 0; i < len(t); i++ {
		ch := t[i]
		switch {
		case ch == '/':
			parts++
		case ch == '_' || ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= 0x80:
		default:
			return fmt.Errorf("danube: %s %q: character %q not allowed (want /namespace/topic of letters, digits, _ and -)", field, t, ch)
		}
	}
	if t[0] != '/' || parts != 2 || t[len(t)-1] == '/' {
		return fmt.Errorf("danube: %s %q: want /namespace/topic", field, t)
	}
	return nil
}

// Topic returns the topic the producer was created for (the base topic when
// partitioned).
func (p *Producer) Topic() string { return p.opts.Topic }

// Send publishes one message and returns after the broker's reply with the
// echoed request id; it never reports success before that reply. It is safe
// for concurrent use; sequential calls keep their order within a partition
// (one message is in flight per partition). On NOT_FOUND (broker restarted),
// a moved topic, a health-check CLOSE or an unavailable broker it recreates
// the partition producer and resends, within the client's retry budget. A
// resend after a failure whose outcome is unknown (the broker may have
// stored the message before the connection broke) can duplicate it: delivery
// is at least once.
func (p *Producer) Send(ctx context.Context, m ProducerMessage) (uint64, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	var pp *partitionProducer
	switch n := len(p.parts); {
	case n == 1:
		pp = p.parts[0]
	case m.Key != "":
		pp = p.parts[PartitionForKey(m.Key, n)]
	default:
		pp = p.parts[(p.rr.Add(1)-1)%uint64(n)]
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.done, cancel)
	id, err := pp.send(ctx, m)
	stop()
	cancel()
	if err != nil && p.closed.Load() {
		err = ErrClosed
	}
	p.c.cfg.hooks.send(SendEvent{Topic: pp.topic, Bytes: len(m.Payload), Duration: time.Since(start), Err: err})
	return id, err
}

// Close stops the producer's health checks. The broker keeps the producer
// registered (there is no close rpc); a producer with the same name gets the
// same id back.
func (p *Producer) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.shutdown()
	for _, pp := range p.parts {
		pp.mu.Lock()
		pp.closed = true
		pp.stopHealth()
		pp.mu.Unlock()
	}
	return nil
}

// create looks the topic up and creates the producer there, then resolves
// its schema and starts the health check. Called with mu held.
func (pp *partitionProducer) create(ctx context.Context) error {
	pp.stopHealth()
	b, err := pp.c.lookup(ctx, pp.topic)
	if err != nil {
		return err
	}
	cc, err := pp.c.conn(b)
	if err != nil {
		return err
	}
	pp.reqID++
	req := &danubepb.ProducerRequest{
		RequestId:          pp.reqID,
		ProducerName:       pp.name,
		TopicName:          pp.topic,
		ProducerAccessMode: danubepb.ProducerAccessMode_Shared,
		DispatchStrategy:   danubepb.DispatchStrategy(pp.dispatch),
	}
	if s := pp.schema; s != nil {
		ref := &danubepb.SchemaReference{Subject: s.Subject}
		switch {
		case s.Version > 0:
			ref.VersionRef = &danubepb.SchemaReference_PinnedVersion{PinnedVersion: s.Version}
		case s.MinVersion > 0:
			ref.VersionRef = &danubepb.SchemaReference_MinVersion{MinVersion: s.MinVersion}
		default:
			ref.VersionRef = &danubepb.SchemaReference_UseLatest{UseLatest: true}
		}
		req.SchemaRef = ref
	}
	resp, err := danubepb.NewProducerServiceClient(cc).CreateProducer(rpcCtx(ctx, b), req)
	if err != nil {
		return fmt.Errorf("danube: create producer %q on topic %q at %s: %w", pp.name, pp.topic, b.connectURL, err)
	}
	if pp.schema != nil {
		id, ver, err := resolveSchema(ctx, pp.c, *pp.schema)
		if err != nil {
			return fmt.Errorf("danube: producer %q on topic %q: %w", pp.name, pp.topic, err)
		}
		pp.schemaID, pp.schemaVersion = &id, &ver
	}
	pp.broker = b
	pp.id.Store(resp.GetProducerId())
	pp.stale.Store(false)
	pp.startHealth(b, resp.GetProducerId())
	return nil
}

func (pp *partitionProducer) startHealth(b broker, id uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	pp.hcCancel, pp.hcDone = cancel, done
	go func() {
		defer close(done)
		pp.c.healthLoop(ctx, b, danubepb.HealthCheckRequest_Producer, id, func() {
			if pp.id.Load() == id {
				pp.stale.Store(true)
				pp.c.log.Info("danube: broker closed producer; it will be recreated on the next send", "topic", pp.topic, "producer", pp.name, "id", id)
			}
		})
	}()
}

// stopHealth stops the health loop and waits for it. Called with mu held.
func (pp *partitionProducer) stopHealth() {
	if pp.hcCancel != nil {
		pp.hcCancel()
		<-pp.hcDone
		pp.hcCancel, pp.hcDone = nil, nil
	}
}

// recoverable reports whether a SendMessage failure means "this producer
// is gone or elsewhere": recreate it and resend.
func recoverable(code codes.Code) bool {
	return retryable(code) || code == codes.NotFound || code == codes.PermissionDenied
}

func (pp *partitionProducer) send(ctx context.Context, m ProducerMessage) (uint64, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.closed {
		return 0, ErrClosed
	}
	var (
		reason     string
		deniedOnce bool
		attempt    int
	)
	for {
		if pp.stale.Load() || pp.id.Load() == 0 {
			if reason == "" {
				reason = "not connected"
				if pp.stale.Load() {
					reason = "health check CLOSE"
				}
			}
			err := pp.create(ctx)
			pp.c.cfg.hooks.reconnect(ReconnectEvent{Topic: pp.topic, Kind: "producer", Reason: reason, Err: err})
			if err != nil {
				pp.id.Store(0)
				code := status.Code(err)
				if ctx.Err() != nil || !(retryable(code) || code == codes.NotFound) || attempt >= pp.c.cfg.maxRetries {
					return 0, err
				}
				attempt++
				if err := pp.c.backoffWait(ctx, "CreateProducer", pp.topic, attempt, err); err != nil {
					return 0, err
				}
				continue
			}
			pp.c.log.Info("danube: producer recreated", "topic", pp.topic, "producer", pp.name, "reason", reason)
		}
		id, err := pp.sendOnce(ctx, m)
		if err == nil {
			return id, nil
		}
		code := status.Code(err)
		if ctx.Err() != nil || !recoverable(code) {
			return 0, err
		}
		if code == codes.PermissionDenied {
			// A draining or moved topic answers PermissionDenied, and so does
			// a schema rejection: recreate once, then give up.
			if deniedOnce {
				return 0, err
			}
			deniedOnce = true
		}
		attempt++
		if attempt > pp.c.cfg.maxRetries {
			return 0, err
		}
		reason = code.String()
		pp.stale.Store(true)
		if code != codes.NotFound && code != codes.PermissionDenied {
			// The broker is unreachable or busy: wait before retrying. A
			// NotFound/PermissionDenied broker is up, so recreate at once.
			if err := pp.c.backoffWait(ctx, "SendMessage", pp.topic, attempt, err); err != nil {
				return 0, err
			}
		} else {
			pp.c.cfg.hooks.retry(RetryEvent{Op: "SendMessage", Topic: pp.topic, Attempt: attempt, Err: err})
		}
	}
}

func (pp *partitionProducer) sendOnce(ctx context.Context, m ProducerMessage) (uint64, error) {
	cc, err := pp.c.conn(pp.broker)
	if err != nil {
		return 0, err
	}
	pp.reqID++
	msg := &danubepb.StreamMessage{
		RequestId: pp.reqID,
		MsgId: &danubepb.MsgID{
			ProducerId: pp.id.Load(),
			TopicName:  pp.topic,
			BrokerAddr: pp.broker.brokerURL,
		},
		Payload:       m.Payload,
		PublishTime:   uint64(time.Now().UnixMilli()),
		ProducerName:  pp.name,
		Attributes:    m.Attributes,
		SchemaId:      pp.schemaID,
		SchemaVersion: pp.schemaVersion,
	}
	if m.Key != "" {
		msg.RoutingKey = &m.Key
	}
	resp, err := danubepb.NewProducerServiceClient(cc).SendMessage(rpcCtx(ctx, pp.broker), msg)
	if err != nil {
		return 0, fmt.Errorf("danube: send to topic %q (producer %q): %w", pp.topic, pp.name, err)
	}
	return resp.GetRequestId(), nil
}
