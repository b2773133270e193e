package webhook

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// answer is what a request was answered.
type answer struct {
	status int
	body   []byte
}

// attempt is the first request seen with an idempotency key: later requests with the key wait for
// its outcome and answer the same, without publishing again.
type attempt struct {
	key  string
	hash [sha256.Size]byte // of the body: the same key with another body is a client error
	at   time.Time
	done chan struct{} // closed once the outcome is known
	ans  answer        // set before done is closed
	ok   bool          // Danube has the events; false: the attempt was forgotten, a retry publishes
	elem *list.Element
}

// idempotency remembers the attempts of the last window, at most max of them (least recently used
// evicted first), in this process only: replicas behind a load balancer each have their own, so a
// retry that reaches another replica publishes again (sticky routing on the key avoids it).
//
// A hand-written LRU on container/list rather than a cache library: entries are not plain values
// but attempts in progress that waiters block on, and no LRU module is in go.mod yet.
type idempotency struct {
	window time.Duration
	max    int

	mu  sync.Mutex
	lru *list.List // front: most recently used
	m   map[string]*attempt
}

func newIdempotency(window time.Duration, maxKeys int) *idempotency {
	return &idempotency{window: window, max: maxKeys, lru: list.New(), m: map[string]*attempt{}}
}

// begin returns the attempt of key and whether it is new (the caller then publishes and calls
// finish). An attempt older than the window is forgotten.
func (c *idempotency) begin(key string, hash [sha256.Size]byte, now time.Time) (a *attempt, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Back(); e != nil; e = c.lru.Back() { // expire from the least recently used end
		old := e.Value.(*attempt)
		if now.Sub(old.at) < c.window {
			break
		}
		c.remove(old)
	}
	if a := c.m[key]; a != nil && now.Sub(a.at) < c.window {
		c.lru.MoveToFront(a.elem)
		return a, false
	} else if a != nil {
		c.remove(a)
	}
	a = &attempt{key: key, hash: hash, at: now, done: make(chan struct{})}
	a.elem = c.lru.PushFront(a)
	c.m[key] = a
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back().Value.(*attempt))
	}
	return a, true
}

// finish records a's outcome: ok keeps it for the window; otherwise it is forgotten, so that a
// retry publishes.
func (c *idempotency) finish(a *attempt, ans answer, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a.ans, a.ok = ans, ok
	close(a.done)
	if !ok && c.m[a.key] == a {
		c.remove(a)
	}
}

func (c *idempotency) remove(a *attempt) {
	c.lru.Remove(a.elem)
	if c.m[a.key] == a {
		delete(c.m, a.key)
	}
}

// len is the number of attempts remembered.
func (c *idempotency) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
