package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// late is a source whose external system is not reachable until up is set.
type late struct {
	streaming
	up    atomic.Bool
	calls atomic.Int32
	err   error // what Initialize returns while down
}

func (l *late) Initialize(context.Context) error {
	l.calls.Add(1)
	if !l.up.Load() {
		return l.err
	}
	return nil
}

// A connector whose external system is not reachable yet (Initialize returns Disconnected) does not
// exit: it waits with backoff, says why on /readyz, and starts once the system appears.
func TestWaitsForExternalSystemAtStart(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/late")
	col := runtimetest.Collect(t, b, "/default/late", "r")
	cfg := runtimetest.SourceConfig(b, "late", "/default/late")
	l := &late{streaming: streaming{in: make(chan runtime.SourceRecord[int], 1)},
		err: runtime.Disconnected(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))}
	r := runtimetest.StartSource(t, cfg, l, false)
	for l.calls.Load() < 3 {
		if r.Done() {
			t.Fatalf("stopped while waiting: %v", r.Wait())
		}
		time.Sleep(time.Millisecond)
	}
	err := r.Telemetry.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "late/external: waiting for the external system: dial tcp 127.0.0.1:5432: connect: connection refused") {
		t.Fatalf("readiness while waiting: %v", err)
	}
	l.up.Store(true)
	r.WaitReady(t)
	l.in <- runtime.NewSourceRecord("", []byte("hello"), 1)
	col.WaitFor(t, "the record", func(ms []*danube.Message) bool { return len(ms) == 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// What waiting cannot fix (wrong credentials, a missing table: any error not classified
// Disconnected) stops the connector at once; a stop while waiting is a clean stop.
func TestInitializeFailsFastOrStopsCleanly(t *testing.T) {
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "denied", "/default/denied")
	l := &late{err: errors.New(`password authentication failed for user "cdc"`)}
	r := runtimetest.StartSource(t, cfg, l, false)
	if err := r.Wait(); err == nil || err.Error() != `runtime: initialize connector "denied": password authentication failed for user "cdc"` {
		t.Fatalf("got %v", err)
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("Initialize called %d times, want 1", n)
	}

	l = &late{err: runtime.Disconnected(errors.New("connection refused"))}
	r = runtimetest.StartSource(t, cfg, l, false)
	for l.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("stop while waiting: %v", err)
	}
}

// An idle source (nothing to publish) still notices that Danube is gone: its producers' health
// checks fail, /readyz and connector_danube_connected say so, and both recover with the broker.
func TestIdleSourceReportsDanubeDown(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/idle")
	cfg := runtimetest.SourceConfig(b, "idle", "/default/idle")
	r := runtimetest.StartSource(t, cfg, &streaming{in: make(chan runtime.SourceRecord[int])}, true)
	const series = `connector_danube_connected{connector="idle"}`
	if v := r.Metric(t, series); v != 1 {
		t.Fatalf("%s = %v while connected", series, v)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(runtimetest.Timeout)
	for r.Telemetry.Ready(context.Background()) == nil || r.Metric(t, series) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still ready %v after the broker stopped", runtimetest.Timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	r.WaitReady(t)
	if v := r.Metric(t, series); v != 1 {
		t.Fatalf("%s = %v once the broker is back", series, v)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
