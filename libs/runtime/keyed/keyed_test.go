package keyed_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/keyed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// job is a test job: key "" is unordered; seq is its place in the intake.
type job struct {
	key string
	seq int
}

func (j job) String() string { return fmt.Sprintf("%s%d", j.key, j.seq) }

func byKey(j job) (string, bool) { return j.key, j.key != "" }

// feed sends jobs on a channel with the given buffer and closes it.
func feed(jobs []job, buffer int) <-chan job {
	in := make(chan job, buffer)
	go func() {
		defer close(in)
		for _, j := range jobs {
			in <- j
		}
	}()
	return in
}

// Under random keys, delays and limits, every job runs once; a key never has two runs at once and
// its jobs run in intake order; no more than Workers runs, Pending jobs taken and Batch jobs per run.
func TestOrderAndLimitsHoldUnderConcurrency(t *testing.T) {
	for _, c := range []struct{ workers, pending, batch, buffer int }{
		{1, 0, 1, 0}, {4, 8, 1, 0}, {8, 16, 1, 32}, {3, 0, 1, 64}, {4, 0, 5, 500}, {2, 6, 3, 4}, {0, 0, 1, 16},
	} {
		t.Run(fmt.Sprintf("workers=%d,pending=%d,batch=%d,buffer=%d", c.workers, c.pending, c.batch, c.buffer), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(c.workers), uint64(c.batch)))
			jobs := make([]job, 500)
			for i := range jobs {
				jobs[i] = job{seq: i}
				if k := rng.IntN(12); k > 0 {
					jobs[i].key = fmt.Sprint("k", k)
				}
			}
			var (
				mu                       sync.Mutex
				active                   = map[string]bool{}
				ran                      = map[string][]int{}
				running, peak, taken, hi int
			)
			s := keyed.Scheduler[string, job]{
				Key: byKey, Workers: c.workers, Pending: c.pending, Batch: c.batch,
				Taken: func(job) { mu.Lock(); taken++; hi = max(hi, taken); mu.Unlock() },
				Run: func(_ context.Context, batch []job) error {
					mu.Lock()
					running++
					peak = max(peak, running)
					if len(batch) > max(c.batch, 1) {
						t.Errorf("batch of %d > %d", len(batch), c.batch)
					}
					keys := map[string]bool{}
					for _, j := range batch {
						if j.key != "" && active[j.key] && !keys[j.key] {
							t.Errorf("key %s runs twice at once", j.key)
						}
						active[j.key], keys[j.key] = j.key != "", true
						ran[j.key] = append(ran[j.key], j.seq)
					}
					mu.Unlock()
					time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
					mu.Lock()
					defer mu.Unlock()
					for k := range keys {
						active[k] = false
					}
					running--
					taken -= len(batch)
					return nil
				},
			}
			if err := s.Serve(context.Background(), context.Background(), feed(jobs, c.buffer)); err != nil {
				t.Fatal(err)
			}
			total := 0
			for k, seqs := range ran {
				total += len(seqs)
				if k != "" && !slices.IsSorted(seqs) {
					t.Errorf("key %s ran out of order: %v", k, seqs)
				}
			}
			if total != len(jobs) {
				t.Errorf("%d runs of jobs, want %d", total, len(jobs))
			}
			if c.workers > 0 && peak > c.workers {
				t.Errorf("%d runs at once, Workers=%d", peak, c.workers)
			}
			if c.pending > 0 && hi > c.pending {
				t.Errorf("%d jobs taken and not finished, Pending=%d", hi, c.pending)
			}
		})
	}
}

// gates holds jobs until released and tells when each starts.
type gates struct {
	mu      sync.Mutex
	held    map[string]chan struct{}
	started chan string
}

func newGates(held ...string) *gates {
	g := &gates{held: map[string]chan struct{}{}, started: make(chan string, 100)}
	for _, h := range held {
		g.held[h] = make(chan struct{})
	}
	return g
}

