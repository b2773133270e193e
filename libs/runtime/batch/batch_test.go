package batch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/batch"
)

func describe(bs []*batch.Batch[uint64]) string {
	s := ""
	for _, b := range bs {
		s += fmt.Sprintf("[%s %d-%d %v]", b.Partition, b.First, b.Last, b.Items)
	}
	return s
}

func TestBoundariesAlignedToOffsets(t *testing.T) {
	now := time.Unix(0, 0)
	b := batch.New[uint64](4, time.Second)
	var got []*batch.Batch[uint64]
	// Starts mid-window (a restart after offset 1 was acked), crosses into the next window.
	for _, off := range []uint64{2, 3, 4, 5, 6, 7, 8} {
		got = append(got, b.Add("/ns/t-part-0", off, off, now)...)
	}
	if want := "[/ns/t-part-0 2-3 [2 3]][/ns/t-part-0 4-7 [4 5 6 7]]"; describe(got) != want {
		t.Fatalf("got %s, want %s", describe(got), want)
	}
	// A gap (KeyShared skip, or 9 never produced yet) cuts on the next window's first record.
	got = b.Add("/ns/t-part-0", 13, 13, now)
	if want := "[/ns/t-part-0 8-8 [8]]"; describe(got) != want {
		t.Fatalf("got %s, want %s", describe(got), want)
	}
	if b.Len() != 1 {
		t.Fatalf("len %d", b.Len())
	}
}

func TestRedeliveryFormsSameBatch(t *testing.T) {
	now := time.Unix(0, 0)
	first, second := batch.New[uint64](3, 0), batch.New[uint64](3, 0)
	var a, b []*batch.Batch[uint64]
	for off := uint64(0); off < 9; off++ {
		a = append(a, first.Add("p", off, off, now)...)
	}
	for off := uint64(3); off < 9; off++ { // after a crash: 0-2 were acked, 3.. redelivered
		b = append(b, second.Add("p", off, off, now)...)
	}
	if describe(a[1:]) != describe(b) {
		t.Fatalf("first run %s, redelivery %s", describe(a[1:]), describe(b))
	}
}

func TestPartitionsIndependentAndTimeout(t *testing.T) {
	now := time.Unix(100, 0)
	b := batch.New[uint64](10, time.Second)
	b.Add("a", 0, 0, now)
	b.Add("b", 0, 0, now.Add(500*time.Millisecond))
	if d, ok := b.Deadline(); !ok || !d.Equal(now.Add(time.Second)) {
		t.Fatalf("deadline %v %v", d, ok)
	}
	if got := describe(b.Expired(now.Add(time.Second))); got != "[a 0-0 [0]]" {
		t.Fatalf("expired %s", got)
	}
	if got := describe(b.Drain()); got != "[b 0-0 [0]]" {
		t.Fatalf("drain %s", got)
	}
	if _, ok := b.Deadline(); ok {
		t.Fatal("deadline with nothing pending")
	}
}

func TestNoOffsetsCountsOnly(t *testing.T) {
	b := batch.New[uint64](2, 0)
	var got []*batch.Batch[uint64]
	for i := uint64(0); i < 5; i++ {
		got = append(got, b.Add("n", 0, i, time.Time{})...)
	}
	if want := "[n 0-0 [0 1]][n 0-0 [2 3]]"; describe(got) != want {
		t.Fatalf("got %s", describe(got))
	}
}

func BenchmarkAdd(b *testing.B) {
	bt := batch.New[uint64](100, time.Second)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bt.Add("p", uint64(i), uint64(i), now)
	}
}

// A redelivered record (same offset) while its batch fills is held once; offset 0, which
// non-reliable topics give every message, is never taken for one.
func TestRedeliveryHeldOnce(t *testing.T) {
	b := batch.New[string](4, time.Hour)
	now := time.Now()
	for _, r := range []struct {
		off uint64
		v   string
	}{{5, "a"}, {6, "b"}, {5, "a-again"}, {6, "b-again"}} {
		if out := b.Add("p", r.off, r.v, now); len(out) != 0 {
			t.Fatalf("batch cut early: %v", out)
		}
	}
	out := b.Add("p", 7, "c", now)
	if len(out) != 1 || fmt.Sprint(out[0].Items) != "[a b c]" {
		t.Fatalf("got %+v, want one batch [a b c]", out)
	}
	nr := batch.New[string](3, time.Hour)
	nr.Add("q", 0, "x", now)
	nr.Add("q", 0, "y", now)
	if out := nr.Add("q", 0, "z", now); len(out) != 1 || len(out[0].Items) != 3 {
		t.Fatalf("non-reliable batch %+v, want 3 items", out)
	}
}

// With an idle time, a partial batch is cut once nothing arrived for it that long, before its
// timeout: the broker's window may hold the rest back.
func TestIdleCutsBeforeTimeout(t *testing.T) {
	b := batch.New[uint64](100, time.Second).WithIdle(50 * time.Millisecond)
	t0 := time.Unix(0, 0)
	for i := uint64(0); i < 10; i++ {
		if out := b.Add("p", i, i, t0.Add(time.Duration(i)*time.Millisecond)); len(out) != 0 {
			t.Fatalf("cut at %d", i)
		}
	}
	if d, ok := b.Deadline(); !ok || !d.Equal(t0.Add(59*time.Millisecond)) {
		t.Fatalf("deadline %v %v, want 59ms after the first record", d, ok)
	}
	if out := b.Expired(t0.Add(58 * time.Millisecond)); len(out) != 0 {
		t.Fatal("cut before the idle time")
	}
	out := b.Expired(t0.Add(59 * time.Millisecond))
	if len(out) != 1 || len(out[0].Items) != 10 {
		t.Fatalf("expired %v, want the batch of 10", out)
	}
}
