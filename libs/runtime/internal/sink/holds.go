package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// valve is what holds opens and closes: the sink's intake. Closing stops Danube from sending (no
// delivery attempt is spent while the external system is down); reopen subscribes again in the
// background and reports how that went.
type valve interface {
	close()
	reopen(done func(error))
}

// holds is the one place that knows why a sink holds its records back: the external system failing
// (an outage: intake is closed until a record gets written again) or poison records (they keep
// failing while others are written; each is held and retried). It is the readiness check
// <name>/delivery and the metrics connector_paused and connector_records_poisoned.
type holds struct {
	valve   valve
	log     *slog.Logger
	metrics *telemetry.Metrics
	lastOK  atomic.Int64 // unix nanoseconds of the last record written
	flag    telemetry.Flag

	mu       sync.Mutex
	paused   bool
	resuming bool
	cause    error
	poison   map[string]string // message id → why it is held
}

func newHolds(v valve, log *slog.Logger, m *telemetry.Metrics) *holds {
	h := &holds{valve: v, log: log, metrics: m, poison: map[string]string{}}
	h.flag.Set(nil)
	return h
}

// outage closes intake, once per outage; cause shows on /readyz. Intake is closed under the lock,
// so that a write cannot reopen it before it is closed.
func (h *holds) outage(cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cause = cause
	defer h.setFlag()
	if h.paused {
		return
	}
	h.paused = true
	h.metrics.Paused(true)
	h.log.Warn("external system failing: pausing the Danube consumers so that no delivery attempt is spent; "+
		"the records in hand are kept and retried until it recovers", "err", cause)
	h.valve.close()
}

// hold reports a poison record id, held and retried.
func (h *holds) hold(id string, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.poison[id] = cause.Error()
	h.metrics.Poisoned(len(h.poison))
	h.setFlag()
	h.log.Error("poison message: it keeps failing while other messages are written; it is held and retried, and "+
		"Danube will stop the subscription once it used up its delivery attempts (RETRY_EXHAUSTED=dlq with "+
		"DLQ_TOPIC dead-letters such messages)", "message", id, "err", cause)
}

// written records that m got written: the external system is up, so intake reopens if it was
// closed, and m is no longer held.
func (h *holds) written(m *danube.Message) {
	h.lastOK.Store(time.Now().UnixNano())
	h.mu.Lock()
	if len(h.poison) > 0 {
		delete(h.poison, m.ID())
		h.metrics.Poisoned(len(h.poison))
		h.setFlag()
	}
	reopen := h.paused && !h.resuming
	h.resuming = h.resuming || reopen
	h.mu.Unlock()
	if reopen { // outside the lock: the valve may report back at once
		h.valve.reopen(h.reopened)
	}
}

func (h *holds) reopened(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resuming = false
	if err != nil {
		return
	}
	h.paused, h.cause = false, nil
	h.setFlag()
	h.metrics.Paused(false)
	h.log.Info("external system recovered: Danube consumers resumed")
}

// writtenSince reports whether some record was written after t (unix nanoseconds): while others
// get through, a record that keeps failing is poison, not the sign of an outage.
func (h *holds) writtenSince(t int64) bool { return h.lastOK.Load() > t }

func (h *holds) setFlag() {
	var errs []error
	if h.paused {
		errs = append(errs, fmt.Errorf("delivery paused, external system failing: %w", h.cause))
	}
	for id, reason := range h.poison {
		errs = append(errs, fmt.Errorf("poison message %s held and retried: %s", id, reason))
	}
	h.flag.Set(errors.Join(errs...))
}
