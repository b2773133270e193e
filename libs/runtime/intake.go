package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// intake owns a sink's Danube consumers and can pause them. Pausing closes the consumers: the
// broker then has nobody to send to, so no ack-timeout re-send reaches the sink and no delivery
// attempt is spent while the external system is down (a broker stops a subscription for good once
// a message used up its attempts). The records already in hand stay in the sink and are written
// once the external system is back; resuming subscribes again.
type intake struct {
	r      *sinkRunner
	ctx    context.Context // intake's life: ends on stop
	out    chan delivery
	replay *replayFilter
	gaps   *gaps // nil: not checked (Shared, KeyShared)

	mu        sync.Mutex
	consumers []*danube.Consumer
	forwards  sync.WaitGroup
	paused    bool
	cause     error
	resuming  bool
	resumes   int // resumes so far: a KeyShared sink takes a new consumer name on each
	bg        sync.WaitGroup
	flag      telemetry.Flag // readiness: delivery paused, poison held
	poison    map[string]string
	fatal     func(error) // stops the sink when it cannot resume
}

func newIntake(ctx context.Context, r *sinkRunner, out chan delivery) *intake {
	in := &intake{r: r, ctx: ctx, out: out, replay: newReplayFilter(maxWindow), poison: map[string]string{}}
	in.flag.Set(nil)
	return in
}

// subscribe subscribes to every topic and starts forwarding; configure applies the subscription
// settings on the first start only.
func (in *intake) subscribe(ctx context.Context, configure bool) error {
	var cs []*danube.Consumer
	name := in.r.cfg.ConnectorName
	if in.resumes > 0 && in.r.cfg.SubscriptionType == danube.KeyShared {
		// A v0.15.1 broker evicts a KeyShared consumer inactive for 3 s and, should it come back
		// under the same name, never gives it keys again: resume under a new one.
		name = fmt.Sprintf("%s-r%d", name, in.resumes)
	}
	for _, topic := range in.r.cfg.Topics {
		c, err := in.r.subscribe(ctx, topic, name)
		if err != nil {
			closeAll(cs)
			return err
		}
		cs = append(cs, c)
		if configure {
			if err := in.r.configureSubscription(ctx, c.Topics()); err != nil {
				closeAll(cs)
				return err
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.consumers = cs
	for _, c := range cs {
		in.forwards.Go(func() { in.forward(c) })
	}
	return nil
}

// forward moves c's messages into the sink's merged intake until c closes or intake ends. A
// message written while its ack could not be sent (the consumer was paused, or the ack failed) is
// acked again instead of being written twice.
func (in *intake) forward(c *danube.Consumer) {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return
			}
			d := delivery{c, m}
			if in.gaps != nil {
				in.gaps.observe(m.Topic, m.Offset)
			}
			if in.replay.take(m) {
				in.r.env.metrics.Received(1)
				in.r.settle.ack(d)
				continue
			}
			select {
			case in.out <- d:
			case <-in.ctx.Done():
				return
			}
		case <-in.ctx.Done():
			return
		}
	}
}

// pause closes the consumers, once per outage; cause shows on /readyz.
func (in *intake) pause(cause error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cause = cause
	defer in.setFlag()
	if in.paused {
		return
	}
	in.paused = true
	in.r.env.metrics.Paused(true)
	in.r.env.log.Warn("external system failing: pausing the Danube consumers so that no delivery attempt is spent; "+
		"the records in hand are kept and retried until it recovers", "err", cause)
	closeAll(in.consumers)
	in.consumers = nil
}

// resume subscribes again after an outage, in the background (a record just got written: the
// external system is back).
func (in *intake) resume() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.paused || in.resuming {
		return
	}
	in.resuming = true
	in.resumes++
	in.bg.Go(func() {
		in.forwards.Wait() // the old forwarders are gone: nothing else writes to out for them
		err := in.subscribe(in.ctx, false)
		in.mu.Lock()
		defer in.mu.Unlock()
		in.resuming = false
		if err != nil {
			if in.ctx.Err() == nil && in.fatal != nil {
				in.fatal(fmt.Errorf("runtime: resume after an outage: %w", err)) // paused for good: stop loudly
			}
			return
		}
		in.paused, in.cause = false, nil
		in.setFlag()
		in.r.env.metrics.Paused(false)
		in.r.env.log.Info("external system recovered: Danube consumers resumed")
	})
}

// holdPoison reports a record that keeps failing while others are written (or clears it: reason
// ""): it shows on /readyz until it is written or dead-lettered.
func (in *intake) holdPoison(id, reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if reason == "" {
		delete(in.poison, id)
	} else {
		in.poison[id] = reason
	}
	in.r.env.metrics.Poisoned(len(in.poison))
	in.setFlag()
}

// hasPoison reports whether a poison record is held.
func (in *intake) hasPoison() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.poison) > 0
}

func (in *intake) setFlag() {
	var errs []error
	if in.paused {
		errs = append(errs, fmt.Errorf("delivery paused, external system failing: %w", in.cause))
	}
	for id, reason := range in.poison {
		errs = append(errs, fmt.Errorf("poison message %s held and retried: %s", id, reason))
	}
	in.flag.Set(errors.Join(errs...))
}

// close stops the consumers; the caller has ended in.ctx.
func (in *intake) close() {
	if in.gaps != nil {
		in.gaps.close()
	}
	in.bg.Wait()
	in.mu.Lock()
	cs := in.consumers
	in.consumers = nil
	in.mu.Unlock()
	in.forwards.Wait()
	closeAll(cs)
}

// closeAll closes consumers; their Close only reports that a close was already under way.
func closeAll(cs []*danube.Consumer) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// replayFilter remembers messages that were written but whose ack did not reach the broker, so
// that their redelivery is acked rather than written again. It is bounded: past max entries the
// oldest are forgotten (their redelivery is written again: at-least-once).
type replayFilter struct {
	mu    sync.Mutex
	max   int
	seen  map[replayKey]struct{}
	order []replayKey
}

type replayKey struct {
	topic  string
	offset uint64
}

func newReplayFilter(limit int) *replayFilter {
	return &replayFilter{max: limit, seen: map[replayKey]struct{}{}}
}

// add remembers m.
func (f *replayFilter) add(m *danube.Message) {
	k := replayKey{m.Topic, m.Offset}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.seen[k]; ok {
		return
	}
	if len(f.order) >= f.max {
		delete(f.seen, f.order[0])
		f.order = f.order[1:]
	}
	f.seen[k] = struct{}{}
	f.order = append(f.order, k)
}

// take reports whether m was remembered, and forgets it.
func (f *replayFilter) take(m *danube.Message) bool {
	k := replayKey{m.Topic, m.Offset}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return false
	}
	if _, ok := f.seen[k]; !ok {
		return false
	}
	delete(f.seen, k)
	return true
}
