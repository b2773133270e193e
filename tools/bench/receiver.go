package main

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// receiver is the local HTTP endpoint both sides of an HTTP comparison post to. It answers 200
// after latency and counts the arrivals of the current phase.
type receiver struct {
	srv *http.Server
	URL string
	cur atomic.Pointer[phase]
}

// phase counts the arrivals of one side of a comparison; the rate is taken from the first to the
// last arrival, so process start-up and connection set-up do not count.
type phase struct {
	n           int64
	got         atomic.Int64
	first, last atomic.Int64 // unix nanos
	done        chan struct{}
}

func newPhase(n int) *phase { return &phase{n: int64(n), done: make(chan struct{})} }

func (p *phase) rate() float64 {
	d := time.Duration(p.last.Load() - p.first.Load())
	if d <= 0 {
		return 0
	}
	return float64(p.n-1) / d.Seconds() // n arrivals span n-1 intervals
}

// startReceiver listens on a random 127.0.0.1 port.
func startReceiver(latency time.Duration) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &receiver{URL: "http://" + ln.Addr().String() + "/hook"}
	rc.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if latency > 0 {
			time.Sleep(latency)
		}
		p := rc.cur.Load()
		if p == nil {
			return
		}
		now := time.Now().UnixNano()
		p.first.CompareAndSwap(0, now)
		p.last.Store(now)
		if p.got.Add(1) == p.n {
			close(p.done)
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

// expect starts a new phase of n arrivals.
func (rc *receiver) expect(n int) *phase {
	p := newPhase(n)
	rc.cur.Store(p)
	return p
}

func (rc *receiver) close() { _ = rc.srv.Close() }
