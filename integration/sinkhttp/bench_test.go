package sinkhttp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
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
// process into a local receiver, against a plain Go client process posting the same messages to
// the same receiver at the same concurrency, as a ratio in one run:
//
//	go test -run '^$' -bench SinkVsPlainClient -benchtime 1x ./integration/sinkhttp/
//
// The receiver waits 0, 2 or 20 ms before answering 200 (a zero-latency receiver makes the run
// CPU-bound: broker, sink and receiver share the machine; real endpoints have latency, and there
// the question is whether the sink keeps MAX_IN_FLIGHT requests busy). Two settings:
//
//   - default: every sink variable at its default (MAX_IN_FLIGHT=1, BATCH_SIZE=1) and the broker's
//     default window (max_unacked_messages=10); the plain client sends one request at a time.
//   - tuned: the README's settings for a busy endpoint, MAX_IN_FLIGHT=32, BATCH_SIZE=100 and a
//     broker window of 100; the plain client runs 32 concurrent requests. With MAX_IN_FLIGHT above
//     1 the sink streams records to concurrent requests (no batch barrier), keeping the order of
//     each of the 64 routing keys.
//
// Both sides are separate processes (the plain client is this test binary started again), so the
// benchmark also reports each one's CPU per message (user+system over the whole process life,
// start-up included: it weighs on the short latency runs) and peak RSS. Rates are measured at the
// receiver, from the first to the last arrival. Each case sends as many messages as the plain client
// can deliver in about 2 s (at most 20,000), so a full run takes about a minute.
//
// BENCH_SINK_ENV=NAME=value adds one variable to the sink's environment and logs its output.
func BenchmarkSinkVsPlainClient(b *testing.B) {
	for _, set := range []struct {
		name     string
		window   int      // broker max_unacked_messages
		inFlight int      // the sink's MAX_IN_FLIGHT and the plain client's concurrency
		env      []string // sink settings beyond the defaults
	}{
		{"default", 10, 1, nil},
		{"tuned", 100, 32, []string{"MAX_IN_FLIGHT=32", "BATCH_SIZE=100", "BATCH_TIMEOUT_MS=5"}},
	} {
		for _, lat := range []time.Duration{0, 2 * time.Millisecond, 20 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/latency=%s", set.name, lat), func(b *testing.B) {
				n := 20000
				if lat > 0 {
					n = min(n, int(2*time.Second/lat)*set.inFlight)
				}
				benchSink(b, benchCase{n: n, window: set.window, inFlight: set.inFlight, latency: lat, env: set.env})
			})
		}
	}
}

type benchCase struct {
	n, window, inFlight int
	latency             time.Duration
	env                 []string
}

// phase counts the arrivals of one side of the comparison.
type phase struct {
	n           int64
	got         atomic.Int64
	first, last atomic.Int64 // unix nanos
	busy        atomic.Int64 // nanoseconds spent in the handler, summed over requests
	done        chan struct{}
}

func (p *phase) rate() float64 {
	return float64(p.n) / time.Duration(p.last.Load()-p.first.Load()).Seconds()
}

// inFlight is the mean number of requests the receiver was handling at once.
func (p *phase) inFlight() float64 {
	return float64(p.busy.Load()) / float64(p.last.Load()-p.first.Load())
}

// sideStats is one process's cost.
type sideStats struct{ rate, inFlight, cpuMicros, rssMiB float64 }

