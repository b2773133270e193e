package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/class"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/watermark"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/keyed"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// position is a watermark entry: a record's position, if it has one.
type position[P any] struct {
	p  P
	ok bool
}

type outRecord[P any] struct {
	rec Record[P]
	seq uint64
}

type sourceRunner[P any] struct {
	cfg    *Config
	conn   Connector[P]
	host   *Host
	tracer trace.Tracer
	marks  watermark.Tracker[position[P]]
	slots  chan struct{} // MAX_IN_FLIGHT tokens

	work       context.Context // outlives the intake by SHUTDOWN_TIMEOUT_MS
	mu         sync.Mutex
	senders    map[string]*sender[P]
	dlq        *producer // DLQ_TOPIC's, when set
	schemas    *registry // SCHEMA_*, when SCHEMA_TYPE is not none
	wg         sync.WaitGroup
	stopIntake context.CancelCauseFunc // with the fatal error that stops the source

	commitMu   sync.Mutex
	toCommit   []P
	joined     []position[P] // acked's scratch, under commitMu
	commitWake chan struct{}

	done bool // Poll returned ErrSourceDone: drain to the end, then stop

	marked func() // a test's hook: runs in acked between marking a record and queueing its positions
}

// Run runs the source until ctx ends (graceful: stop polling, publish what was polled, wait for
// Danube's acks and commit, within work; returns nil) or a fatal error.
func Run[P any](ctx, work context.Context, cfg *Config, h *Host, conn Connector[P]) error {
	r := &sourceRunner[P]{
		cfg: cfg, conn: conn, host: h, tracer: telemetry.Tracer(), slots: make(chan struct{}, max(cfg.MaxInFlight, 1)),
		work: work, senders: map[string]*sender[P]{}, commitWake: make(chan struct{}, 1),
	}
	if cfg.Schemas != nil {
		r.schemas = newRegistry(cfg.Schemas, cfg.Name, h)
	}
	// Create the default producer up front, to fail fast on a bad broker URL; unless its schema
	// comes with the records.
	if cfg.Topic != "" && (cfg.Schemas == nil || cfg.Schemas.File != nil) {
		if _, err := r.sender(ctx, cfg.Topic, nil); err != nil {
			return host.UnlessStopped(ctx, err)
		}
	}
	if cfg.DLQTopic != "" { // up front too: a source that cannot dead-letter must not start
		prod, err := r.newProducer(ctx, cfg.DLQTopic, cfg.Name+"-dlq", nil)
		if err != nil {
			return host.UnlessStopped(ctx, fmt.Errorf("runtime: DLQ_TOPIC=%q: %w", cfg.DLQTopic, err))
		}
		p := newProducerOf(cfg.DLQTopic, prod)
		r.dlq = &p
	}
	h.Danube.Set(nil)
	h.Log.Info("source started", "default_topic", cfg.Topic, "max_in_flight", cfg.MaxInFlight, "publish_order", orderNames[cfg.Order])
	return r.run(ctx)
}

var orderNames = [...]string{"key", "strict", "none"}

// publisher is what a source needs from a producer (*danube.Producer): Send is safe for
// concurrent use.
type publisher interface {
	Send(ctx context.Context, m danube.ProducerMessage) (uint64, error)
	Close() error
}

// producer is one topic's Danube producer.
type producer struct {
	topic string
	prod  publisher
	warn  rate.Sometimes // publish failures are logged once per interval, not once per record
}

func newProducerOf(topic string, prod publisher) producer {
	return producer{topic: topic, prod: prod, warn: rate.Sometimes{First: 1, Interval: 10 * time.Second}}
}

// sender publishes one destination topic's records with its own producer, keeping up to
// MAX_IN_FLIGHT publishes in flight in the order PUBLISH_ORDER asks for.
type sender[P any] struct {
	producer
	spanName string // "publish <topic>", built once
	queue    chan outRecord[P]
	rejected atomic.Pointer[error] // set once Danube refused a record for good
}

