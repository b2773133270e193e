package sinkhttp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

// BenchmarkSinkVsPlainClient measures msgs/s of 1 KiB messages from Danube through the sink-http
// process into a local receiver, against a plain Go client posting the same messages to the same
// receiver at the same concurrency, and the sink process's peak RSS. Run it once:
//
//	go test -run '^$' -bench SinkVsPlainClient -benchtime 1x ./integration/sinkhttp/
//
// Two broker windows are measured: max_unacked_messages=10 (Danube's default) and 100 (raised, as
// operators do for throughput: dispatch.max_unacked_messages or the admin API's
// SetSubscriptionDispatchConfig); BATCH_SIZE follows the window, MAX_IN_FLIGHT is 8 for both the
// sink and the plain client.
//
// BENCH_SINK_ENV=NAME=value adds one variable to the sink's environment and logs its output.
func BenchmarkSinkVsPlainClient(b *testing.B) {
	for _, c := range []struct {
		name     string
		window   int // broker max_unacked_messages (Danube's default is 10) = BATCH_SIZE
		inFlight int
	}{
		{"window=10/inflight=8", 10, 8},
		{"window=100/inflight=8", 100, 8},
	} {
		b.Run(c.name, func(b *testing.B) { benchSink(b, c.window, c.inFlight) })
	}
}

func benchSink(b *testing.B, window, inFlight int) {
	const n = 20000
	payload := bytes.Repeat([]byte("x"), 1024)
	var sinkRate, plainRate, rssMiB, cpu float64
	for iter := 0; iter < b.N; iter++ {
		topic := fmt.Sprintf("/default/bench-%d", iter)
		broker, _, prod := setup(b, devbroker.Config{MaxUnackedMessages: window}, topic)

		var got atomic.Int64
		var first, last atomic.Int64
		done := make(chan struct{})
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			now := time.Now().UnixNano()
			first.CompareAndSwap(0, now)
			last.Store(now)
			if got.Add(1) == n {
				close(done)
			}
		}))

		// Fill the topic first, so the sink's rate is not the producer's.
		ctx := context.Background()
		var wg sync.WaitGroup
		var sendErr atomic.Value
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: payload, Key: fmt.Sprintf("k%d", i%64)}); err != nil {
						sendErr.Store(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err, _ := sendErr.Load().(error); err != nil {
			b.Fatal(err)
		}

		env := sinkEnv(broker.URL(), rc.URL, topic,
			fmt.Sprintf("MAX_IN_FLIGHT=%d", inFlight), fmt.Sprintf("BATCH_SIZE=%d", window), "LOG_LEVEL=warn")
		extra := os.Getenv("BENCH_SINK_ENV") // e.g. GODEBUG=gctrace=1
		if extra != "" {
			env = append(env, extra)
		}
		s := startSink(b, env)
		if extra != "" {
			defer func() { b.Logf("sink output:\n%s", s.out) }()
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("sink delivered %d of %d\n%s", got.Load(), n, s.out)
		}
		sinkRate += float64(n) / time.Duration(last.Load()-first.Load()).Seconds()
		// VmHWM of the running process: rusage's maxrss of a child started with vfork also counts
		// the parent's pages before exec, so it would report the benchmark's own size.
		rssMiB = max(rssMiB, peakRSS(b, s.cmd.Process.Pid))
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		cpu += (s.cmd.ProcessState.UserTime() + s.cmd.ProcessState.SystemTime()).Seconds() * 1e6 / n

		// The plain client: the same bodies, the same receiver, the same concurrency.
		got.Store(-1 << 40) // never reaches n again: done stays closed once
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}}
		var next atomic.Int64
		start := time.Now()
		for range inFlight {
			wg.Go(func() {
				for next.Add(1) <= n {
					resp, err := hc.Post(rc.URL, "application/octet-stream", bytes.NewReader(payload))
					if err != nil {
						sendErr.Store(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
		}
		wg.Wait()
		plainRate += float64(n) / time.Since(start).Seconds()
		hc.CloseIdleConnections()
		rc.Close()
		if err, _ := sendErr.Load().(error); err != nil {
			b.Fatal(err)
		}
	}
	sinkRate /= float64(b.N)
	plainRate /= float64(b.N)
	b.ReportMetric(sinkRate, "sink-msgs/s")
	b.ReportMetric(plainRate, "plain-msgs/s")
	b.ReportMetric(sinkRate/plainRate, "ratio")
	b.ReportMetric(rssMiB, "peak-rss-MiB")
	b.ReportMetric(cpu/float64(b.N), "sink-cpu-µs/msg")
}

// peakRSS reads VmHWM (peak resident set size) of process pid, in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib float64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib); err != nil {
				b.Fatal(err)
			}
			return kib / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
