package danube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	Dispatch   DispatchStrategy // zero value is Reliable (at-least-once)
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
	// SchemaVersion, with a producer that has a Schema, stamps the message with this version of
	// the producer's subject instead of the one resolved when the producer was created: a source
	// that registered a newer version mid-stream (a table changed) stamps its records with it.
	SchemaVersion uint32
}

// Producer publishes to one topic, or to every partition of it. It is safe
// for concurrent use; see [Producer.Send] for ordering.
type Producer struct {
	c     *Client
	opts  ProducerOptions
	parts []*partitionProducer
	rr    atomic.Uint64

	// mu orders Close against Sends joining inflight, as WaitGroup requires
	// every Add to happen before Wait.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup // running Sends: Close stops health checks only after they return

	done     context.Context // cancelled by Close: aborts Sends waiting on rpcs or retries
	shutdown context.CancelFunc
}

// partitionProducer is the producer of one exact topic. Sends on it run
// their rpcs in parallel; only (re)creating the broker-side producer is
// serialized, through the creating slot.
type partitionProducer struct {
	c        *Client
	topic    string
	name     string
	dispatch danubepb.DispatchStrategy
	schema   *SchemaRef

	reqID atomic.Uint64 // last request id; CreateProducer and SendMessage draw from it

	mu       sync.Mutex
	cur      *session  // nil until first created
	creating *creation // non-nil while one Send (re)creates the producer

	// The health loop of cur. Only the holder of the creating slot touches
	// these, or NewProducer and Close when no Send runs.
	hcCancel context.CancelFunc
	hcDone   chan struct{}
}

// session is one registration of the producer on a broker. Only dead
// changes after creation, so Sends read a session without locking.
type session struct {
	id            uint64
	broker        broker
	schemaID      *uint64
	schemaVersion *uint32
	dead          atomic.Pointer[string] // why it must be recreated; nil while usable
}

// kill marks s for recreation; the first reason wins, for the reconnect hook.
func (s *session) kill(reason string) bool { return s.dead.CompareAndSwap(nil, &reason) }

// creation is a (re)creation in progress. err and abandoned are written
// before done is closed.
type creation struct {
	done      chan struct{}
	err       error
	abandoned bool // the creating Send's own context ended: err says nothing about the broker
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
	dispatch, ok := o.Dispatch.wire()
	if !ok {
		return nil, fmt.Errorf("danube: ProducerOptions.Dispatch = %d, want Reliable or NonReliable", int(o.Dispatch))
	}
	if o.Schema != nil && o.Schema.Subject == "" {
		return nil, errors.New("danube: ProducerOptions.Schema.Subject is required when Schema is set")
	}
	p := &Producer{c: c, opts: o}
	p.done, p.shutdown = context.WithCancel(context.Background())
	if o.Schema != nil {
		// A v0.15.1 broker creates a topic for an unregistered subject without a word: check the
		// subject first, so that a typo fails here and creates nothing.
		if _, _, err := resolveSchema(ctx, c, *o.Schema); err != nil {
			return nil, fmt.Errorf("danube: producer %q on topic %q: %w", o.Name, o.Topic, err)
		}
	}
	n := max(o.Partitions, 1)
	for i := range n {
		pp := &partitionProducer{c: c, topic: o.Topic, name: o.Name, dispatch: dispatch, schema: o.Schema}
		if o.Partitions > 0 {
			pp.topic = partitionName(o.Topic, i)
			pp.name = o.Name + "-" + strconv.Itoa(i)
		}
		p.parts = append(p.parts, pp)
	}
	for _, pp := range p.parts {
		err := c.retry(ctx, "CreateProducer", pp.topic, func() error {
			s, err := pp.create(ctx)
			if err == nil {
				pp.mu.Lock()
				pp.cur = s
				pp.mu.Unlock()
			}
			return err
		})
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
	if err := CheckTopic(t); err != nil {
		return fmt.Errorf("danube: %s %q: %w", field, t, err)
	}
	return nil
}

// Topic returns the topic the producer was created for (the base topic when
// partitioned).
func (p *Producer) Topic() string { return p.opts.Topic }

// Send publishes one message and returns after the broker's reply with the
// echoed request id; it never reports success before that reply.
//
// Send is safe for concurrent use, and concurrent calls are pipelined: each
// runs its own rpc, so many messages can be in flight on one partition at
// once. Calls from one goroutine are published in call order, since each
// returns only once the broker has stored its message. Concurrent calls
// carry no order among themselves, even on one partition: a caller that
// needs per-key order must not have two messages with the same key in
// flight at once.
//
// On NOT_FOUND (broker restarted), a moved topic, a health-check CLOSE or
// an unavailable broker, Send recreates the partition producer (one call
// recreates it while concurrent calls wait for it) and resends, within the
// client's retry budget, which each call has to itself. A resend after a
// failure whose outcome is unknown (the broker may have stored the message
// before the connection broke) can duplicate it, and a call that returns
// such an error may still have stored its message: delivery is at least
// once.
func (p *Producer) Send(ctx context.Context, m ProducerMessage) (uint64, error) {
	if !p.enter() {
		return 0, ErrClosed
	}
	defer p.inflight.Done()
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
	if err != nil && p.done.Err() != nil {
		err = ErrClosed
	}
	p.c.cfg.hooks.send(SendEvent{Topic: pp.topic, Bytes: len(m.Payload), Duration: time.Since(start), Err: err})
	return id, err
}

// enter registers a Send with inflight unless the producer is closed.
func (p *Producer) enter() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// Close aborts Sends in progress (they return ErrClosed), waits for them,
// and stops the producer's health checks. The broker keeps the producer
// registered (there is no close rpc); a producer with the same name gets the
// same id back.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.shutdown()
	p.inflight.Wait()
	for _, pp := range p.parts {
		pp.stopHealth()
	}
	return nil
}

