// Package keyed runs jobs concurrently while keeping the order of jobs that share a key: a key
// has at most one run in flight, and its next jobs wait in the key's queue until that run is
// finished, so a slow or retried job holds back only its own key. It is the one scheduler behind
// the runtime's streaming sink, the source's publishes and the HTTP sink's requests.
package keyed

import (
	"context"
	"sync"
)

// Scheduler says how to run jobs of type T ordered by keys of type K; Serve runs them. The zero
// limits mean no limit. A Scheduler is not modified by Serve: several Serve calls may share one,
// each scheduling its own jobs. Run is called from up to Workers goroutines at once; the other
// funcs from Serve's goroutine, one call at a time.
type Scheduler[K comparable, T any] struct {
	// Key returns job's ordering key, the same on every call for one job; ordered false makes the
	// job wait for no other, and none wait for it.
	Key func(job T) (key K, ordered bool)
	// Run runs a batch of jobs (at most Batch; a key's jobs in their order). A non-nil error halts
	// the scheduler: Serve stops taking jobs, cancels the context of the runs in flight, drops the
	// jobs not started and returns the first such error once the runs in flight have returned.
	Run func(ctx context.Context, jobs []T) error
	// Drop, if set, is told of jobs that will never run: taken before a halt, or still waiting
	// when the work context ended.
	Drop func(jobs []T)
	// Taken, if set, is called for each job as it is taken, in intake order (metrics).
	Taken func(job T)
	// Stopping, if set, is called once when the stop context ends, with how many jobs are
	// taken and not yet finished (they are still run).
	Stopping func(pending int)

	Workers int // most Runs in flight at once
	Pending int // most jobs taken and not finished: intake waits beyond, bounding the queues
	// Batch is the most jobs in one Run (0 = 1): a batch takes the jobs that may start, oldest
	// first, each keyed one with the jobs of its key waiting behind it while there is room.
	Batch int
}

// Serve takes jobs from in until in is closed, stop ends or a Run halts it, and runs each as soon
// as its key and the limits allow; jobs that arrive together (buffered in in) may share a batch.
// Runs get a context derived from work; a job whose turn comes after work ended is dropped, not
// run. Serve returns once every job taken has been run or dropped, with the error that halted it.
func (s *Scheduler[K, T]) Serve(stop, work context.Context, in <-chan T) error {
	l := &loop[K, T]{s: s, waiting: map[K][]T{}, size: max(s.Batch, 1),
		tasks: make(chan []T, max(s.Workers, 1)), done: make(chan result[T], max(s.Workers, 1))}
	l.ctx, l.halt = context.WithCancel(work)
	defer l.halt()
	defer func() {
		close(l.tasks)
		l.wg.Wait()
	}()
	stopped := stop.Done()
	for {
		l.start()
		if in == nil && l.pending == 0 {
			return l.err
		}
		intake := in
		if s.Pending > 0 && l.pending >= s.Pending {
			intake = nil
		}
		select {
		case <-stopped:
			in, stopped = nil, nil
			if s.Stopping != nil {
				s.Stopping(l.pending)
			}
		case job, ok := <-intake:
			if !ok || !l.take(job, in) {
				in = nil
			}
		case res := <-l.done:
			if !l.finish(res) {
				in = nil
			}
		}
		if in == nil {
			stopped = nil // intake is over: a stop now changes nothing
		}
	}
}

// loop is one Serve call's state, owned by its goroutine.
type loop[K comparable, T any] struct {
	s    *Scheduler[K, T]
	ctx  context.Context // the runs': work's, cancelled by a halt
	halt context.CancelFunc
	size int // jobs per batch
	// waiting maps each key that has a job running or ready to the jobs behind it, oldest first.
	waiting map[K][]T
	ready   fifo[unit[K, T]] // jobs that may start: unordered, or the first of their key
	pending int              // jobs taken and not finished
	running int              // Runs in flight
	workers int              // goroutines taking tasks: grown up to the most Runs in flight
	tasks   chan []T
	done    chan result[T]
	wg      sync.WaitGroup
	err     error // the error that halted the loop
}

