package sink

import (
	"context"
	"fmt"
	"sync"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// intake is a sink's first stage: it owns the Danube consumers and merges their messages into out.
// It is the valve of holds: closing it closes the consumers, so the broker has nobody to send to,
// no ack-timeout re-send reaches the sink and no delivery attempt is spent while the external
// system is down (a broker stops a subscription for good once a message used up its attempts); the
// records already in hand stay in the sink. Reopening subscribes again.
type intake struct {
	ctx       context.Context // intake's life: ends on stop
	out       chan delivery
	open      func(ctx context.Context, name string) ([]*danube.Consumer, error) // subscribes to every topic
	name      string                                                             // consumer name
	keyShared bool
	replay    *replayFilter // written records whose ack failed: their redelivery is acked here
	settle    *settler
	gaps      *gaps // nil: not checked (Shared, KeyShared)
	metrics   *telemetry.Metrics
	fatal     func(error) // stops the sink when it cannot reopen

	mu        sync.Mutex
	consumers []*danube.Consumer
	reopens   int // a KeyShared sink takes a new consumer name on each
	forwards  sync.WaitGroup
	bg        sync.WaitGroup
}

// start subscribes to every topic and starts forwarding.
func (in *intake) start(ctx context.Context) error {
	name := in.name
	if in.reopens > 0 && in.keyShared {
		// A v0.15.1 broker evicts a KeyShared consumer inactive for 3 s and, should it come back
		// under the same name, never gives it keys again: resume under a new one.
		name = fmt.Sprintf("%s-r%d", name, in.reopens)
	}
	cs, err := in.open(ctx, name)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.consumers = cs
	for _, c := range cs {
		in.forwards.Go(func() { in.forward(c) })
	}
	return nil
}

// forward moves c's messages into out until c closes or intake ends. A message written while its
// ack could not be sent (the consumer was closed, or the ack failed) is acked again instead of
// being written twice.
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
				in.metrics.Received(1)
				in.settle.ack(d)
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

// close closes the consumers (see valve).
func (in *intake) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	closeAll(in.consumers)
	in.consumers = nil
}

// reopen subscribes again in the background (see valve); failing, it stops the sink: a sink
// paused for good would hold its records silently.
func (in *intake) reopen(done func(error)) {
	in.mu.Lock()
	in.reopens++
	in.mu.Unlock()
	in.bg.Go(func() {
		in.forwards.Wait()        // the old forwarders are gone: nothing else writes to out for them
		in.settle.drained(in.ctx) // failed acks of the closed consumers are in the replay filter
		err := in.start(in.ctx)
		if err != nil && in.ctx.Err() == nil && in.fatal != nil {
			in.fatal(fmt.Errorf("runtime: resume after an outage: %w", err))
		}
		done(err)
	})
}

// stop closes the consumers for good; the caller has ended in.ctx.
func (in *intake) stop() {
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