// create looks the topic up and creates the producer there, then resolves
// its schema and starts the health check of the new session. Called only by
// the holder of the creating slot, or before the Producer is shared.
func (pp *partitionProducer) create(ctx context.Context) (*session, error) {
	pp.stopHealth()
	b, err := pp.c.lookup(ctx, pp.topic)
	if err != nil {
		return nil, err
	}
	cc, err := pp.c.conn(b)
	if err != nil {
		return nil, err
	}
	req := &danubepb.ProducerRequest{
		RequestId:          pp.reqID.Add(1),
		ProducerName:       pp.name,
		TopicName:          pp.topic,
		ProducerAccessMode: danubepb.ProducerAccessMode_Shared,
		DispatchStrategy:   pp.dispatch,
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
		return nil, fmt.Errorf("danube: create producer %q on topic %q at %s: %w", pp.name, pp.topic, b.connectURL, err)
	}
	s := &session{id: resp.GetProducerId(), broker: b}
	if pp.schema != nil {
		id, ver, err := resolveSchema(ctx, pp.c, *pp.schema)
		if err != nil {
			return nil, fmt.Errorf("danube: producer %q on topic %q: %w", pp.name, pp.topic, err)
		}
		s.schemaID, s.schemaVersion = &id, &ver
	}
	pp.startHealth(s)
	return s, nil
}

func (pp *partitionProducer) startHealth(s *session) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	pp.hcCancel, pp.hcDone = cancel, done
	go func() {
		defer close(done)
		pp.c.healthLoop(ctx, s.broker, danubepb.HealthCheckRequest_Producer, s.id, pp.topic, func() {
			if s.kill("health check CLOSE") {
				pp.c.log.Info("danube: broker closed producer; it will be recreated on the next send", "topic", pp.topic, "producer", pp.name, "id", s.id)
			}
		})
	}()
}