// run polls until ctx ends or a fatal error, then drains: senders publish what was polled (bounded
// by the work context) and the committer commits the rest.
func (r *sourceRunner[P]) run(ctx context.Context) error {
	// A fatal error elsewhere (commit, publish, reconnect) must interrupt a Poll that blocks.
	intake, stopIntake := context.WithCancelCause(ctx)
	defer stopIntake(nil)
	r.stopIntake = stopIntake
	r.host.Gate.OnFatal(func(err error) { stopIntake(err) })
	commitDone := make(chan struct{})
	go func() { defer close(commitDone); r.committer() }()

	runErr := r.pollLoop(intake)
	if runErr == nil && ctx.Err() == nil && !r.done {
		runErr = context.Cause(intake)
	}
	r.mu.Lock()
	for _, s := range r.senders {
		close(s.queue)
	}
	r.mu.Unlock()
	r.wg.Wait()
	close(r.commitWake)
	<-commitDone
	for _, s := range r.senders {
		r.closeProducer(&s.producer)
	}
	if r.dlq != nil {
		r.closeProducer(r.dlq)
	}
	if pending := r.marks.Pending(); pending > 0 && runErr == nil {
		if r.done && ctx.Err() == nil {
			return fmt.Errorf("runtime: source finished, but %d records were not acknowledged by Danube and committed", pending)
		}
		r.host.Log.Warn("stopped with records not acked by Danube; they will be read again from the last commit", "records", pending)
	}
	if r.done && runErr == nil {
		if err := context.Cause(intake); err != nil && !errors.Is(err, context.Canceled) {
			return err // a commit or publish that failed for good during the drain
		}
		r.host.Log.Info("source finished: every record acknowledged by Danube and committed")
	}
	return runErr
}

// poll calls Poll with no reconnect in progress; a reconnect started elsewhere (Commit, the health
// check) cancels it rather than wait for data that may never come.
func (r *sourceRunner[P]) poll(ctx context.Context) (recs []Record[P], gen uint64, err error) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.host.Gate.Interrupt(cancel)
	defer r.host.Gate.Interrupt(nil)
	gen = r.host.Gate.Run(func() { recs, err = r.conn.Poll(pctx) })
	if err == nil && pctx.Err() != nil && ctx.Err() == nil {
		err = pctx.Err() // interrupted by a reconnect: poll again after it
	}
	return recs, gen, err
}

// pollLoop polls until ctx ends (nil) or a fatal error. Records that Poll returned are published
// even when it also returned an error: the connector already moved past them.
func (r *sourceRunner[P]) pollLoop(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		recs, gen, err := r.poll(ctx)
		if n, ok := r.conn.Lag(); ok {
			r.host.Metrics.Lag(n)
		}
		if ctx.Err() != nil {
			r.abandon(recs, ctx.Err())
			break
		}
		if len(recs) > 0 {
			if err := r.enqueue(ctx, recs); err != nil {
				return err
			}
		}
		if errors.Is(err, ErrDone) {
			r.done = true
			r.host.Log.Info("source finished reading; waiting for Danube's acknowledgements")
			return nil
		}
		var wait time.Duration
		switch c := r.conn.Class(err); {
		case err == nil:
			failures = 0
			r.host.Gate.OK()
			if len(recs) == 0 {
				wait = r.cfg.PollInterval
			}
		case c == class.Fatal:
			return fmt.Errorf("runtime: poll: %w", err)
		case c == class.Disconnected:
			if rerr := r.host.Gate.Reconnect(ctx, gen, err); rerr != nil && ctx.Err() == nil {
				return rerr
			}
		default:
			failures++
			r.host.Metrics.Failed(1, c.String())
			wait = r.cfg.Retry.Delay(failures, err)
			r.host.Log.Warn("poll failed; retrying", "attempt", failures, "wait", wait, "err", err)
		}
		_ = backoff.Sleep(ctx, wait) // a stop ends the wait and the loop
	}
	return nil
}

