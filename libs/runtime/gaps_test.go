package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// written records the payloads a sink wrote; it crashes (a fatal error, nothing acked after it)
// on the crashAt-th record when crashAt > 0.
type written struct {
	runtime.SinkBase
	mu      sync.Mutex
	got     map[string]bool
	n       int
	crashAt int
}

var errCrash = errors.New("simulated crash")

func (w *written) Process(_ context.Context, r *runtime.SinkRecord) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.n == w.crashAt {
		return runtime.Fatal(errCrash)
	}
	w.got[string(r.Payload())] = true
	return nil
}

func (w *written) has(p string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got[p]
}

func (w *written) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}

// A sink that crashes while its subscription falls far behind: on a broker that loses messages as
// v0.15.1 does, what the sink writes plus connector_delivery_gaps_total accounts for every message,
// the log names the range and /readyz shows it; on a broker that loses nothing no gap is reported.
func TestSinkReportsMessagesDanubeSkipped(t *testing.T) {
	for _, lagDrop := range []bool{true, false} {
		t.Run(fmt.Sprintf("lag-drop=%v", lagDrop), func(t *testing.T) {
			cfg := runtimetest.BrokerConfig(t.TempDir())
			cfg.MaxUnackedMessages, cfg.LagDrop, cfg.AckTimeout = 100, lagDrop, time.Minute
			b, err := devbroker.Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			const topic, total = "/default/gaps", 1100
			runtimetest.CreateTopic(t, b, topic)
			sc := runtimetest.SinkConfig(b, "gaps", topic)
			sc.GapConfirm = config.Millis(300 * time.Millisecond)
			w := &written{got: map[string]bool{}, crashAt: 30}
			first := runtimetest.StartSink(t, sc, w)
			publish := func(from, to int) {
				var ms []danube.ProducerMessage
				for i := from; i < to; i++ {
					ms = append(ms, danube.ProducerMessage{Payload: fmt.Appendf(nil, "m%d", i)})
				}
				runtimetest.Produce(t, b, topic, ms...)
			}
			publish(0, 100)
			if err := first.Wait(); !errors.Is(err, errCrash) {
				t.Fatalf("first run ended with %v, want the simulated crash", err)
			}
			publish(100, total) // nobody reads: a v0.15.1 broker overflows the subscription's channel

			w.crashAt = 0
			var log runtimetest.SyncBuffer
			second := runtimetest.StartSinkNoWait(t, sc, w, runtime.WithLogger(slog.New(slog.NewJSONHandler(&log, nil))))
			const gapsSeries = `connector_delivery_gaps_total{connector="gaps"}`
			deadline := time.Now().Add(runtimetest.Timeout)
			for w.count()+int(max(second.Metric(t, gapsSeries), 0)) < total {
				if time.Now().After(deadline) {
					t.Fatalf("written %d + gaps %v, want %d", w.count(), second.Metric(t, gapsSeries), total)
				}
				time.Sleep(5 * time.Millisecond)
			}
			gaps := second.Metric(t, gapsSeries)
			ready := second.Telemetry.Ready(context.Background())
			if !lagDrop {
				if gaps != 0 || ready != nil {
					t.Fatalf("gaps %v, readiness %v on a broker that loses nothing", gaps, ready)
				}
				return
			}
			// The messages never written must be one range, and exactly the one reported.
			var lost []int
			for i := range total {
				if !w.has(fmt.Sprintf("m%d", i)) {
					lost = append(lost, i)
				}
			}
			if len(lost) == 0 || int(gaps) != len(lost) || lost[len(lost)-1]-lost[0] != len(lost)-1 {
				t.Fatalf("gaps %v; lost %d messages: %v", gaps, len(lost), lost)
			}
			from, to := lost[0], lost[len(lost)-1]
			if want := fmt.Sprintf("gaps/gaps: %d messages never delivered by Danube since start (restart to clear): %s offsets %d-%d (%d messages)",
				len(lost), topic, from, to, len(lost)); ready == nil || !strings.Contains(ready.Error(), want) {
				t.Fatalf("readiness: %v\nwant %s", ready, want)
			}
			if want := fmt.Sprintf(`"topic":%q,"from":%d,"to":%d,"missing":%d,"subscription":"gaps-sub"`, topic, from, to, len(lost)); !strings.Contains(log.String(), `"msg":"Danube skipped messages of this subscription`) ||
				!strings.Contains(log.String(), want) {
				t.Fatalf("log lacks %s:\n%s", want, log.String())
			}
		})
	}
}

// held writes nothing until release is closed.
type held struct {
	runtime.SinkBase
	release chan struct{}
}

func (h *held) Process(ctx context.Context, _ *runtime.SinkRecord) error {
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A sink slower than its producers falls behind too; with GAP_POLICY=stop the gap ends it with
// ErrDeliveryGap (MainSink exits ExitGap).
func TestGapPolicyStop(t *testing.T) {
	cfg := runtimetest.BrokerConfig(t.TempDir())
	cfg.MaxUnackedMessages, cfg.LagDrop, cfg.AckTimeout = 10, true, time.Minute
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const topic = "/default/gapstop"
	runtimetest.CreateTopic(t, b, topic)
	sc := runtimetest.SinkConfig(b, "gapstop", topic)
	sc.GapPolicy = runtime.GapStop
	sc.GapConfirm = config.Millis(300 * time.Millisecond)
	h := &held{release: make(chan struct{})}
	r := runtimetest.StartSink(t, sc, h)
	var ms []danube.ProducerMessage
	for i := range 400 {
		ms = append(ms, danube.ProducerMessage{Payload: fmt.Appendf(nil, "m%d", i)})
	}
	runtimetest.Produce(t, b, topic, ms...) // the window fills at 10; 10-143 overflow the channel
	close(h.release)
	err = r.Wait()
	if !errors.Is(err, runtime.ErrDeliveryGap) || !strings.Contains(err.Error(), topic+` offsets 10-143 (134 messages), subscription "gapstop-sub" (GAP_POLICY=stop)`) {
		t.Fatalf("got %v", err)
	}
}