// unit is a job that may start, with its ordering key.
type unit[K comparable, T any] struct {
	job     T
	key     K
	ordered bool
}

type result[T any] struct {
	jobs []T
	err  error
}

// take queues job, then what in holds buffered at this moment, up to the Pending limit. It
// reports false when in turned out closed.
func (l *loop[K, T]) take(job T, in <-chan T) bool {
	l.add(job)
	for range cap(in) {
		if l.s.Pending > 0 && l.pending >= l.s.Pending {
			return true
		}
		select {
		case job, ok := <-in:
			if !ok {
				return false
			}
			l.add(job)
		default:
			return true
		}
	}
	return true
}

func (l *loop[K, T]) add(job T) {
	l.pending++
	if l.s.Taken != nil {
		l.s.Taken(job)
	}
	k, ordered := l.s.Key(job)
	if ordered {
		if q, busy := l.waiting[k]; busy {
			l.waiting[k] = append(q, job)
			return
		}
		l.waiting[k] = nil
	}
	l.ready.push(unit[K, T]{job, k, ordered})
}

// start hands batches of ready jobs to workers while fewer than Workers run; once the runs'
// context ended (a halt, or work's end) it drops them instead.
func (l *loop[K, T]) start() {
	if l.ctx.Err() != nil {
		l.drop()
		return
	}
	for l.ready.len() > 0 && (l.s.Workers <= 0 || l.running < l.s.Workers) {
		batch := make([]T, 0, min(l.size, l.pending))
		for l.ready.len() > 0 && len(batch) < l.size {
			u := l.ready.pop()
			batch = append(batch, u.job)
			if q := l.waiting[u.key]; u.ordered && len(q) > 0 { // the jobs behind it may join it
				n := min(len(q), l.size-len(batch))
				batch = append(batch, q[:n]...)
				l.waiting[u.key] = q[n:]
			}
		}
		l.running++
		if l.running > l.workers { // every worker is busy: one more
			l.workers++
			l.wg.Go(l.work)
		}
		l.tasks <- batch // never blocks: a worker is idle, or about to take it
	}
}

func (l *loop[K, T]) work() {
	for jobs := range l.tasks {
		l.done <- result[T]{jobs, l.s.Run(l.ctx, jobs)}
	}
}

// drop gives up on every ready job and the jobs behind it; jobs behind a running one follow when
// it is finished.
func (l *loop[K, T]) drop() {
	var jobs []T
	for l.ready.len() > 0 {
		u := l.ready.pop()
		jobs = append(jobs, u.job)
		if u.ordered {
			jobs = append(jobs, l.waiting[u.key]...)
			delete(l.waiting, u.key)
		}
	}
	if len(jobs) == 0 {
		return
	}
	l.pending -= len(jobs)
	if l.s.Drop != nil {
		l.s.Drop(jobs)
	}
}

// finish records a run's end and readies the next job of each of its keys. It reports false when
// the run halted the loop.
func (l *loop[K, T]) finish(res result[T]) bool {
	l.running--
	l.pending -= len(res.jobs)
	var prev K
	seen := false
	for _, job := range res.jobs {
		k, ordered := l.s.Key(job)
		if !ordered || (seen && k == prev) { // a key's jobs in a batch are adjacent
			continue
		}
		prev, seen = k, true
		if q := l.waiting[k]; len(q) > 0 {
			l.waiting[k] = q[1:]
			l.ready.push(unit[K, T]{q[0], k, true})
		} else {
			delete(l.waiting, k)
		}
	}
	if res.err == nil {
		return l.err == nil
	}
	if l.err == nil {
		l.err = res.err
		l.halt()
	}
	return false
}

// fifo is a queue that reuses its array once emptied.
type fifo[E any] struct {
	items []E
	head  int
}

func (f *fifo[E]) len() int { return len(f.items) - f.head }

func (f *fifo[E]) push(e E) { f.items = append(f.items, e) }

func (f *fifo[E]) pop() E {
	e := f.items[f.head]
	var zero E
	f.items[f.head] = zero // let the job be collected
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	}
	return e
}
