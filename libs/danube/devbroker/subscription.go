package devbroker

import (
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// poisonPolicy is what happens to a reliable message whose retry budget is spent.
type poisonPolicy int

const (
	poisonBlock poisonPolicy = iota
	poisonDrop
	poisonDeadLetter
)

// failurePolicy is a reliable subscription's SubscriptionFailurePolicy.
type failurePolicy struct {
	MaxRedeliveryCount int           `json:"max_redelivery_count"`
	AckTimeout         time.Duration `json:"ack_timeout"`
	BaseDelay          time.Duration `json:"base_delay"`
	MaxDelay           time.Duration `json:"max_delay"`
	Fixed              bool          `json:"fixed_backoff,omitempty"`
	DeadLetterTopic    string        `json:"dead_letter_topic,omitempty"`
	Poison             poisonPolicy  `json:"poison"`
}

func (p failurePolicy) delay(attempt int, requested time.Duration) time.Duration {
	d := p.BaseDelay
	if !p.Fixed {
		for i := 1; i < attempt && d < p.MaxDelay; i++ {
			d *= 2
		}
	}
	if requested > d {
		d = requested
	}
	if d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d
}

type entryState int

const (
	stateReady    entryState = iota // waiting to be (re)delivered once due
	stateInflight                   // delivered, awaiting ack until due
	stateBlocked                    // poison policy Block: stays forever
	stateDone                       // acked, dropped or dead-lettered
)

// entry is one offset inside a reliable subscription's dispatch window.
type entry struct {
	off      uint64
	msg      *pb.StreamMessage
	key      string
	keyID    int32 // KeyShared: key's id in the window's keyTable
	state    entryState
	consumer *consumer // holds the entry while stateInflight
	owner    *consumer // last consumer it was delivered to, kept across retries
	attempt  int
	due      time.Time
	reason   string // last failure reason, for x-failure-reason
}

type subscription struct {
	core  *core
	name  string
	typ   pb.ConsumerRequest_SubscriptionType
	topic *topic

	consumers []*consumer
	rr        int
	ring      []ringPoint

	idleSince time.Time // non-reliable: first failed dispatch without a healthy consumer

	// Reliable: offsets below ackFloor are settled; [ackFloor, next) is the window.
	ackFloor   uint64
	next       uint64
	live       uint64 // the topic's head when the subscription was created or loaded (Config.LagDrop)
	window     *window
	policy     failurePolicy
	maxUnacked int
	dirty      bool
	// evicted holds KeyShared consumers evicted with Config.KeySharedEvictionDropsUnacked: as on
	// v0.15.1 they stay registered (health checks answer OK, the name resubscribes to the same id)
	// but never rejoin the hash ring.
	evicted map[string]*consumer
}

// closeConsumers ends every consumer of the subscription, evicted ones included.
func (s *subscription) closeConsumers() {
	for _, cons := range s.consumers {
		cons.endSession(nil)
		delete(s.core.consumers, cons.id)
	}
	for _, cons := range s.evicted {
		cons.endSession(nil)
		delete(s.core.consumers, cons.id)
	}
}

func (s *subscription) addConsumer(c *consumer) {
	s.consumers = append(s.consumers, c)
	s.rebuildRing()
}

// pick chooses the consumer for a message by subscription type; nil when no
// eligible consumer is active.
func (s *subscription) pick(key string) *consumer {
	switch s.typ {
	case pb.ConsumerRequest_Shared:
		n := len(s.consumers)
		for i := 0; i < n; i++ {
			c := s.consumers[(s.rr+i)%n]
			if c.active {
				s.rr = (s.rr + i + 1) % n
				return c
			}
		}
		return nil
	case pb.ConsumerRequest_KeyShared:
		return s.ringLookup(key, true)
	default: // Exclusive, Failover: the first attached consumer is the active one.
		if len(s.consumers) > 0 && s.consumers[0].active {
			return s.consumers[0]
		}
		return nil
	}
}

func (s *subscription) anyActive() bool {
	for _, c := range s.consumers {
		if c.active {
			return true
		}
	}
	return false
}

// routingKey is danube-core's effective_routing_key.
func routingKey(m *pb.StreamMessage) string {
	if m.RoutingKey != nil {
		return *m.RoutingKey
	}
	return m.GetProducerName()
}

// dispatchNonReliable delivers at most once: a full consumer channel or no
// healthy consumer drops the message.
func (s *subscription) dispatchNonReliable(m *pb.StreamMessage, now time.Time) {
	c := s.pick(routingKey(m))
	if c == nil {
		if s.idleSince.IsZero() && (s.typ != pb.ConsumerRequest_KeyShared || !s.anyActive()) {
			s.idleSince = now
		}
		return
	}
	s.idleSince = time.Time{}
	limit := consumerChanCap
	if c.sess != nil {
		limit = streamPipeline
	}
	if len(c.queue) >= limit {
		return
	}
	c.enqueue(m)
}

// get returns the window entry for off, nil outside [ackFloor, next).
func (s *subscription) get(off uint64) *entry {
	if off < s.ackFloor || off >= s.next {
		return nil
	}
	return s.window.at(off - s.ackFloor)
}

// setState moves e to st, keeping the window's counters.
func (s *subscription) setState(e *entry, st entryState) {
	w := s.window
	if e.state == stateBlocked {
		w.blocked--
	}
	if st == stateBlocked {
		w.blocked++
	}
	if e.state != stateDone && st == stateDone {
		w.unsettled--
	}
	e.state = st
}

// requeue makes e ready for (re)delivery once due.
func (s *subscription) requeue(e *entry, due, now time.Time) {
	s.setState(e, stateReady)
	e.consumer = nil
	e.due = due
	if s.typ == pb.ConsumerRequest_KeyShared {
		return // found by the in-order scan
	}
	if now.Before(due) {
		s.window.waiting.push(retryAt{due: due, off: e.off})
	} else {
		s.window.ready.push(e.off)
	}
}

// deliver hands e to c and starts its ack timeout.
func (s *subscription) deliver(e *entry, c *consumer, now time.Time) {
	s.setState(e, stateInflight)
	e.consumer = c
	e.owner = c
	e.attempt++
	e.due = now.Add(s.policy.AckTimeout)
	c.enqueue(e.msg)
}

// dispatch moves a reliable subscription forward: admits new offsets into the
// window and (re)delivers due entries.
func (s *subscription) dispatch(now time.Time) {
	w := s.window
	if w == nil {
		return
	}
	t := s.topic
	keyShared := s.typ == pb.ConsumerRequest_KeyShared
	if s.core.cfg.LagDrop {
		s.dropLagged()
	}
	// KeyShared admits while it has consumers at all: a message whose owner is
	// inactive waits for it (or for its eviction) instead of moving elsewhere.
	canAdmit := w.blocked == 0 && s.anyActive()
	if keyShared {
		canAdmit = len(s.consumers) > 0
	}
	// Capacity counts unsettled entries only: an out-of-order ack frees a
	// slot even though the cursor cannot move past the gap yet.
	for canAdmit && s.next < t.next() && w.unsettled < s.maxUnacked {
		m := t.at(s.next)
		if m == nil {
			break
		}
		e := &entry{off: s.next, msg: m, key: routingKey(m)}
		w.pushBack(e)
		w.unsettled++
		s.next++
		if keyShared {
			e.keyID = w.keys.acquire(e.key)
		} else {
			w.ready.push(e.off)
		}
	}
	if keyShared {
		s.dispatchKeyShared(now)
	} else {
		for w.waiting.len() > 0 && !now.Before(w.waiting.peek().due) {
			w.ready.push(w.waiting.pop().off)
		}
		for w.ready.len() > 0 {
			e := s.get(w.ready.peek())
			if e == nil || e.state != stateReady {
				w.ready.pop() // defensive: every path that leaves stateReady pops first
				continue
			}
			c := s.pick(e.key)
			if c == nil {
				break
			}
			w.ready.pop()
			s.deliver(e, c, now)
		}
	}
	s.settle()
}

// lagChannel is the capacity of the channel through which a v0.15.1 reliable
// subscription reads its topic's new messages (Config.LagDrop).
const lagChannel = 256

// dropLagged loses, as v0.15.1 does, the new messages the subscription did not
// read before more than lagChannel newer ones arrived: they are settled as if
// acked, so the cursor moves past them and they are never delivered. Messages
// older than the subscription's load come from storage, not the channel.
func (s *subscription) dropLagged() {
	t := s.topic
	if s.next < s.live || t.next()-s.next <= lagChannel {
		return
	}
	from, to := s.next, t.next()-lagChannel
	w := s.window
	for ; s.next < to; s.next++ {
		e := &entry{off: s.next, state: stateDone}
		if m := t.at(s.next); m != nil {
			e.msg, e.key = m, routingKey(m)
		}
		if w.keys != nil {
			e.keyID = w.keys.acquire(e.key)
		}
		w.pushBack(e)
	}
	s.core.log.Warn("lag-drop: subscription lagged; messages skipped as Danube v0.15.1 does (broadcast error: channel lagged)",
		"topic", t.name, "subscription", s.name, "from", from, "to", to-1, "count", to-from)
}

// dispatchKeyShared delivers in offset order with at most one unsettled
// message per key ahead of the others, each to its key's owner.
func (s *subscription) dispatchKeyShared(now time.Time) {
	keys := s.window.keys
	keys.newScan()
	for off := s.ackFloor; off < s.next; off++ {
		e := s.get(off)
		if e == nil || e.state == stateDone {
			continue
		}
		if keys.lock(e.keyID) {
			continue
		}
		if e.state != stateReady || now.Before(e.due) {
			continue
		}
		if len(s.consumers) == 0 {
			break
		}
		owner := s.ringLookup(e.key, false)
		if owner == nil {
			// No consumer's filters accept the key: skipped for this subscription.
			s.setState(e, stateDone)
			continue
		}
		if !owner.active {
			continue
		}
		s.deliver(e, owner, now)
	}
}

// settle advances the cursor over contiguously settled offsets.
func (s *subscription) settle() {
	w := s.window
	moved := false
	for e := w.front(); e != nil && e.state == stateDone; e = w.front() {
		if w.keys != nil {
			w.keys.release(e.key, e.keyID)
		}
		w.popFront()
		s.ackFloor++
		moved = true
	}
	if moved {
		s.dirty = true
		s.topic.trim()
	}
}

// tick expires ack deadlines and fires due retries.
func (s *subscription) tick(now time.Time) {
	if s.window == nil {
		return
	}
	// By offset, re-reading the bounds: a dead-letter publish to this very
	// topic re-enters dispatch and may move them.
	for off := s.ackFloor; off < s.next; off++ {
		e := s.get(off)
		if e == nil {
			continue
		}
		switch {
		case e.state == stateInflight && !now.Before(e.due):
			s.fail(e, now, 0, "ack timeout")
		case e.state == stateBlocked && s.policy.Poison == poisonDeadLetter:
			// A dead-letter publish that failed earlier is retried every tick.
			if s.deadLetter(e) {
				s.setState(e, stateDone)
			}
		}
	}
	if s.typ == pb.ConsumerRequest_KeyShared {
		s.evictInactive(now)
	}
	s.settle()
	s.dispatch(now)
}

// keySharedEvictionTicks is how many consecutive inactive heartbeats the
// real broker lets a reliable KeyShared consumer miss before evicting it
// (3 s at its 500 ms heartbeat); Config.KeySharedEvictionTimeout defaults to
// as many RetryTicks.
const keySharedEvictionTicks = 6

// evictionTicks is KeySharedEvictionTimeout in whole heartbeats: like the
// real broker, eviction counts consecutive inactive ticks, not wall time.
func (c *core) evictionTicks() int {
	n := int((c.cfg.KeySharedEvictionTimeout + c.cfg.RetryTick - 1) / c.cfg.RetryTick)
	return max(n, 1)
}

// evictInactive removes reliable KeyShared consumers that stayed inactive for
// the eviction timeout, so their keys move to the others. Their unsettled
// messages are redelivered, or, with KeySharedEvictionDropsUnacked, settled
// as the real broker's remove_consumer_entries does: every window entry last
// delivered to the consumer counts as acked, whether it awaits its ack, a
// retry or a Block poison decision.
func (s *subscription) evictInactive(now time.Time) {
	limit := s.core.evictionTicks()
	kept := s.consumers[:0]
	evicted := false
	for _, c := range s.consumers {
		if c.active {
			c.inactiveTicks = 0
			kept = append(kept, c)
			continue
		}
		c.inactiveTicks++
		if c.inactiveTicks < limit {
			kept = append(kept, c)
			continue
		}
		evicted = true
		c.endSession(nil)
		dropped := 0
		if s.core.cfg.KeySharedEvictionDropsUnacked {
			dropped = s.dropOwned(c)
			if s.evicted == nil {
				s.evicted = map[string]*consumer{}
			}
			s.evicted[c.name] = c
		} else {
			delete(s.core.consumers, c.id)
			s.requeueInflight(c, now)
		}
		s.core.log.Warn("evicting inactive consumer from Key-Shared ring", "topic", s.topic.name,
			"subscription", s.name, "consumer", c.name, "grace_ticks", limit, "dropped_unacked", dropped)
	}
	for i := len(kept); i < len(s.consumers); i++ {
		s.consumers[i] = nil
	}
	s.consumers = kept
	if evicted {
		s.rebuildRing()
	}
}

// dropOwned settles every unsettled entry last delivered to c and returns
// how many there were.
func (s *subscription) dropOwned(c *consumer) int {
	n := 0
	for off := s.ackFloor; off < s.next; off++ {
		if e := s.get(off); e.owner == c && e.state != stateDone {
			s.setState(e, stateDone)
			e.consumer = nil
			n++
		}
	}
	return n
}

// fail handles an ack timeout or a nack: schedule a retry or apply the poison policy.
func (s *subscription) fail(e *entry, now time.Time, requested time.Duration, reason string) {
	e.consumer = nil
	e.reason = reason
	if e.attempt > s.policy.MaxRedeliveryCount {
		s.setState(e, stateBlocked)
		switch s.policy.Poison {
		case poisonDrop:
			s.setState(e, stateDone)
		case poisonDeadLetter:
			if s.deadLetter(e) {
				s.setState(e, stateDone)
			}
		default:
			// The one place a stall starts: say so once, with what an operator
			// needs to find the message.
			s.core.log.Warn("subscription blocked by a poison message", "topic", s.topic.name,
				"subscription", s.name, "offset", e.off, "attempts", e.attempt, "reason", e.reason)
		}
		return
	}
	s.requeue(e, now.Add(s.policy.delay(e.attempt, requested)), now)
}

// deadLetter republishes a poison message to the policy's dead-letter topic as v0.15.1 does: its
// broker publishes through an internal reliable producer, which creates a missing topic and
// sends the payload and attributes only (no routing key, no schema), the attributes extended with
// the x-original-* set. It reports whether the message left the subscription.
func (s *subscription) deadLetter(e *entry) bool {
	c := s.core
	name := s.policy.DeadLetterTopic
	dlt := c.topics[name]
	if dlt == nil {
		t, err := c.createTopic(name, true)
		if err != nil {
			c.log.Warn("dead-letter topic cannot be created; message stays blocked", "topic", s.topic.name,
				"subscription", s.name, "dead_letter_topic", name, "offset", e.off, "err", err)
			return false
		}
		dlt = t
	}
	m := &pb.StreamMessage{
		RequestId:    e.msg.GetRequestId(),
		MsgId:        &pb.MsgID{TopicName: name, BrokerAddr: e.msg.GetMsgId().GetBrokerAddr()},
		Payload:      e.msg.GetPayload(),
		PublishTime:  uint64(time.Now().UnixMilli()),
		ProducerName: "broker-replicator",
	}
	attrs := make(map[string]string, len(e.msg.GetAttributes())+8)
	for k, v := range e.msg.GetAttributes() {
		attrs[k] = v
	}
	attrs["x-original-topic"] = e.msg.GetMsgId().GetTopicName()
	attrs["x-original-subscription"] = s.name
	attrs["x-original-topic-offset"] = strconv.FormatUint(e.msg.GetMsgId().GetTopicOffset(), 10)
	attrs["x-original-producer-id"] = strconv.FormatUint(e.msg.GetMsgId().GetProducerId(), 10)
	attrs["x-original-broker-addr"] = e.msg.GetMsgId().GetBrokerAddr()
	attrs["x-poison-policy"] = "dead_letter"
	attrs["x-delivery-attempt"] = strconv.Itoa(e.attempt)
	if e.reason != "" {
		attrs["x-failure-reason"] = e.reason
	}
	m.Attributes = attrs
	if err := c.publish(dlt, m); err != nil {
		c.log.Warn("dead-letter publish failed", "dead_letter_topic", name, "err", err)
		return false
	}
	// The original is settled next, and its cursor may be saved before any
	// producer's fsync covers the copy: make the copy durable first.
	if dlt.log != nil {
		if err := dlt.log.Sync(); err != nil {
			c.log.Warn("dead-letter sync failed", "dead_letter_topic", name, "err", err)
			return false
		}
	}
	return true
}

// ack settles an in-flight offset; late or duplicate acks are ignored.
func (s *subscription) ack(off uint64, now time.Time) {
	if s.window == nil {
		return
	}
	e := s.get(off)
	if e == nil || e.state != stateInflight {
		return
	}
	s.setState(e, stateDone)
	e.consumer = nil
	s.settle()
	s.dispatch(now)
}

func (s *subscription) nack(off uint64, now time.Time, delay time.Duration, reason string) {
	if s.window == nil {
		return
	}
	e := s.get(off)
	if e == nil || e.state != stateInflight {
		return
	}
	s.fail(e, now, delay, reason)
	s.dispatch(now)
}

// release makes a consumer's in-flight messages immediately eligible for
// redelivery (disconnect or same-name takeover).
func (s *subscription) release(c *consumer, now time.Time) {
	if s.window == nil {
		return
	}
	c.queue = nil
	s.requeueInflight(c, now)
	s.dispatch(now)
}

// requeueInflight makes c's in-flight messages ready at once.
func (s *subscription) requeueInflight(c *consumer, now time.Time) {
	for off := s.ackFloor; off < s.next; off++ {
		if e := s.get(off); e.consumer == c && e.state == stateInflight {
			s.requeue(e, time.Time{}, now)
		}
	}
}

// ---- KeyShared consistent hashing ----

const vnodesPerConsumer = 100

type ringPoint struct {
	hash uint32
	c    *consumer
}

// keyHash is FNV-1a-64 folded to 32 bits, then the murmur3 finalizer.
func keyHash(s string) uint32 {
	h := fnv.New64a()
	h.Write([]byte(s))
	v := h.Sum64()
	x := uint32(v>>32) ^ uint32(v)
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	x *= 0xc2b2ae35
	x ^= x >> 16
	return x
}

func (s *subscription) rebuildRing() {
	if s.typ != pb.ConsumerRequest_KeyShared {
		return
	}
	s.ring = s.ring[:0]
	for _, c := range s.consumers {
		for i := 0; i < vnodesPerConsumer; i++ {
			s.ring = append(s.ring, ringPoint{hash: keyHash(c.name + "#" + strconv.Itoa(i)), c: c})
		}
	}
	sort.Slice(s.ring, func(i, j int) bool { return s.ring[i].hash < s.ring[j].hash })
}

// ringLookup walks the ring clockwise from the key's hash to the first
// consumer whose key filters accept the key; with activeOnly it skips
// inactive consumers (non-reliable), otherwise the owner is returned even when
// inactive so the key keeps its consumer across a reconnect (reliable).
func (s *subscription) ringLookup(key string, activeOnly bool) *consumer {
	n := len(s.ring)
	if n == 0 {
		return nil
	}
	h := keyHash(key)
	start := sort.Search(n, func(i int) bool { return s.ring[i].hash >= h })
	for i := 0; i < n; i++ {
		c := s.ring[(start+i)%n].c
		if (c.active || !activeOnly) && matchesFilters(c.filters, key) {
			return c
		}
	}
	return nil
}

func matchesFilters(filters []string, key string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if globMatch(f, key) {
			return true
		}
	}
	return false
}

// globMatch matches '*' (any run) and '?' (one character); everything else is literal.
func globMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
