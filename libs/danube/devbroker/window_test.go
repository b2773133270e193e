package devbroker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

func TestMinHeapOrdersRandomValues(t *testing.T) {
	h := minHeap[uint64]{less: func(a, b uint64) bool { return a < b }}
	r := rand.New(rand.NewPCG(1, 2))
	var want []uint64
	for i := 0; i < 500; i++ {
		v := r.Uint64N(100) // duplicates included
		h.push(v)
		want = append(want, v)
		if i%3 == 0 { // interleave pops with pushes
			slices.Sort(want)
			if got := h.pop(); got != want[0] {
				t.Fatalf("pop %d = %d, want %d", i, got, want[0])
			}
			want = want[1:]
		}
	}
	slices.Sort(want)
	for i, w := range want {
		if got := h.pop(); got != w {
			t.Fatalf("drain %d = %d, want %d", i, got, w)
		}
	}
	if h.len() != 0 {
		t.Fatalf("len = %d after drain", h.len())
	}
}

func TestWindowRingGrowsAcrossWrap(t *testing.T) {
	w := newWindow(false)
	next := uint64(0)
	floor := uint64(0)
	push := func(n int) {
		for i := 0; i < n; i++ {
			w.pushBack(&entry{off: next})
			next++
		}
	}
	push(12)
	for i := 0; i < 10; i++ { // head moves to ring index 10 of 16
		w.popFront()
		floor++
	}
	push(40) // wraps, then grows twice while wrapped
	if w.n != int(next-floor) {
		t.Fatalf("n = %d, want %d", w.n, next-floor)
	}
	for i := uint64(0); i < next-floor; i++ {
		if got := w.at(i).off; got != floor+i {
			t.Fatalf("at(%d).off = %d, want %d", i, got, floor+i)
		}
	}
	for w.n > 0 {
		if got := w.front().off; got != floor {
			t.Fatalf("front = %d, want %d", got, floor)
		}
		w.popFront()
		floor++
	}
	if w.front() != nil {
		t.Fatal("front of an empty window is not nil")
	}
}

func TestWindowRingShrinksAfterSpike(t *testing.T) {
	w := newWindow(false)
	const spike = 10000
	for i := uint64(0); i < spike; i++ {
		w.pushBack(&entry{off: i})
	}
	peak := len(w.buf)
	for floor := uint64(0); floor < spike-10; floor++ {
		if got := w.front().off; got != floor {
			t.Fatalf("front = %d, want %d", got, floor)
		}
		w.popFront()
	}
	if len(w.buf) > shrinkRing {
		t.Fatalf("ring of %d slots for %d entries (peak %d)", len(w.buf), w.n, peak)
	}
	for i := uint64(0); i < 10; i++ {
		if got := w.at(i).off; got != spike-10+i {
			t.Fatalf("at(%d).off = %d, want %d", i, got, spike-10+i)
		}
	}
}

// TestReliableOutOfOrderAcksAcrossRingWrap holds the lowest offset unacked
// while acking everything after it, so the window's span grows well past its
// capacity and the ring wraps and grows; acking the held offset must then
// move the cursor over the whole span at once.
func TestReliableOutOfOrderAcksAcrossRingWrap(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxUnackedMessages = 4
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/wrap"
	pid := e.producer(topic, "p", reliable)
	s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive))
	const total = 60
	for i := 0; i < total; i++ {
		e.send(topic, pid, uint64(i), fmt.Sprint(i), nil)
	}
	// Settle 0..9 in order first so the ring's head is not at index 0.
	for off := uint64(0); off < 10; off++ {
		m := s.next(t)
		if m.GetMsgId().GetTopicOffset() != off {
			t.Fatalf("offset %d, want %d", m.GetMsgId().GetTopicOffset(), off)
		}
		e.ack(m, "sub")
	}
	held := s.next(t) // offset 10 stays unacked
	// Ack the rest newest-first within each window of three.
	for want := uint64(11); want < total; {
		var batch []*pb.StreamMessage
		for i := 0; i < 3 && want < total; i++ {
			m := s.next(t)
			if m.GetMsgId().GetTopicOffset() != want {
				t.Fatalf("offset %d, want %d", m.GetMsgId().GetTopicOffset(), want)
			}
			batch = append(batch, m)
			want++
		}
		for i := len(batch) - 1; i >= 0; i-- {
			e.ack(batch[i], "sub")
		}
	}
	s.quiet(t)
	sub := func() (floor, next uint64, span int) {
		c := e.b.current()
		c.mu.Lock()
		defer c.mu.Unlock()
		s := c.topics[topic].subs["sub"]
		return s.ackFloor, s.next, s.window.n
	}
	if floor, next, span := sub(); floor != 10 || next != total || span != total-10 {
		t.Fatalf("cursor %d, next %d, span %d; want 10, %d, %d", floor, next, span, total, total-10)
	}
	e.ack(held, "sub")
	if floor, next, span := sub(); floor != total || next != total || span != 0 {
		t.Fatalf("after acking the held offset: cursor %d, next %d, span %d; want %d, %d, 0", floor, next, span, total, total)
	}
	e.send(topic, pid, total, "after", nil)
	if m := s.next(t); m.GetMsgId().GetTopicOffset() != total || string(m.GetPayload()) != "after" {
		t.Fatalf("got %q offset %d", m.GetPayload(), m.GetMsgId().GetTopicOffset())
	}
}

