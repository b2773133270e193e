// Package batch groups records per partition by size and time with boundaries that depend only on
// message offsets, so a batch that is redelivered after a crash is formed again identically (a
// ClickHouse sink derives its insert_deduplication_token from partition and first/last offset).
//
// Rule: for a batch size N, the records of one partition with offsets in [k·N, (k+1)·N) form one
// batch. A batch is complete when it holds N records or when its last aligned offset arrived; a
// batch is also cut when the first record of the next window arrives or when it is older than the
// timeout, or when no record arrived for it within the idle time (WithIdle). Only those cuts depend
// on timing; they happen when the partition is idle: the tail of the window has not been produced
// yet, or the broker holds it back because its window of unacked messages is full. Topics without offsets (non-reliable, all 0) fall
// back to plain count-based batching.
package batch

import "time"

// Batch is a group of records from one partition, in arrival order.
type Batch[T any] struct {
	Partition   string
	Items       []T
	First, Last uint64 // lowest and highest offset
	window      uint64
	deadline    time.Time
	last        time.Time // when the last record was added
	held        []uint64  // bit per offset of the window: which are in Items
}

// Batcher accumulates records. It is not safe for concurrent use: one sink loop owns it.
type Batcher[T any] struct {
	size    int
	timeout time.Duration
	idle    time.Duration
	pending map[string]*Batch[T]
	order   []string // partitions with a pending batch, oldest first
}

// New returns a Batcher; size < 1 means 1, timeout <= 0 means no time-based cut.
func New[T any](size int, timeout time.Duration) *Batcher[T] {
	if size < 1 {
		size = 1
	}
	return &Batcher[T]{size: size, timeout: timeout, pending: map[string]*Batch[T]{}}
}

// WithIdle makes b also cut a batch when no record arrived for it within idle (0: never): the
// broker sends no more than its window of unacked messages, so a batch larger than that window
// would otherwise wait for its timeout while nothing can come.
func (b *Batcher[T]) WithIdle(idle time.Duration) *Batcher[T] {
	b.idle = idle
	return b
}

// Add appends v (at offset in partition) and returns the batches this completed, oldest first.
func (b *Batcher[T]) Add(partition string, offset uint64, v T, now time.Time) []*Batch[T] {
	var out []*Batch[T]
	w := offset / uint64(b.size)
	cur := b.pending[partition]
	if cur != nil && cur.window != w {
		out = append(out, b.take(partition))
		cur = nil
	}
	if cur == nil {
		cur = &Batch[T]{Partition: partition, First: offset, Last: offset, window: w, deadline: now.Add(b.timeout),
			held: make([]uint64, (b.size+63)/64)}
		b.pending[partition] = cur
		b.order = append(b.order, partition)
	}
	// A redelivery (the broker's ack timeout passed while the batch filled) is already held: the
	// batch keeps one copy, so that it is written once and stays identical on a retry. Offset 0 is
	// never taken for a redelivery: non-reliable topics have no offsets.
	if i := offset - w*uint64(b.size); offset > 0 {
		if cur.held[i/64]&(1<<(i%64)) != 0 {
			return out
		}
		cur.held[i/64] |= 1 << (i % 64)
	}
	cur.Items = append(cur.Items, v)
	cur.last = now
	cur.First, cur.Last = min(cur.First, offset), max(cur.Last, offset)
	if len(cur.Items) >= b.size || (offset+1)%uint64(b.size) == 0 {
		out = append(out, b.take(partition))
	}
	return out
}

// Expired removes and returns the batches whose timeout or idle time passed at now.
func (b *Batcher[T]) Expired(now time.Time) []*Batch[T] {
	var out []*Batch[T]
	for _, p := range append([]string(nil), b.order...) {
		if d, ok := b.cut(b.pending[p]); ok && !d.After(now) {
			out = append(out, b.take(p))
		}
	}
	return out
}

// Deadline is the earliest time a pending batch expires; ok is false when nothing is pending or
// nothing expires.
func (b *Batcher[T]) Deadline() (t time.Time, ok bool) {
	for _, p := range b.order {
		if d, cuts := b.cut(b.pending[p]); cuts && (!ok || d.Before(t)) {
			t, ok = d, true
		}
	}
	return t, ok
}

// cut returns when bt is cut by time, if it is.
func (b *Batcher[T]) cut(bt *Batch[T]) (t time.Time, ok bool) {
	if b.timeout > 0 {
		t, ok = bt.deadline, true
	}
	if b.idle > 0 {
		if d := bt.last.Add(b.idle); !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

// Drain removes and returns every pending batch (on shutdown).
func (b *Batcher[T]) Drain() []*Batch[T] {
	var out []*Batch[T]
	for len(b.order) > 0 {
		out = append(out, b.take(b.order[0]))
	}
	return out
}

// Len is the number of records pending.
func (b *Batcher[T]) Len() int {
	n := 0
	for _, p := range b.pending {
		n += len(p.Items)
	}
	return n
}

func (b *Batcher[T]) take(p string) *Batch[T] {
	bt := b.pending[p]
	delete(b.pending, p)
	for i, q := range b.order {
		if q == p {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
	return bt
}
