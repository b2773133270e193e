package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// ErrDeliveryGap is what a sink with GAP_POLICY=stop returns (wrapped) when Danube skipped
// messages of its subscription.
var ErrDeliveryGap = errors.New("runtime: Danube never delivered messages of the subscription")

// gaps finds the messages Danube never delivers. The offsets of a reliable topic partition are
// contiguous, and an Exclusive or Failover subscription's active consumer is sent every one of
// them, new ones in order. A forward jump is therefore a range the broker skipped (Danube v0.15.1
// does so for a subscription more than window + 256 messages behind, see docs/operations.md) —
// or messages still held by a consumer that died, which the broker sends again once their ack
// timeout passed. So a jump opens a suspect range; offsets that arrive later are taken out of it,
// and what is left after confirm (twice the ack timeout) is reported as lost. The first message
// after the process starts is the baseline: a range lost before it is not seen. Shared and
// KeyShared consumers see a part of the offsets only, so they are not checked.
type gaps struct {
	sub     string
	stops   bool // GAP_POLICY=stop
	confirm time.Duration
	log     *slog.Logger
	report  func(missing int) // metrics
	stop    func(error)       // GAP_POLICY=stop

	mu     sync.Mutex
	next   map[string]uint64 // per partition topic: the offset expected next
	open   []*suspect
	found  []gapRange // confirmed, shown on /readyz, newest last
	total  uint64
	closed bool
	flag   telemetry.Flag
}

// gapRange is the offsets [from, to] of topic.
type gapRange struct {
	topic    string
	from, to uint64
}

func (g gapRange) String() string {
	if g.len() == 1 {
		return fmt.Sprintf("%s offset %d (1 message)", g.topic, g.from)
	}
	return fmt.Sprintf("%s offsets %d-%d (%d messages)", g.topic, g.from, g.to, g.len())
}

func (g gapRange) len() uint64 { return g.to - g.from + 1 }

// suspect is a range a jump passed over, less what arrived since; confirmed lost when its timer
// fires.
type suspect struct {
	missing []gapRange // disjoint, ascending
	timer   *time.Timer
}

// maxShownGaps bounds the ranges /readyz lists; the count covers them all.
const maxShownGaps = 8

func newGaps(sub string, stops bool, confirm time.Duration, log *slog.Logger, report func(int), stop func(error)) *gaps {
	g := &gaps{sub: sub, stops: stops, confirm: confirm, log: log, report: report, stop: stop, next: map[string]uint64{}}
	g.flag.Set(nil)
	return g
}

// observe records that the message at offset off of partition topic was delivered.
func (g *gaps) observe(topic string, off uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	next, seen := g.next[topic]
	switch {
	case seen && off < next:
		g.arrived(topic, off)
		return
	case seen && off > next && !g.closed:
		s := &suspect{missing: []gapRange{{topic: topic, from: next, to: off - 1}}}
		g.open = append(g.open, s)
		s.timer = time.AfterFunc(g.confirm, func() { g.settle(s) })
	}
	g.next[topic] = off + 1
}

// arrived takes off out of the suspect ranges that hold it (a late redelivery, not a loss).
func (g *gaps) arrived(topic string, off uint64) {
	for _, s := range g.open {
		for i, r := range s.missing {
			if r.topic != topic || off < r.from || off > r.to {
				continue
			}
			var keep []gapRange
			if off > r.from {
				keep = append(keep, gapRange{topic, r.from, off - 1})
			}
			if off < r.to {
				keep = append(keep, gapRange{topic, off + 1, r.to})
			}
			s.missing = slices.Replace(s.missing, i, i+1, keep...)
			return
		}
	}
}

// settle reports what is left of s: those messages did not come within the confirm time.
func (g *gaps) settle(s *suspect) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.open = slices.DeleteFunc(g.open, func(o *suspect) bool { return o == s })
	lost := s.missing
	for _, r := range lost {
		g.found = append(g.found, r)
		g.total += r.len()
	}
	if over := len(g.found) - maxShownGaps; over > 0 {
		g.found = g.found[over:]
	}
	if len(lost) > 0 {
		g.flag.Set(g.errLocked())
	}
	g.mu.Unlock()

	for _, r := range lost {
		g.report(int(r.len()))
		g.log.Error("Danube skipped messages of this subscription: they were never delivered and will not be "+
			"(a Danube v0.15.1 defect: the subscription fell more than its window + 256 messages behind)",
			"topic", r.topic, "from", r.from, "to", r.to, "missing", r.len(), "subscription", g.sub)
	}
	if len(lost) > 0 && g.stops {
		g.stop(fmt.Errorf("%w: %s, subscription %q (GAP_POLICY=stop)", ErrDeliveryGap, lost[0], g.sub))
	}
}

func (g *gaps) errLocked() error {
	parts := make([]string, len(g.found))
	for i, r := range g.found {
		parts[i] = r.String()
	}
	return fmt.Errorf("%d messages never delivered by Danube since start (restart to clear): %s", g.total, strings.Join(parts, "; "))
}

// close stops the pending confirmations: a stopping sink reports nothing more.
func (g *gaps) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, s := range g.open {
		s.timer.Stop()
	}
	g.open = nil
}