// TestReliableRedeliveryInOffsetOrder nacks a full window in reverse order
// at one instant: the retries fall due together and are redelivered lowest
// offset first, while the window stays full.
func TestReliableRedeliveryInOffsetOrder(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxUnackedMessages = 4
	cfg.AckTimeout = time.Minute
	cfg.RedeliveryBaseDelay = time.Millisecond
	cfg.RedeliveryMaxDelay = time.Millisecond
	e := startEnv(t, cfg)
	const topic = "/default/redeliver"
	pid := e.producer(topic, "p", reliable)
	sr := e.subscribe(topic, "sub", "c", pb.ConsumerRequest_Exclusive)
	for i := 0; i < 6; i++ {
		e.send(topic, pid, uint64(i), fmt.Sprint(i), nil)
	}
	// Pause the retry tick so the four nacks are handled before any
	// redelivery; only the stream's attach dispatches.
	e.b.current().ticksPaused.Store(true)
	s := e.receive(sr)
	var first []*pb.StreamMessage
	for i := 0; i < 4; i++ {
		first = append(first, s.next(t))
	}
	s.quiet(t)
	c := e.b.current()
	c.mu.Lock() // nack all four as one step, newest first
	sub := c.topics[topic].subs["sub"]
	now := time.Now()
	for i := 3; i >= 0; i-- {
		sub.nack(first[i].GetMsgId().GetTopicOffset(), now, 0, "retry")
	}
	c.mu.Unlock()
	c.ticksPaused.Store(false)
	var got []uint64
	for i := 0; i < 4; i++ {
		got = append(got, s.next(t).GetMsgId().GetTopicOffset())
	}
	if want := []uint64{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("redelivered %v, want %v", got, want)
	}
	s.quiet(t) // the window is still full with the retries
}

func TestKeyTableReusesIDsAndLocksPerScan(t *testing.T) {
	var k keyTable
	a1, b, a2 := k.acquire("a"), k.acquire("b"), k.acquire("a")
	if a1 != a2 || a1 == b {
		t.Fatalf("ids a=%d,%d b=%d: want a stable id for a, another for b", a1, a2, b)
	}
	k.newScan()
	if k.lock(a1) || !k.lock(a1) || k.lock(b) {
		t.Fatal("first lock of a key in a scan must report unlocked, the second locked")
	}
	k.newScan()
	if k.lock(a1) {
		t.Fatal("a lock survived into the next scan")
	}
	k.release("a", a1)
	if _, ok := k.ids["a"]; !ok {
		t.Fatal("a released while an entry still holds it")
	}
	k.release("a", a2)
	if c := k.acquire("c"); c != a1 {
		t.Fatalf("c got id %d, want a's freed id %d", c, a1)
	}
	k.gen = ^uint32(0) // the next scan wraps the generation
	k.newScan()
	if k.gen != 1 || k.lock(b) {
		t.Fatalf("after wrap gen = %d and b locked: old marks must be forgotten", k.gen)
	}
}

// TestKeySharedReliableOneInFlightPerKey checks the per-key lock of the
// KeyShared scan: with keys interleaved, only the oldest unsettled message
// of each key is out, and acking it releases the key's next one. Settling
// every message of a key frees its id for the next key to arrive.
func TestKeySharedReliableOneInFlightPerKey(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxUnackedMessages = 6
	cfg.AckTimeout = time.Minute
	e := startEnv(t, cfg)
	const topic = "/default/ks-lock"
	pid := e.producer(topic, "p", reliable)
	s := e.receive(e.subscribe(topic, "sub", "c", pb.ConsumerRequest_KeyShared))
	keys := []string{"a", "b", "a", "b", "a", "c"}
	for i, k := range keys {
		e.send(topic, pid, uint64(i), fmt.Sprint(k, i), strp(k))
	}
	recv := func(want ...string) []*pb.StreamMessage {
		t.Helper()
		var got []*pb.StreamMessage
		for _, w := range want {
			m := s.next(t)
			if string(m.GetPayload()) != w {
				t.Fatalf("got %q, want %q", m.GetPayload(), w)
			}
			got = append(got, m)
		}
		s.quiet(t)
		return got
	}
	first := recv("a0", "b1", "c5") // a2, b3, a4 wait behind their keys
	e.ack(first[1], "sub")
	b3 := recv("b3")
	e.ack(first[0], "sub")
	a2 := recv("a2")
	e.ack(a2[0], "sub")
	a4 := recv("a4")
	for _, m := range []*pb.StreamMessage{a4[0], b3[0], first[2]} {
		e.ack(m, "sub")
	}
	c := e.b.current()
	c.mu.Lock()
	sub := c.topics[topic].subs["sub"]
	floor, live := sub.ackFloor, len(sub.window.keys.ids)
	c.mu.Unlock()
	if floor != uint64(len(keys)) || live != 0 {
		t.Fatalf("cursor %d with %d live keys, want %d and 0", floor, live, len(keys))
	}
	e.send(topic, pid, 6, "d6", strp("d"))
	e.send(topic, pid, 7, "d7", strp("d"))
	d := recv("d6")
	e.ack(d[0], "sub")
	recv("d7")
}