// enqueue hands recs to their topics' senders in source order, taking a MAX_IN_FLIGHT slot for
// each; checkpoint records take none and pass the watermark at once.
func (r *sourceRunner[P]) enqueue(ctx context.Context, recs []Record[P]) error {
	published := 0
	for i, rec := range recs {
		pos := position[P]{rec.Pos, rec.HasPos}
		if rec.Checkpoint {
			r.acked(r.marks.Add(pos))
			if rec.OnAck != nil { // a record a transform dropped: handled
				rec.OnAck(nil)
			}
			continue
		}
		published++
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			r.abandon(recs[i:], context.Cause(ctx))
			return nil
		}
		topic := cmp.Or(rec.Topic, r.cfg.Topic)
		s, err := r.sender(ctx, topic, rec.Schema)
		if err != nil {
			<-r.slots
			r.abandon(recs[i:], err)
			return stopOr(ctx, err)
		}
		s.queue <- outRecord[P]{rec: rec, seq: r.marks.Add(pos)}
	}
	r.host.Metrics.Received(published)
	return nil
}

// stopOr returns err, or nil when it only reports that ctx ended (a graceful stop).
func stopOr(ctx context.Context, err error) error {
	select {
	case <-ctx.Done():
		return nil
	default:
		return err
	}
}

// abandon tells per-record callbacks that these records will not be published.
func (r *sourceRunner[P]) abandon(recs []Record[P], cause error) {
	n := 0
	for _, rec := range recs {
		if rec.Checkpoint {
			continue
		}
		n++
		if rec.OnAck != nil {
			rec.OnAck(cause)
		}
	}
	r.host.Metrics.Dropped(n)
}

// sender returns topic's sender, creating its reliable producer on first use (with schemas, once
// the subject holds the schema of the first record, sc).
func (r *sourceRunner[P]) sender(ctx context.Context, topic string, sc *schema.Schema) (*sender[P], error) {
	r.mu.Lock()
	s := r.senders[topic]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if topic == "" {
		return nil, r.host.Fatal(errors.New("runtime: record has no Topic and DANUBE_TOPIC is not set"))
	}
	if err := danube.CheckTopic(topic); err != nil {
		return nil, r.host.Fatal(fmt.Errorf("runtime: record topic %q: %w", topic, err))
	}
	var ref *danube.SchemaRef
	if r.schemas != nil {
		st, err := r.schemas.stamp(ctx, topic, sc)
		if err != nil {
			return nil, err
		}
		ref = &danube.SchemaRef{Subject: st.subject}
	}
	prod, err := r.newProducer(ctx, topic, r.cfg.Name, ref)
	if err != nil {
		return nil, err
	}
	return r.addSender(topic, prod), nil
}

// newProducer creates a reliable producer on topic, retrying what may pass (an outage, a creation
// race between replicas); a refusal no retry can fix is fatal.
func (r *sourceRunner[P]) newProducer(ctx context.Context, topic, name string, schemaRef *danube.SchemaRef) (*danube.Producer, error) {
	var (
		prod   *danube.Producer
		exists int
	)
	err := r.host.Retry(ctx, "create producer", func(err error) bool {
		switch status.Code(err) {
		case grpccodes.AlreadyExists: // a creation race between replicas passes on the next try
			exists++
			return exists < createExistsAttempts
		case grpccodes.InvalidArgument, grpccodes.FailedPrecondition:
			return false
		}
		return true
	}, func(ctx context.Context) (err error) {
		prod, err = r.host.Client.NewProducer(ctx, danube.ProducerOptions{
			Topic: topic, Name: name, Partitions: r.cfg.Partitions, Dispatch: danube.Reliable, Schema: schemaRef,
		})
		if err != nil {
			return fmt.Errorf("runtime: create producer on %q: %w", topic, err)
		}
		return nil
	})
	switch code := status.Code(err); {
	case err == nil:
		return prod, nil
	case code == grpccodes.AlreadyExists:
		return nil, r.host.Fatal(fmt.Errorf("%w (Danube refuses to create a topic named like a partition of an existing "+
			"non-partitioned topic, or the reverse: %q and its -part-N names cannot both exist)", err, partitionBase(topic)))
	case code == grpccodes.InvalidArgument || code == grpccodes.FailedPrecondition:
		return nil, r.host.Fatal(err)
	}
	return nil, err
}

