// Package watermark tracks records in source order and reports the longest prefix that Danube has
// acknowledged, across every destination topic: "everything up to here is safe to commit".
package watermark

import "sync"

type entry[P any] struct {
	pos  P
	done bool
}

// Tracker is safe for concurrent use. Sequence numbers start at 0 and follow Add order.
type Tracker[P any] struct {
	mu      sync.Mutex
	base    uint64     // sequence number of entries[0]
	entries []entry[P] // not yet committed, oldest first
}

// Add registers the next record in source order and returns its sequence number.
func (t *Tracker[P]) Add(pos P) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = append(t.entries, entry[P]{pos: pos})
	return t.base + uint64(len(t.entries)) - 1
}

// Done marks seq acknowledged and appends to dst the positions that became part of the
// acknowledged prefix, in source order. Unknown or repeated sequence numbers are ignored.
func (t *Tracker[P]) Done(seq uint64, dst []P) []P {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.base || seq-t.base >= uint64(len(t.entries)) {
		return dst
	}
	t.entries[seq-t.base].done = true
	n := 0
	for n < len(t.entries) && t.entries[n].done {
		dst = append(dst, t.entries[n].pos)
		n++
	}
	if n > 0 {
		var zero entry[P]
		for i := 0; i < n; i++ {
			t.entries[i] = zero // let positions be collected
		}
		t.entries = t.entries[n:]
		t.base += uint64(n)
		if len(t.entries) == 0 {
			t.entries = t.entries[:0:0]
		}
	}
	return dst
}

// Pending is the number of records added but not yet part of the acknowledged prefix.
func (t *Tracker[P]) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
