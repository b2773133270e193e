package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// ErrDeliveryGap is what a sink with GAP_POLICY=stop returns (wrapped) when Danube skipped
// messages of its subscription; MainSink exits with ExitGap for it.
var ErrDeliveryGap = errors.New("runtime: Danube never delivered messages of the subscription")

// gaps finds the messages Danube never delivers. The offsets of a reliable topic partition are
// contiguous and an Exclusive or Failover subscription's active consumer is sent every one of
// them in order (a redelivery goes back, never forward), so a forward jump is a range the broker
// skipped: Danube v0.15.1 does so for a subscription more than window + 256 messages behind (see
// docs/operations.md). The first message after the process starts is the baseline: a range lost
// before it is not seen. Shared and KeyShared consumers see a part of the offsets only, so they are
// not checked.
type gaps struct {
	sub    string
	policy GapPolicy
	log    *slog.Logger
	report func(missing int) // metrics
	stop   func(error)       // GAP_POLICY=stop

	mu    sync.Mutex
	next  map[string]uint64 // per partition topic: the offset expected next
	found []gapRange        // shown on /readyz, newest last
	total uint64
	flag  telemetry.Flag
}

// gapRange is the offsets [from, to] of topic that Danube skipped.
type gapRange struct {
	topic    string
	from, to uint64
}

func (g gapRange) String() string {
	return fmt.Sprintf("%s offsets %d-%d (%d messages)", g.topic, g.from, g.to, g.to-g.from+1)
}

// maxShownGaps bounds the ranges /readyz lists; the count covers them all.
const maxShownGaps = 8

func newGaps(sub string, policy GapPolicy, log *slog.Logger, report func(int), stop func(error)) *gaps {
	g := &gaps{sub: sub, policy: policy, log: log, report: report, stop: stop, next: map[string]uint64{}}
	g.flag.Set(nil)
	return g
}

// observe records that the message at offset off of partition topic was delivered.
func (g *gaps) observe(topic string, off uint64) {
	g.mu.Lock()
	next, seen := g.next[topic]
	if seen && off < next { // a redelivery
		g.mu.Unlock()
		return
	}
	g.next[topic] = off + 1
	if !seen || off == next {
		g.mu.Unlock()
		return
	}
	r := gapRange{topic: topic, from: next, to: off - 1}
	g.found = append(g.found, r)
	if len(g.found) > maxShownGaps {
		g.found = g.found[1:]
	}
	g.total += r.to - r.from + 1
	g.flag.Set(g.errLocked())
	g.mu.Unlock()

	missing := int(r.to - r.from + 1)
	g.report(missing)
	g.log.Error("Danube skipped messages of this subscription: they were never delivered and will not be "+
		"(a Danube v0.15.1 defect: the subscription fell more than its window + 256 messages behind)",
		"topic", r.topic, "from", r.from, "to", r.to, "missing", missing, "subscription", g.sub)
	if g.policy == GapStop {
		g.stop(fmt.Errorf("%w: %s, subscription %q (GAP_POLICY=stop)", ErrDeliveryGap, r, g.sub))
	}
}

func (g *gaps) errLocked() error {
	parts := make([]string, len(g.found))
	for i, r := range g.found {
		parts[i] = r.String()
	}
	return fmt.Errorf("%d messages never delivered by Danube since start (restart to clear): %s", g.total, strings.Join(parts, "; "))
}