// createExistsAttempts is how often a producer creation Danube refuses with AlreadyExists is tried:
// a second try passes after a creation race; a refusal that persists is a name clash.
const createExistsAttempts = 3

// partitionBase returns the partitioned topic a partition's name belongs to, or topic itself.
func partitionBase(topic string) string {
	if i := strings.LastIndex(topic, "-part-"); i > 0 {
		return topic[:i]
	}
	return topic
}

func (r *sourceRunner[P]) addSender(topic string, prod publisher) *sender[P] {
	s := &sender[P]{producer: newProducerOf(topic, prod), spanName: "publish " + topic, queue: make(chan outRecord[P], cap(r.slots))}
	r.mu.Lock()
	r.senders[topic] = s
	r.mu.Unlock()
	r.wg.Go(func() { r.dispatch(s) })
	return s
}

// orderKey returns the ordering domain of rec under PUBLISH_ORDER; ordered false = none.
func (r *sourceRunner[P]) orderKey(rec *Record[P]) (key string, ordered bool) {
	switch r.cfg.Order {
	case OrderStrict:
		return "", true
	case OrderNone:
		return "", false
	}
	return rec.Key, true
}

// dispatch starts a publish for each of s's records as soon as PUBLISH_ORDER allows: a record
// whose ordering key has a publish in flight waits in that key's queue until it is acked, so
// records of one key reach the topic in source order even when a publish is retried. The
// MAX_IN_FLIGHT slots bound how many publishes run. It returns when the queue is closed and
// everything taken is finished.
func (r *sourceRunner[P]) dispatch(s *sender[P]) {
	sched := keyed.Scheduler[string, outRecord[P]]{
		Key: func(out outRecord[P]) (string, bool) { return r.orderKey(&out.rec) },
		Run: func(_ context.Context, outs []outRecord[P]) error {
			r.publish(s, outs[0]) // within r.work; a refusal stops the source itself
			return nil
		},
	}
	_ = sched.Serve(context.Background(), context.Background(), s.queue) // no Run fails: nothing halts it
}

// producerSpan is built once (it would allocate per record).
var producerSpan = trace.WithSpanKind(trace.SpanKindProducer)