// stopHealth stops the health loop and waits for it.
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
	var (
		deniedOnce bool
		attempt    int
	)
	for {
		s, err := pp.ready(ctx, &attempt)
		if err != nil {
			return 0, err
		}
		id, err := pp.sendOnce(ctx, s, m)
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
		// Sends that failed on the same session kill it once; the first
		// of them to reach ready recreates it for all.
		s.kill(code.String())
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

// ready returns a live session, recreating the producer when the current
// one is dead. One Send at a time recreates; the others wait for it and use
// its session. A failed creation counts against the retry budget (attempt)
// of every Send that waited for it, not just the creator's, so that waiters
// back off too rather than retrying back to back.
func (pp *partitionProducer) ready(ctx context.Context, attempt *int) (*session, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pp.mu.Lock()
		s, cr := pp.cur, pp.creating
		if s != nil && s.dead.Load() == nil {
			pp.mu.Unlock()
			return s, nil
		}
		if cr != nil {
			pp.mu.Unlock()
			select {
			case <-cr.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if cr.err == nil || cr.abandoned {
				continue
			}
		} else {
			cr = &creation{done: make(chan struct{})}
			pp.creating = cr
			pp.mu.Unlock()
			reason := "not connected"
			if s != nil {
				reason = *s.dead.Load()
			}
			ns, err := pp.create(ctx)
			pp.c.cfg.hooks.reconnect(ReconnectEvent{Topic: pp.topic, Kind: "producer", Reason: reason, Err: err})
			pp.mu.Lock()
			if err == nil {
				pp.cur = ns
			}
			cr.err, cr.abandoned = err, ctx.Err() != nil
			pp.creating = nil
			pp.mu.Unlock()
			close(cr.done)
			if err == nil {
				pp.c.log.Info("danube: producer recreated", "topic", pp.topic, "producer", pp.name, "reason", reason)
				return ns, nil
			}
		}
		err := cr.err
		code := status.Code(err)
		if ctx.Err() != nil || !(retryable(code) || code == codes.NotFound) || *attempt >= pp.c.cfg.maxRetries {
			return nil, err
		}
		*attempt++
		if err := pp.c.backoffWait(ctx, "CreateProducer", pp.topic, *attempt, err); err != nil {
			return nil, err
		}
	}
}

func (pp *partitionProducer) sendOnce(ctx context.Context, s *session, m ProducerMessage) (uint64, error) {
	cc, err := pp.c.conn(s.broker)
	if err != nil {
		return 0, err
	}
	msg := &danubepb.StreamMessage{
		RequestId: pp.reqID.Add(1),
		MsgId: &danubepb.MsgID{
			ProducerId: s.id,
			TopicName:  pp.topic,
			BrokerAddr: s.broker.brokerURL,
		},
		Payload:       m.Payload,
		PublishTime:   uint64(time.Now().UnixMilli()),
		ProducerName:  pp.name,
		Attributes:    m.Attributes,
		SchemaId:      s.schemaID,
		SchemaVersion: s.schemaVersion,
	}
	if m.SchemaVersion != 0 && s.schemaID != nil {
		msg.SchemaVersion = &m.SchemaVersion
	}
	if m.Key != "" {
		msg.RoutingKey = &m.Key
	}
	resp, err := danubepb.NewProducerServiceClient(cc).SendMessage(rpcCtx(ctx, s.broker), msg)
	if err != nil {
		return 0, fmt.Errorf("danube: send to topic %q (producer %q): %w", pp.topic, pp.name, err)
	}
	return resp.GetRequestId(), nil
}

// Permanent reports whether Danube (or gRPC) rejected a call in a way no retry can fix: a
// malformed or oversized message, a schema or permission refusal (the client has already
// recreated the producer once for a moved topic), bad credentials. Outages, timeouts, a busy
// broker and unknown failures are retried.
func Permanent(err error) bool {
	if errors.Is(err, ErrClosed) {
		return false
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented,
		codes.Unauthenticated, codes.PermissionDenied, codes.AlreadyExists:
		return true
	case codes.ResourceExhausted: // a busy broker, unless the message exceeds gRPC's size limit
		return strings.Contains(st.Message(), "larger than max")
	}
	return false
}
