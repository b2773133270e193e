package sink

import (
	"sync"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// replayFilter remembers messages that were written but whose ack did not reach the broker, so
// that their redelivery is acked rather than written again: the settler adds, intake takes. It is
// bounded: past max entries the oldest are forgotten (their redelivery is written again:
// at-least-once).
type replayFilter struct {
	mu    sync.Mutex
	max   int
	seen  map[replayKey]struct{}
	order []replayKey
}

type replayKey struct {
	topic  string
	offset uint64
}

func newReplayFilter(limit int) *replayFilter {
	return &replayFilter{max: limit, seen: map[replayKey]struct{}{}}
}

// add remembers m.
func (f *replayFilter) add(m *danube.Message) {
	k := replayKey{m.Topic, m.Offset}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.seen[k]; ok {
		return
	}
	if len(f.order) >= f.max {
		delete(f.seen, f.order[0])
		f.order = f.order[1:]
	}
	f.seen[k] = struct{}{}
	f.order = append(f.order, k)
}

// take reports whether m was remembered, and forgets it.
func (f *replayFilter) take(m *danube.Message) bool {
	k := replayKey{m.Topic, m.Offset}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return false
	}
	if _, ok := f.seen[k]; !ok {
		return false
	}
	delete(f.seen, k)
	return true
}
