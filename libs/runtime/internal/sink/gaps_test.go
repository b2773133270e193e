package sink

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// A jump opens a suspect range; what arrives late (redelivered after a consumer died) is taken
// out of it, and only what never comes within the confirm time is reported, range by range.
func TestGapsReportOnlyWhatNeverCame(t *testing.T) {
	var (
		mu       sync.Mutex
		reported []int
		stopped  error
	)
	g := newGaps("sub", true, 50*time.Millisecond, slog.New(slog.DiscardHandler),
		func(n int) { mu.Lock(); reported = append(reported, n); mu.Unlock() },
		func(err error) { mu.Lock(); stopped = err; mu.Unlock() })
	defer g.close()
	for _, off := range []uint64{
		0, 1, 2, 5, 6, 3, 4, // 3-4 held by a dead consumer, redelivered after 5-6: no gap
		7, 12, 9, 2, // 8-11 suspect; 9 comes late, 2 is a plain redelivery: 8 and 10-11 remain
	} {
		g.observe("/default/t-part-0", off)
	}
	g.observe("/default/t-part-1", 40) // another partition: its own baseline
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(reported)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 2 || reported[0] != 1 || reported[1] != 2 {
		t.Fatalf("reported %v, want [1 2] (offset 8, then 10-11)", reported)
	}
	want := "runtime: Danube never delivered messages of the subscription: /default/t-part-0 offset 8 (1 message), subscription \"sub\" (GAP_POLICY=stop)"
	if !errors.Is(stopped, ErrDeliveryGap) || stopped.Error() != want {
		t.Fatalf("stop with %v\nwant %s", stopped, want)
	}
	if err := g.flag.Check(t.Context()); err == nil || err.Error() != "3 messages never delivered by Danube since start (restart to clear): "+
		"/default/t-part-0 offset 8 (1 message); /default/t-part-0 offsets 10-11 (2 messages)" {
		t.Fatalf("readiness: %v", err)
	}
}

// A stopping sink reports nothing more: pending confirmations are dropped.
func TestGapsCloseDropsPending(t *testing.T) {
	called := make(chan int, 1)
	g := newGaps("sub", false, 20*time.Millisecond, slog.New(slog.DiscardHandler), func(n int) { called <- n }, nil)
	g.observe("t", 0)
	g.observe("t", 5)
	g.close()
	select {
	case n := <-called:
		t.Fatalf("reported %d after close", n)
	case <-time.After(100 * time.Millisecond):
	}
}
