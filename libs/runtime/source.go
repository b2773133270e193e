package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/watermark"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

type outRecord struct {
	rec SourceRecord
	seq uint64
}

type sourceRunner struct {
	cfg    *SourceConfig
	conn   SourceConnector
	env    *env
	policy retry.Policy
	tracer trace.Tracer
	marks  watermark.Tracker[any]
	slots  chan struct{} // MAX_IN_FLIGHT tokens
	busy   *liveness     // Commit calls (a Poll may block legitimately: it waits for data)

	work       context.Context // outlives the intake by SHUTDOWN_TIMEOUT_MS
	mu         sync.Mutex
	senders    map[string]*sender
	wg         sync.WaitGroup
	stopIntake context.CancelCauseFunc // with the fatal error that stops the source

	commitMu   sync.Mutex
	toCommit   []any
	commitWake chan struct{}
}

// publisher is what a source needs from a producer (*danube.Producer).
type publisher interface {
	Send(ctx context.Context, m danube.ProducerMessage) (uint64, error)
	Close() error
}

// sender publishes one destination topic's records in order with its own producer.
type sender struct {
	topic string
	prod  publisher
	queue chan outRecord
}

// RunSource runs conn until ctx ends (graceful: stop polling, publish what was polled, wait for
// Danube's acks and commit, within SHUTDOWN_TIMEOUT_MS; returns nil) or a fatal error.
func RunSource(ctx context.Context, cfg *SourceConfig, conn SourceConnector, opts ...Option) (err error) {
	if ctx.Err() != nil {
		return nil
	}
	if conn == nil {
		return errors.New("runtime: RunSource needs a connector, got nil")
	}
	e, err := newEnv(&cfg.Common, "source", opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	work, cancelWork := workContext(ctx, cfg.ShutdownTimeout.D())
	defer cancelWork()

	r := &sourceRunner{
		cfg: cfg, conn: conn, env: e, policy: cfg.Retry(), tracer: telemetry.Tracer(),
		slots: make(chan struct{}, max(cfg.MaxInFlight, 1)), work: work, senders: map[string]*sender{},
		commitWake: make(chan struct{}, 1), busy: newLiveness(cfg.LivenessTimeout.D()),
	}
	e.live(r.busy.Check)
	shutdown, err := e.start(work, cfg.ConnectorName, conn)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shutdown()) }()
	if cfg.Topic != "" { // create the default producer up front: fail fast on a bad broker URL
		if _, err := r.sender(ctx, cfg.Topic); err != nil {
			if stopped(err) && ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	e.danube.Set(nil)
	e.log.Info("source started", "default_topic", cfg.Topic, "max_in_flight", cfg.MaxInFlight)
	return r.run(ctx)
}

// run polls until ctx ends or a fatal error, then drains: senders publish what was polled (bounded
// by the work context) and the committer commits the rest.
func (r *sourceRunner) run(ctx context.Context) error {
	// A fatal error elsewhere (commit) must interrupt a Poll that blocks on a stream.
	intake, stopIntake := context.WithCancelCause(ctx)
	defer stopIntake(nil)
	r.stopIntake = stopIntake
	commitDone := make(chan struct{})
	go func() { defer close(commitDone); r.committer() }()

	runErr := r.pollLoop(intake)
	if runErr == nil && ctx.Err() == nil {
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
		if cerr := s.prod.Close(); cerr != nil {
			r.env.log.Warn("close producer", "topic", s.topic, "err", cerr)
		}
	}
	if pending := r.marks.Pending(); pending > 0 && runErr == nil {
		r.env.log.Warn("stopped with records not acked by Danube; they will be read again from the last commit", "records", pending)
	}
	return runErr
}

func (r *sourceRunner) pollLoop(ctx context.Context) error {
	failures := 0
	for {
		recs, err := r.conn.Poll(ctx)
		if lr, ok := r.conn.(LagReporter); ok {
			r.env.metrics.Lag(lr.Lag())
		}
		if ctx.Err() != nil {
			r.abandon(recs, ctx.Err())
			return nil
		}
		if err != nil {
			if ClassOf(err) == ClassFatal {
				return fmt.Errorf("runtime: poll: %w", err)
			}
			failures++
			r.env.metrics.Failed(1, ClassOf(err).String())
			wait := r.policy.Delay(failures, err)
			r.env.log.Warn("poll failed; retrying", "attempt", failures, "wait", wait, "err", err)
			if retry.Sleep(ctx, wait) != nil {
				return nil
			}
			continue
		}
		failures = 0
		if len(recs) == 0 {
			if retry.Sleep(ctx, r.cfg.PollInterval.D()) != nil {
				return nil
			}
			continue
		}
		r.env.metrics.Received(len(recs))
		for i, rec := range recs {
			select {
			case r.slots <- struct{}{}:
			case <-ctx.Done():
				r.abandon(recs[i:], context.Cause(ctx))
				return nil
			}
			topic := rec.Topic
			if topic == "" {
				topic = r.cfg.Topic
			}
			s, err := r.sender(ctx, topic)
			if err != nil {
				<-r.slots
				r.abandon(recs[i:], err)
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			s.queue <- outRecord{rec: rec, seq: r.marks.Add(rec.Position)}
		}
	}
}

// abandon tells per-record callbacks that these records will not be published.
func (r *sourceRunner) abandon(recs []SourceRecord, cause error) {
	for _, rec := range recs {
		if rec.OnAck != nil {
			rec.OnAck(cause)
		}
	}
	r.env.metrics.Dropped(len(recs))
}

// sender returns topic's sender, creating its reliable producer on first use.
func (r *sourceRunner) sender(ctx context.Context, topic string) (*sender, error) {
	r.mu.Lock()
	s := r.senders[topic]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if topic == "" {
		return nil, Fatal(errors.New("runtime: record has no Topic and DANUBE_TOPIC is not set"))
	}
	if err := checkTopic(topic); err != nil {
		return nil, Fatal(fmt.Errorf("runtime: record topic %q: %w", topic, err))
	}
	var prod *danube.Producer
	for attempt := 1; ; attempt++ {
		var err error
		prod, err = r.env.client.NewProducer(ctx, danube.ProducerOptions{
			Topic: topic, Name: r.cfg.ConnectorName, Partitions: r.cfg.Partitions, Dispatch: danube.Reliable,
		})
		if err == nil {
			break
		}
		err = fmt.Errorf("runtime: create producer on %q: %w", topic, err)
		r.env.danube.Set(err)
		d := r.policy.Next(attempt)
		r.env.log.Warn("create producer failed; retrying", "topic", topic, "attempt", attempt, "wait", d, "err", err)
		if serr := retry.Sleep(ctx, d); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
	return r.addSender(topic, prod), nil
}

func (r *sourceRunner) addSender(topic string, prod publisher) *sender {
	s := &sender{topic: topic, prod: prod, queue: make(chan outRecord, cap(r.slots))}
	r.mu.Lock()
	r.senders[topic] = s
	r.mu.Unlock()
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.send(s) }()
	return s
}

// send publishes s's queue in order. A failed send is retried (the client reconnects underneath)
// until it succeeds or the shutdown timeout ends the work context: nothing is skipped, so order
// and the watermark stay intact. A record Danube will never accept (see permanent) stops the
// source with a fatal error naming the topic, the record and the broker's answer, instead of
// blocking the topic forever; the records queued behind it on this topic are not published.
func (r *sourceRunner) send(s *sender) {
	var done []any
	var rejected error
	for out := range s.queue {
		if r.work.Err() != nil || rejected != nil {
			r.finish(out, cmp.Or(rejected, r.work.Err()))
			continue
		}
		start := time.Now()
		attrs := make(map[string]string, len(out.rec.Attributes)+1)
		maps.Copy(attrs, out.rec.Attributes)
		ctx, span := r.tracer.Start(r.work, "publish "+s.topic, producerSpan)
		telemetry.Inject(ctx, attrs)
		msg := danube.ProducerMessage{Payload: out.rec.Payload, Key: out.rec.Key, Attributes: attrs}
		var err error
		for attempt := 1; ; attempt++ {
			if _, err = s.prod.Send(ctx, msg); err == nil || r.work.Err() != nil {
				break
			}
			if permanent(err) {
				rejected = Fatal(fmt.Errorf("runtime: Danube rejected record %d (position %v, %d bytes) for topic %q; it cannot be published: %w",
					out.seq, out.rec.Position, len(out.rec.Payload), s.topic, err))
				r.env.metrics.Failed(1, ClassFatal.String())
				r.stopIntake(rejected)
				break
			}
			r.env.metrics.Retried(1)
			d := r.policy.Next(attempt)
			r.env.log.Warn("publish failed; retrying", "topic", s.topic, "attempt", attempt, "wait", d, "err", err)
			if retry.Sleep(r.work, d) != nil {
				break
			}
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		r.env.metrics.Batch(1, time.Since(start).Seconds())
		if err != nil {
			r.finish(out, cmp.Or(rejected, err))
			continue
		}
		r.env.metrics.Published(1)
		r.env.metrics.Processed(1)
		if out.rec.OnAck != nil {
			out.rec.OnAck(nil)
		}
		done = r.marks.Done(out.seq, done[:0])
		if len(done) > 0 {
			r.queueCommit(done)
		}
		<-r.slots
	}
}

// permanent reports whether Danube (or gRPC) rejected a publish in a way no retry can fix: a
// malformed or oversized message, a schema or permission refusal (the client has already
// recreated the producer once for a moved topic), bad credentials. Outages, timeouts, a busy
// broker and unknown failures are retried.
func permanent(err error) bool {
	if errors.Is(err, danube.ErrClosed) {
		return false
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case grpccodes.InvalidArgument, grpccodes.FailedPrecondition, grpccodes.OutOfRange, grpccodes.Unimplemented,
		grpccodes.Unauthenticated, grpccodes.PermissionDenied, grpccodes.AlreadyExists:
		return true
	case grpccodes.ResourceExhausted: // a busy broker, unless the message exceeds gRPC's size limit
		return strings.Contains(st.Message(), "larger than max")
	}
	return false
}

// finish gives up on a record at shutdown: it stays uncommitted (the watermark stops before it).
func (r *sourceRunner) finish(out outRecord, err error) {
	if out.rec.OnAck != nil {
		out.rec.OnAck(err)
	}
	r.env.metrics.Dropped(1)
	<-r.slots
}

func (r *sourceRunner) queueCommit(positions []any) {
	r.commitMu.Lock()
	for _, p := range positions {
		if p != nil {
			r.toCommit = append(r.toCommit, p)
		}
	}
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
// at a time; a failed commit is retried (with the positions that arrived meanwhile) after a wait.
func (r *sourceRunner) committer() {
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
			leave := r.busy.enter()
			err := r.conn.Commit(r.work, ps)
			leave()
			if err == nil {
				failures = 0
				continue
			}
			if ClassOf(err) == ClassFatal {
				r.stopIntake(fmt.Errorf("runtime: commit: %w", err))
				return
			}
			failures++
			r.commitMu.Lock()
			r.toCommit = append(ps, r.toCommit...)
			r.commitMu.Unlock()
			wait := r.policy.Next(failures)
			r.env.log.Warn("commit failed; retrying", "positions", len(ps), "wait", wait, "err", err)
			if retry.Sleep(r.work, wait) != nil {
				return
			}
		}
		if !open {
			return
		}
	}
}
