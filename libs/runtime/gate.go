package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/danube-messaging/danube-connect-go/libs/backoff"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// gate runs the reconnect contract (see Reconnector). Connector calls share it; a reconnect holds it
// alone, so no call runs while the connector reconnects, and a reconnect waits for the calls in
// progress. Each reconnect starts a new generation: a caller whose call failed in an older
// generation only retries, so one lost connection is reconnected once, however many calls saw it.
type gate struct {
	conn    Reconnector // nil: the repeated call is the probe
	policy  retry.Policy
	env     *env
	busy    *liveness
	flag    telemetry.Flag // readiness of the external connection
	mu      sync.RWMutex
	gen     uint64       // under mu
	streak  atomic.Int64 // reconnect rounds since a call last got through: the backoff's attempt
	pending atomic.Bool  // a background reconnect (from HealthCheck) is queued
	wg      sync.WaitGroup
	fatal   func(error) // stops the runner when a background reconnect fails fatally

	intMu     sync.Mutex
	interrupt func() // cancels a blocking call (a Poll) so that a reconnect need not wait for it
}

func newGate(conn any, e *env, busy *liveness, policy retry.Policy) *gate {
	g := &gate{policy: policy.Forever(), env: e, busy: busy}
	g.conn, _ = conn.(Reconnector)
	g.flag.Set(nil)
	return g
}

// Run calls f, with no reconnect in progress, and returns the generation it ran in.
func (g *gate) Run(f func()) uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	f()
	return g.gen
}

// OK records that a call got through: the next outage starts its backoff afresh.
func (g *gate) OK() {
	if g.streak.Load() != 0 {
		g.streak.Store(0)
	}
}

// Interrupt registers (nil: clears) the cancel func of a blocking call in progress.
func (g *gate) Interrupt(cancel func()) {
	g.intMu.Lock()
	g.interrupt = cancel
	g.intMu.Unlock()
}

// Reconnect handles a call of generation gen that failed with the Disconnected error cause: unless
// another caller already reconnected, it marks the connection not ready, backs off with jitter and
// reconnects until that succeeds. It returns ctx's error when ctx ends first, or the connector's
// Fatal error.
func (g *gate) Reconnect(ctx context.Context, gen uint64, cause error) error {
	g.intMu.Lock()
	if g.interrupt != nil {
		g.interrupt()
	}
	g.intMu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen {
		return nil
	}
	g.flag.Set(fmt.Errorf("external connection lost, reconnecting: %w", cause))
	for {
		attempt := int(g.streak.Add(1))
		wait := g.policy.Next(attempt)
		g.env.log.Warn("external connection lost; reconnecting", "attempt", attempt, "wait", wait, "err", cause)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return errors.Join(cause, err)
		}
		if g.conn == nil {
			break
		}
		leave := g.busy.Enter()
		err := g.conn.Reconnect(ctx)
		leave()
		if err == nil {
			break
		}
		if ClassOf(err) == ClassFatal {
			return fmt.Errorf("runtime: reconnect: %w", err)
		}
		cause = err
		g.flag.Set(fmt.Errorf("external connection lost, reconnecting: %w", cause))
	}
	g.gen++
	g.env.metrics.Reconnected()
	g.flag.Set(nil)
	g.env.log.Info("external connection restored")
	return nil
}

// health wraps the connector's HealthCheck for /readyz: not ready while reconnecting, and a
// Disconnected answer queues a reconnect in the background (ctx bounds it).
func (g *gate) health(ctx context.Context, check func(context.Context) error) func(context.Context) error {
	return func(probe context.Context) error {
		if err := g.flag.Check(probe); err != nil {
			return err
		}
		if !g.mu.TryRLock() {
			return errors.New("external connection: reconnecting")
		}
		gen := g.gen
		err := check(probe)
		g.mu.RUnlock()
		if err != nil && ClassOf(err) == ClassDisconnected && g.pending.CompareAndSwap(false, true) {
			g.wg.Go(func() {
				defer g.pending.Store(false)
				if rerr := g.Reconnect(ctx, gen, err); rerr != nil && ctx.Err() == nil && g.fatal != nil {
					g.fatal(rerr)
				}
			})
		}
		return err
	}
}

// OnFatal registers what stops the runner when a background reconnect fails fatally.
func (g *gate) OnFatal(stop func(error)) { g.fatal = stop }

// wait waits for a background reconnect to end (its context bounds it).
func (g *gate) wait() { g.wg.Wait() }

// start initializes conn (see initialize), registers its health check behind the reconnect gate
// and returns the gate; shutdown waits for a background reconnect and shuts the connector down.
func (e *env) start(ctx, work context.Context, name string, conn lifecycle, busy *liveness, policy retry.Policy) (g *gate, shutdown func() error, err error) {
	if err := e.initialize(ctx, work, name, conn, policy); err != nil {
		return nil, nil, err
	}
	g = newGate(conn, e, busy, policy)
	// Registered once Initialize returned, so a connector need not guard Initialize against a
	// concurrent HealthCheck.
	e.ready(name+"/external", g.health(work, conn.HealthCheck))
	return g, func() error {
		g.wait()
		if err := conn.Shutdown(work); err != nil {
			return fmt.Errorf("runtime: shut down connector %q: %w", name, err)
		}
		return nil
	}, nil
}
