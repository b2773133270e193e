package danube

import (
	"fmt"
	"strings"

	"github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// DispatchStrategy selects how the broker stores and delivers a topic's
// messages. It is fixed by the topic's first producer. The zero value is
// Reliable, so that a producer that does not choose gets at-least-once
// delivery; the values differ from the wire enum, whose zero is NonReliable.
type DispatchStrategy int

const (
	// Reliable persists every message and redelivers until acked.
	Reliable DispatchStrategy = iota
	// NonReliable delivers at most once, straight from memory.
	NonReliable
)

// String returns the broker's name for the strategy.
func (d DispatchStrategy) String() string {
	switch d {
	case Reliable:
		return "Reliable"
	case NonReliable:
		return "NonReliable"
	}
	return fmt.Sprintf("DispatchStrategy(%d)", int(d))
}

// wire maps the strategy to the protocol's enum; ok is false for values
// outside the two strategies.
func (d DispatchStrategy) wire() (w danubepb.DispatchStrategy, ok bool) {
	switch d {
	case Reliable:
		return danubepb.DispatchStrategy_Reliable, true
	case NonReliable:
		return danubepb.DispatchStrategy_NonReliable, true
	}
	return 0, false
}

// SubscriptionType selects how a subscription spreads messages over its
// consumers. The first subscriber fixes it; later values are ignored by the
// broker.
type SubscriptionType int

const (
	// Exclusive allows a single consumer name per subscription.
	Exclusive SubscriptionType = iota
	// Shared round-robins messages over all consumers.
	Shared
	// Failover behaves like Exclusive but tolerates standby consumers.
	Failover
	// KeyShared routes each routing key to one consumer, honouring key filters.
	KeyShared
)

var subscriptionTypeNames = [...]string{"Exclusive", "Shared", "Failover", "KeyShared"}

// String returns the broker's name for the type.
func (t SubscriptionType) String() string {
	if t >= 0 && int(t) < len(subscriptionTypeNames) {
		return subscriptionTypeNames[t]
	}
	return fmt.Sprintf("SubscriptionType(%d)", int(t))
}

// ParseSubscriptionType parses a type name case-insensitively ("shared",
// "KeyShared", "key_shared" and "key-shared" are all accepted), so that
// connector configuration can name it in plain text.
func ParseSubscriptionType(s string) (SubscriptionType, error) {
	norm := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(strings.TrimSpace(s)))
	for i, n := range subscriptionTypeNames {
		if strings.ToLower(n) == norm {
			return SubscriptionType(i), nil
		}
	}
	return 0, fmt.Errorf("danube: unknown subscription type %q (want Exclusive, Shared, Failover or KeyShared)", s)
}

// MaxMessageSize is the largest message a broker accepts: gRPC's default 4 MiB limit on a request,
// payload, routing key and attributes together with the envelope. A larger message is refused
// however often it is sent.
const MaxMessageSize = 4 << 20

// MessageSize estimates the size m takes on the wire, envelope included (a conservative upper
// bound: compare it with MaxMessageSize before sending).
func MessageSize(m ProducerMessage) int {
	n := len(m.Payload) + len(m.Key) + 512 // ids, topic, producer name, timestamps, framing
	for k, v := range m.Attributes {
		n += len(k) + len(v) + 8
	}
	return n
}