func benchSink(b *testing.B, c benchCase) {
	payload := bytes.Repeat([]byte("x"), 1024)
	var sink, plain sideStats
	for iter := 0; iter < b.N; iter++ {
		topic := fmt.Sprintf("/default/bench-%d", iter)
		broker, _, prod := setup(b, devbroker.Config{MaxUnackedMessages: c.window}, topic)

		var cur atomic.Pointer[phase]
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			_, _ = io.Copy(io.Discard, r.Body)
			if c.latency > 0 {
				time.Sleep(c.latency)
			}
			p := cur.Load()
			now := time.Now().UnixNano()
			p.busy.Add(now - start.UnixNano())
			p.first.CompareAndSwap(0, now)
			p.last.Store(now)
			if p.got.Add(1) == p.n {
				close(p.done)
			}
		}))

		// Fill the topic first, so the sink's rate is not the producer's. The 64 routing keys
		// follow the send order (a shared sequence), so any stretch of the topic mixes them all,
		// whichever sender the scheduler favours.
		ctx := context.Background()
		var wg sync.WaitGroup
		var sendErr atomic.Value
		var seq atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := seq.Add(1) - 1; i < int64(c.n); i = seq.Add(1) - 1 {
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

		sp := &phase{n: int64(c.n), done: make(chan struct{})}
		cur.Store(sp)
		env := sinkEnv(broker.URL(), rc.URL, topic, append([]string{"LOG_LEVEL=warn"}, c.env...)...)
		extra := os.Getenv("BENCH_SINK_ENV") // e.g. GODEBUG=gctrace=1
		if extra != "" {
			env = append(env, extra)
		}
		s := startSink(b, env)
		if extra != "" {
			defer func() { b.Logf("sink output:\n%s", s.out) }()
		}
		select {
		case <-sp.done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("sink delivered %d of %d\n%s", sp.got.Load(), c.n, s.out)
		}
		// VmHWM of the running process: rusage's maxrss of a child started with vfork also counts
		// the parent's pages before exec, so it would report the benchmark's own size.
		sink.rssMiB = max(sink.rssMiB, peakRSS(b, s.cmd.Process.Pid))
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		sink.rate += sp.rate()
		sink.inFlight += sp.inFlight()
		sink.cpuMicros += cpuMicros(s.cmd.ProcessState, c.n)

		// The plain client: the same bodies, the same receiver, the same concurrency.
		pp := &phase{n: int64(c.n), done: make(chan struct{})}
		cur.Store(pp)
		pc := exec.Command(os.Args[0])
		pc.Env = []string{plainClientEnv + "=" + strings.Join([]string{rc.URL, strconv.Itoa(c.n), strconv.Itoa(c.inFlight)}, ",")}
		var out bytes.Buffer
		pc.Stdout, pc.Stderr = &out, &out
		if err := pc.Start(); err != nil {
			b.Fatal(err)
		}
		<-pp.done
		if err := pc.Wait(); err != nil {
			b.Fatalf("plain client: %v\n%s", err, out.String())
		}
		// The client prints its own VmHWM as it exits (a zombie's /proc status has none).
		var kib float64
		if _, err := fmt.Sscan(out.String(), &kib); err != nil {
			b.Fatalf("plain client output %q: %v", out.String(), err)
		}
		plain.rssMiB = max(plain.rssMiB, kib/1024)
		plain.rate += pp.rate()
		plain.inFlight += pp.inFlight()
		plain.cpuMicros += cpuMicros(pc.ProcessState, c.n)
		rc.Close()
	}
	nb := float64(b.N)
	b.ReportMetric(float64(c.n), "msgs")
	b.ReportMetric(sink.rate/nb, "sink-msgs/s")
	b.ReportMetric(plain.rate/nb, "plain-msgs/s")
	b.ReportMetric(sink.rate/plain.rate, "ratio")
	b.ReportMetric(sink.inFlight/nb, "sink-in-flight")
	b.ReportMetric(plain.inFlight/nb, "plain-in-flight")
	b.ReportMetric(sink.cpuMicros/nb, "sink-cpu-µs/msg")
	b.ReportMetric(plain.cpuMicros/nb, "plain-cpu-µs/msg")
	b.ReportMetric(sink.rssMiB, "sink-rss-MiB")
	b.ReportMetric(plain.rssMiB, "plain-rss-MiB")
}

func cpuMicros(ps *os.ProcessState, n int) float64 {
	return (ps.UserTime() + ps.SystemTime()).Seconds() * 1e6 / float64(n)
}

// plainClientEnv makes the test binary the benchmark's plain client: URL,messages,concurrency.
const plainClientEnv = "SINKHTTP_BENCH_PLAIN_CLIENT"

// plainClient posts n 1 KiB bodies to url from c goroutines sharing one keep-alive pool; it is the
// yardstick of BenchmarkSinkVsPlainClient.
func plainClient(spec string) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return fmt.Errorf("%s=%q: want URL,messages,concurrency", plainClientEnv, spec)
	}
	n, err1 := strconv.Atoi(parts[1])
	c, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || n < 1 || c < 1 {
		return fmt.Errorf("%s=%q: messages and concurrency must be positive integers", plainClientEnv, spec)
	}
	payload := bytes.Repeat([]byte("x"), 1024)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := hc.Post(parts[0], "application/octet-stream", bytes.NewReader(payload))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %s", resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	kib, err := vmHWM(os.Getpid())
	if err != nil {
		return err
	}
	fmt.Println(kib)
	return nil
}

// peakRSS reads the peak resident set size of process pid, in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	kib, err := vmHWM(pid)
	if err != nil {
		b.Fatal(err)
	}
	return kib / 1024
}

// vmHWM reads VmHWM (peak resident set size) of process pid, in KiB.
func vmHWM(pid int) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib float64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib); err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmHWM %q: %w", pid, v, err)
			}
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