func (g *gates) run(ctx context.Context, batch []job) error {
	for _, j := range batch {
		g.started <- j.String()
		g.mu.Lock()
		gate := g.held[j.String()]
		g.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
	}
	return nil
}

func (g *gates) release(name string) { close(g.held[name]) }

// expect waits for the named starts, in any order, and fails on any other.
func (g *gates) expect(t *testing.T, names ...string) {
	t.Helper()
	for range names {
		select {
		case got := <-g.started:
			if !slices.Contains(names, got) {
				t.Fatalf("%s started, want only %v", got, names)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %v", names)
		}
	}
}

// While a key's job is held, its next job waits, but unordered jobs and other keys' jobs run.
func TestUnorderedAndOtherKeysDoNotWait(t *testing.T) {
	g := newGates("a0", "b1")
	s := keyed.Scheduler[string, job]{Key: byKey, Workers: 3, Run: g.run}
	in := make(chan job)
	served := make(chan error)
	go func() { served <- s.Serve(context.Background(), context.Background(), in) }()
	for _, j := range []job{{"a", 0}, {"a", 1}, {"b", 1}, {"", 2}, {"", 3}, {"c", 4}} {
		in <- j
	}
	g.expect(t, "a0", "b1", "2", "3", "c4") // a1 waits for a0
	g.release("b1")
	select {
	case got := <-g.started:
		t.Fatalf("%s started while a0 is held", got)
	case <-time.After(20 * time.Millisecond):
	}
	g.release("a0")
	g.expect(t, "a1")
	close(in)
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// A failed run halts: the runs in flight are cancelled, the jobs not started are dropped and never
// run, and the error is returned.
func TestHaltDropsJobsNotStarted(t *testing.T) {
	boom := errors.New("boom")
	var mu sync.Mutex
	var dropped, ran []string
	bStarted := make(chan struct{})
	var bErr error
	s := keyed.Scheduler[string, job]{
		Key: byKey, Workers: 2,
		Drop: func(jobs []job) {
			mu.Lock()
			defer mu.Unlock()
			for _, j := range jobs {
				dropped = append(dropped, j.String())
			}
		},
		Run: func(ctx context.Context, batch []job) error {
			mu.Lock()
			ran = append(ran, batch[0].String())
			mu.Unlock()
			switch batch[0].String() {
			case "a0":
				<-bStarted
				return boom
			case "b1":
				close(bStarted)
				<-ctx.Done()
				bErr = ctx.Err()
			}
			return nil
		},
	}
	in := make(chan job, 5)
	for _, j := range []job{{"a", 0}, {"b", 1}, {"a", 2}, {"", 3}, {"a", 4}} {
		in <- j
	}
	if err := s.Serve(context.Background(), context.Background(), in); !errors.Is(err, boom) {
		t.Fatalf("Serve: %v, want boom", err)
	}
	slices.Sort(dropped)
	slices.Sort(ran)
	if fmt.Sprint(dropped) != "[3 a2 a4]" || fmt.Sprint(ran) != "[a0 b1]" || !errors.Is(bErr, context.Canceled) {
		t.Fatalf("dropped %v, ran %v, b1's context %v", dropped, ran, bErr)
	}
	if len(in) != 0 {
		t.Fatalf("%d jobs left untaken", len(in))
	}
}

// When the work context ends, jobs still waiting are dropped instead of run; Serve returns nil.
func TestWorkEndDropsWaitingJobs(t *testing.T) {
	work, cancel := context.WithCancel(context.Background())
	g := newGates("a0")
	var dropped []job
	s := keyed.Scheduler[string, job]{Key: byKey, Workers: 1, Run: g.run, Drop: func(jobs []job) { dropped = append(dropped, jobs...) }}
	in := make(chan job, 3)
	in <- job{"a", 0}
	in <- job{"a", 1}
	in <- job{"", 2}
	close(in)
	served := make(chan error)
	go func() { served <- s.Serve(context.Background(), work, in) }()
	g.expect(t, "a0")
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dropped) != "[2 a1]" {
		t.Fatalf("dropped %v", dropped)
	}
}

// A stop ends the intake: the jobs taken still run, none is taken after it, and Stopping learns
// how many were pending.
func TestStopFinishesTakenJobs(t *testing.T) {
	stop, cancel := context.WithCancel(context.Background())
	g := newGates("a0")
	var taken []string
	took := make(chan struct{}, 3)
	stopping := make(chan int, 1)
	s := keyed.Scheduler[string, job]{
		Key: byKey, Workers: 1, Pending: 2, Run: g.run,
		Taken:    func(j job) { taken = append(taken, j.String()); took <- struct{}{} },
		Stopping: func(n int) { stopping <- n },
	}
	in := make(chan job)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, j := range []job{{"a", 0}, {"a", 1}, {"a", 2}} {
			select {
			case in <- j:
			case <-time.After(time.Second): // a2 is never taken: the Pending limit, then the stop
				return
			}
		}
	}()
	served := make(chan error)
	go func() { served <- s.Serve(stop, context.Background(), in) }()
	g.expect(t, "a0")
	<-took
	<-took // a1 waits behind a0; the Pending limit is reached
	cancel()
	if n := <-stopping; n != 2 {
		t.Fatalf("Stopping(%d), want 2", n)
	}
	g.release("a0")
	g.expect(t, "a1")
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	<-sent
	if fmt.Sprint(taken) != "[a0 a1]" {
		t.Fatalf("taken %v", taken)
	}
}