// publish sends one record, waiting out a Danube outage of any length (see send). A record Danube
// will never accept (see permanent) goes to DLQ_TOPIC as a descriptor when there is one; otherwise
// it stops the source with a fatal error naming the record, its origin and the broker's answer,
// instead of blocking the topic forever, and the records behind it on this topic are not published.
func (r *sourceRunner[P]) publish(s *sender[P], out outRecord[P]) {
	if rej := s.rejected.Load(); rej != nil || r.work.Err() != nil {
		var cause error
		if rej != nil {
			cause = *rej
		}
		r.finish(out, cmp.Or(cause, r.work.Err()))
		return
	}
	start := time.Now()
	ctx, span := r.tracer.Start(r.work, s.spanName, producerSpan)
	attrs := out.rec.Attributes       // read only: a source may share one map between records
	if span.SpanContext().IsValid() { // tracing is on: carry the trace context in a copy
		attrs = make(map[string]string, len(out.rec.Attributes)+2)
		maps.Copy(attrs, out.rec.Attributes)
		telemetry.Inject(ctx, attrs)
	}
	msg := danube.ProducerMessage{Payload: out.rec.Payload, Key: out.rec.Key, Attributes: attrs}
	if err := r.stampOn(&msg, s.topic, &out.rec); err != nil {
		span.End()
		if r.work.Err() == nil {
			err = r.reject(s, err)
		}
		r.finish(out, err)
		return
	}
	var err error
	if out.rec.Failed != nil {
		err = out.rec.Failed
	} else if size := danube.MessageSize(msg); size > danube.MaxMessageSize {
		err = fmt.Errorf("the record is %d bytes with its attributes, over the broker's %d-byte limit", size, danube.MaxMessageSize)
	} else {
		err = r.send(ctx, &s.producer, msg)
	}
	deadLettered := false
	if err != nil && r.work.Err() == nil {
		deadLettered, err = r.refused(ctx, s, &out.rec, err)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	r.host.Metrics.Batch(1, time.Since(start).Seconds())
	if err != nil {
		r.finish(out, err)
		return
	}
	if deadLettered {
		r.host.Metrics.DeadLettered(1)
	} else {
		r.host.Metrics.Processed(1)
	}
	r.host.Metrics.Published(1)
	if out.rec.OnAck != nil {
		out.rec.OnAck(nil)
	}
	r.acked(out.seq)
	<-r.slots
}

// refused handles a record Danube refused for good (or too large to send): it goes to DLQ_TOPIC,
// or it stops the source, and the records behind it on its topic are not published.
func (r *sourceRunner[P]) refused(ctx context.Context, s *sender[P], rec *Record[P], err error) (deadLettered bool, _ error) {
	r.host.Metrics.Failed(1, class.InvalidData.String())
	switch {
	case r.dlq != nil:
		err = r.deadLetter(ctx, s.topic, rec, err)
		deadLettered = err == nil
	case rec.Failed != nil:
		err = fmt.Errorf("runtime: a record for topic %q (%s): %w; set DLQ_TOPIC to dead-letter such records and go on",
			s.topic, describeRecord(rec), err)
	default:
		err = fmt.Errorf("runtime: Danube refused a record for topic %q for good (%s): %w; set DLQ_TOPIC to "+
			"dead-letter such records and go on", s.topic, describeRecord(rec), err)
	}
	if err != nil && r.work.Err() == nil {
		err = r.reject(s, err)
	}
	return deadLettered, err
}

// reject stops the source with err (fatal): the records behind it on s's topic are not published.
func (r *sourceRunner[P]) reject(s *sender[P], err error) error {
	err = r.host.Fatal(err)
	s.rejected.CompareAndSwap(nil, &err)
	r.stopIntake(err)
	return err
}

// stampOn stamps msg with the schema version of rec and checks rec against it (SCHEMA_VALIDATE):
// a record that does not match is marked failed, for DLQ_TOPIC. The error is one the source
// cannot go on after (the registry refused a schema) or the end of the work context.
func (r *sourceRunner[P]) stampOn(msg *danube.ProducerMessage, topic string, rec *Record[P]) error {
	if r.schemas == nil || rec.Failed != nil { // a failed record is dead-lettered as it is, unstamped
		return nil //nolint:nilerr // rec.Failed is the record's outcome, not this call's
	}
	st, err := r.schemas.stamp(r.work, topic, rec.Schema)
	if err != nil {
		return err
	}
	msg.SchemaVersion = st.version
	if r.schemas.cfg.Validate {
		rec.Failed = st.Check(msg.Payload)
	}
	return nil
}

// deadLetter publishes the descriptor of rec, refused by Danube for topic with reason, to
// DLQ_TOPIC, waiting out an outage like any publish.
func (r *sourceRunner[P]) deadLetter(ctx context.Context, topic string, rec *Record[P], reason error) error {
	d := newDeadRecord(topic, r.cfg.Name, rec, reason)
	msg, err := d.message()
	if err != nil {
		return err
	}
	if rec.Failed != nil { // the record itself, so that it can be published again once the step is fixed
		if m := failedMessage(rec, &d); danube.MessageSize(m) <= danube.MaxMessageSize {
			msg = m
		}
	}
	if err := r.send(ctx, r.dlq, msg); err != nil {
		return fmt.Errorf("runtime: Danube refused a record for topic %q (%s): %w; and DLQ_TOPIC=%q refused its descriptor: %w",
			topic, describeRecord(rec), reason, r.cfg.DLQTopic, err)
	}
	r.host.Log.Warn("record dead-lettered", "topic", topic, "record", describeRecord(rec), "dlq", r.cfg.DLQTopic, "reason", reason)
	return nil
}

// send publishes msg on p until Danube acks it, refuses it for good (see permanent) or the work
// context ends. Anything else (the broker is down, restarting, moving the topic) is retried with
// backoff for as long as it lasts; the client reconnects underneath and /readyz shows the outage.
func (r *sourceRunner[P]) send(ctx context.Context, p *producer, msg danube.ProducerMessage) error {
	for attempt := 1; ; attempt++ {
		_, err := p.prod.Send(ctx, msg)
		if err == nil || danube.Permanent(err) || r.work.Err() != nil {
			return err
		}
		r.host.Metrics.Retried(1)
		d := r.cfg.Retry.Next(attempt)
		p.warn.Do(func() {
			r.host.Log.Warn("publish failed; retrying until Danube accepts it", "topic", p.topic, "attempt", attempt, "wait", d, "err", err)
		})
		if backoff.Sleep(r.work, d) != nil {
			return err
		}
	}
}

// finish gives up on a record at shutdown: it stays uncommitted (the watermark stops before it).
func (r *sourceRunner[P]) finish(out outRecord[P], err error) {
	if out.rec.OnAck != nil {
		out.rec.OnAck(err)
	}
	r.host.Metrics.Dropped(1)
	<-r.slots
}

// acked marks record seq acknowledged and queues, for the committer, the positions of the records
// that joined the acked prefix with it. Both happen under commitMu: two publishes acked at once
// must queue their prefixes in the order the tracker handed them out, or Commit would see a later
// position before an earlier one.
func (r *sourceRunner[P]) acked(seq uint64) {
	r.commitMu.Lock()
	r.joined = r.marks.Done(seq, r.joined[:0])
	if r.marked != nil {
		r.marked()
	}
	for _, p := range r.joined {
		if p.ok {
			r.toCommit = append(r.toCommit, p.p)
		}
	}
	clear(r.joined) // let positions be collected
	wake := len(r.toCommit) > 0
	r.commitMu.Unlock()
	if wake {
		select {
		case r.commitWake <- struct{}{}:
		default:
		}
	}
}

// committer calls Commit with everything that reached the watermark since the last call, one call
// at a time; a failed commit is retried (with the positions that arrived meanwhile) after a wait,
// or after a reconnect when the connection was lost.
func (r *sourceRunner[P]) committer() {
	failures := 0
	for {
		_, open := <-r.commitWake
		for {
			r.commitMu.Lock()
			ps := r.toCommit
			r.toCommit = nil
			r.commitMu.Unlock()
			if len(ps) == 0 {
				break
			}
			var err error
			gen := r.host.Gate.Run(func() {
				leave := r.host.Busy.Enter()
				err = r.conn.Commit(r.work, ps)
				leave()
			})
			if err == nil {
				failures = 0
				continue
			}
			r.commitMu.Lock()
			r.toCommit = append(ps, r.toCommit...)
			r.commitMu.Unlock()
			switch r.conn.Class(err) {
			case class.Fatal:
				r.stopIntake(fmt.Errorf("runtime: commit: %w", err))
				return
			case class.Disconnected:
				if rerr := r.host.Gate.Reconnect(r.work, gen, err); rerr != nil {
					if r.work.Err() == nil {
						r.stopIntake(rerr)
					}
					return
				}
				continue
			}
			failures++
			wait := r.cfg.Retry.Next(failures)
			r.host.Log.Warn("commit failed; retrying", "positions", len(ps), "wait", wait, "err", err)
			if backoff.Sleep(r.work, wait) != nil {
				return
			}
		}
		if !open {
			return
		}
	}
}

func (r *sourceRunner[P]) closeProducer(p *producer) {
	if err := p.prod.Close(); err != nil {
		r.host.Log.Warn("close producer", "topic", p.topic, "err", err)
	}
}
