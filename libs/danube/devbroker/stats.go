package devbroker

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// SubscriptionStats is a snapshot of one subscription's dispatch state. The
// reliable counters are what the real broker exports as Prometheus gauges:
// PendingRedelivery is danube_subscription_pending_redelivery, Blocked is
// danube_subscription_terminal_blocked and Backlog is
// danube_subscription_lag_messages, all labelled by topic and subscription.
type SubscriptionStats struct {
	Topic           string `json:"topic"`
	Subscription    string `json:"subscription"`
	Type            string `json:"type"` // Exclusive, Shared, Failover or KeyShared
	Reliable        bool   `json:"reliable"`
	Consumers       int    `json:"consumers"`
	ActiveConsumers int    `json:"active_consumers"`

	// Reliable subscriptions only.
	Cursor            uint64 `json:"cursor"`             // every offset below is settled
	Backlog           uint64 `json:"backlog"`            // messages from Cursor to the topic's head
	Window            int    `json:"window"`             // unsettled messages admitted to the dispatch window
	MaxUnacked        int    `json:"max_unacked"`        // the window's capacity
	Unacked           int    `json:"unacked"`            // delivered, awaiting ack or ack timeout
	PendingRedelivery int    `json:"pending_redelivery"` // nacked, timed out or released, awaiting redelivery
	// Blocked counts retry-exhausted messages the poison policy holds: Block,
	// or DeadLetter while its topic does not exist. While any is held the
	// subscription admits nothing new: it is stalled.
	Blocked int `json:"blocked"`
}

// SubscriptionStats reports the state of a subscription; false when the topic
// or the subscription does not exist.
func (b *Broker) SubscriptionStats(topic, subscription string) (SubscriptionStats, bool) {
	c := b.current()
	if c == nil {
		return SubscriptionStats{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[topic]
	if t == nil || t.subs[subscription] == nil {
		return SubscriptionStats{}, false
	}
	return t.subs[subscription].stats(), true
}

func (s *subscription) stats() SubscriptionStats {
	st := SubscriptionStats{
		Topic:        s.topic.name,
		Subscription: s.name,
		Type:         pb.ConsumerRequest_SubscriptionType_name[int32(s.typ)],
		Reliable:     s.topic.reliable,
		Consumers:    len(s.consumers),
	}
	for _, c := range s.consumers {
		if c.active {
			st.ActiveConsumers++
		}
	}
	w := s.window
	if w == nil {
		return st
	}
	st.Cursor = s.ackFloor
	st.Backlog = s.topic.next() - s.ackFloor
	st.Window = w.unsettled
	st.MaxUnacked = s.maxUnacked
	st.Blocked = w.blocked
	for off := s.ackFloor; off < s.next; off++ {
		switch e := s.get(off); {
		case e.state == stateInflight:
			st.Unacked++
		case e.state == stateReady && e.attempt > 0:
			st.PendingRedelivery++
		}
	}
	return st
}

// StatsHeader is the response header (binary metadata) through which admin
// DescribeTopic returns the SubscriptionStats of every subscription of the
// topic as a JSON array ordered by subscription name: the admin proto is a
// fixed wire contract with no field for them. Read it with grpc.Header.
const StatsHeader = "x-devbroker-subscription-stats-bin"

// sendStatsHeader attaches the topic's subscription stats to a DescribeTopic
// response; callers hold c.mu.
func sendStatsHeader(ctx context.Context, t *topic, names []string) error {
	all := make([]SubscriptionStats, 0, len(names))
	for _, n := range names {
		all = append(all, t.subs[n].stats())
	}
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return grpc.SetHeader(ctx, metadata.Pairs(StatsHeader, string(b)))
}