// Jobs that arrive together share batches: a key's waiting jobs go in one batch in order, and a key
// is never in two batches in flight.
func TestBatchesPackKeysInOrder(t *testing.T) {
	var batches []string
	s := keyed.Scheduler[string, job]{Key: byKey, Workers: 1, Batch: 3, Run: func(_ context.Context, b []job) error {
		batches = append(batches, fmt.Sprint(b))
		return nil
	}}
	in := make(chan job, 7)
	for _, j := range []job{{"a", 0}, {"a", 1}, {"b", 2}, {"a", 3}, {"", 4}, {"b", 5}, {"a", 6}} {
		in <- j
	}
	close(in)
	if err := s.Serve(context.Background(), context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want := []string{"[a0 a1 a3]", "[b2 b5 4]", "[a6]"}
	if !slices.Equal(batches, want) {
		t.Fatalf("batches %q, want %q", batches, want)
	}
}

// The zero key is a key like any other, also in a batch behind an unordered job.
func TestZeroKeyIsAKey(t *testing.T) {
	var batches []string
	s := keyed.Scheduler[string, job]{
		Key:     func(j job) (string, bool) { return j.key, j.key != "u" },
		Workers: 1, Batch: 2,
		Run: func(_ context.Context, b []job) error {
			batches = append(batches, fmt.Sprint(b))
			return nil
		},
	}
	in := make(chan job, 4)
	for _, j := range []job{{"u", 0}, {"", 1}, {"", 2}, {"", 3}} {
		in <- j
	}
	close(in)
	if err := s.Serve(context.Background(), context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if want := []string{"[u0 1]", "[2 3]"}; !slices.Equal(batches, want) {
		t.Fatalf("batches %q, want %q", batches, want)
	}
}

// BenchmarkServe measures the scheduling cost per job: 64 keys, a Run that does nothing.
func BenchmarkServe(b *testing.B) {
	jobs := make([]job, 4096)
	for i := range jobs {
		jobs[i] = job{key: fmt.Sprint("k", i%64), seq: i}
	}
	s := keyed.Scheduler[string, job]{Key: byKey, Run: func(context.Context, []job) error { return nil }, Workers: 8, Pending: 16}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Serve(context.Background(), context.Background(), feed(jobs, 1024)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(jobs)), "ns/job")
}
