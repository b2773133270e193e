package devbroker

import "time"

// window is a reliable subscription's dispatch window: the entries for the
// offsets [ackFloor, next) in a ring indexed by offset, so lookup, admission
// and cursor advance are O(1). Counters replace scans for the capacity and
// Block checks, and two heaps make a delivery O(log n) rather than a sort of
// the window: ready holds the offsets eligible now, lowest first (redelivery
// keeps offset order), waiting holds retries until their backoff is due.
// KeyShared subscriptions do not use the heaps: their per-key ordering needs
// the in-order scan of every unsettled entry.
type window struct {
	buf  []*entry // ring; its length is zero or a power of two
	head int      // ring index of the entry for ackFloor
	n    int      // entries held, next-ackFloor

	unsettled int // entries not stateDone: what MaxUnackedMessages bounds
	blocked   int // entries in stateBlocked: while any is, nothing is admitted

	ready   minHeap[uint64]
	waiting minHeap[retryAt]

	keys *keyTable // KeyShared only
}

// retryAt is a stateReady entry whose retry delay has not elapsed yet.
type retryAt struct {
	due time.Time
	off uint64
}

func newWindow(keyShared bool) *window {
	var keys *keyTable
	if keyShared {
		keys = &keyTable{}
	}
	return &window{
		keys:    keys,
		ready:   minHeap[uint64]{less: func(a, b uint64) bool { return a < b }},
		waiting: minHeap[retryAt]{less: func(a, b retryAt) bool { return a.due.Before(b.due) || a.due.Equal(b.due) && a.off < b.off }},
	}
}

// at returns the i-th entry from the floor; i < w.n.
func (w *window) at(i uint64) *entry { return w.buf[(w.head+int(i))&(len(w.buf)-1)] }

func (w *window) pushBack(e *entry) {
	if w.n == len(w.buf) {
		w.resize(max(minRing, 2*len(w.buf)))
	}
	w.buf[(w.head+w.n)&(len(w.buf)-1)] = e
	w.n++
}

// minRing is the smallest ring; shrinkRing is the size above which a ring
// that is three-quarters empty is halved, so a span that grew behind one
// unacked message does not keep its memory forever.
const (
	minRing    = 16
	shrinkRing = 1024
)

func (w *window) resize(size int) {
	buf := make([]*entry, size)
	for i := 0; i < w.n; i++ {
		buf[i] = w.at(uint64(i))
	}
	w.buf, w.head = buf, 0
}

func (w *window) front() *entry {
	if w.n == 0 {
		return nil
	}
	return w.buf[w.head]
}

func (w *window) popFront() {
	w.buf[w.head] = nil
	w.head = (w.head + 1) & (len(w.buf) - 1)
	w.n--
	if len(w.buf) > shrinkRing && w.n < len(w.buf)/4 {
		w.resize(len(w.buf) / 2)
	}
}

// minHeap is a binary heap of values ordered by less.
type minHeap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (h *minHeap[T]) len() int { return len(h.items) }

func (h *minHeap[T]) peek() T { return h.items[0] }

func (h *minHeap[T]) push(v T) {
	h.items = append(h.items, v)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *minHeap[T]) pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(h.items[l], h.items[m]) {
			m = l
		}
		if r < last && h.less(h.items[r], h.items[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}

// keyTable interns a KeyShared window's routing keys, so the dispatch scan
// marks a key locked in a slice rather than hashing it into a map for every
// unsettled entry. IDs are reference-counted by the window's entries and
// reused once their last entry leaves the window.
type keyTable struct {
	ids  map[string]int32
	refs []int32
	free []int32
	mark []uint32 // the scan generation that last locked each key
	gen  uint32
}

func (k *keyTable) acquire(key string) int32 {
	if id, ok := k.ids[key]; ok {
		k.refs[id]++
		return id
	}
	if k.ids == nil {
		k.ids = map[string]int32{}
	}
	var id int32
	if n := len(k.free); n > 0 {
		id, k.free = k.free[n-1], k.free[:n-1]
	} else {
		id = int32(len(k.refs))
		k.refs = append(k.refs, 0)
		k.mark = append(k.mark, 0)
	}
	k.ids[key] = id
	k.refs[id] = 1
	return id
}

func (k *keyTable) release(key string, id int32) {
	if k.refs[id]--; k.refs[id] == 0 {
		delete(k.ids, key)
		k.free = append(k.free, id)
	}
}

// newScan starts a dispatch scan: no key is locked.
func (k *keyTable) newScan() {
	if k.gen++; k.gen == 0 { // wrapped: forget every old mark
		clear(k.mark)
		k.gen = 1
	}
}

// lock marks id locked for this scan and reports whether it already was.
func (k *keyTable) lock(id int32) (already bool) {
	if k.mark[id] == k.gen {
		return true
	}
	k.mark[id] = k.gen
	return false
}
