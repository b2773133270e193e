package source

import (
	"slices"
	"testing"
	"time"
)

// Two publishes acked at once queue their positions for Commit in source order: the second one's
// prefix cannot be queued while the first one's is between the tracker and the queue.
func TestAckedQueuesPositionsInSourceOrder(t *testing.T) {
	r := &sourceRunner[int]{commitWake: make(chan struct{}, 1)}
	first, second := r.marks.Add(position[int]{p: 1, ok: true}), r.marks.Add(position[int]{p: 2, ok: true})
	secondDone := make(chan struct{})
	r.marked = func() {
		r.marked = nil // under commitMu, as the second ack reads it
		go func() {
			r.acked(second)
			close(secondDone)
		}()
		select { // the second ack must wait for this one to queue its position
		case <-secondDone:
			t.Error("the second ack completed while the first had not queued its position")
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.acked(first)
	<-secondDone
	if !slices.Equal(r.toCommit, []int{1, 2}) {
		t.Fatalf("queued %v, want [1 2]", r.toCommit)
	}
}
