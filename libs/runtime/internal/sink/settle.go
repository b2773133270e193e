package sink

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// ackWorkers is how many acks and nacks a sink has in flight at once. Danube accepts acks in any
// order and caps a subscription at max_unacked_messages (10 by default, at most 10 000) in-flight
// messages; 64 concurrent unary calls share the connection's HTTP/2 writes and keep a large window
// moving without a goroutine per message.
const ackWorkers = 64

// settler sends acks and nacks off the sink loop, so the next batch is processed while the last
// one's acks are on the wire (one at a time, they were most of a sink's time). Only records the
// connector finished are queued, so nothing is acked before its write; close waits for every
// queued settlement, bounded by the work context (the shutdown timeout).
type settler struct {
	ctx    context.Context
	host   *Host
	replay *replayFilter // written records whose ack failed: their redelivery is acked, not written
	jobs   chan settlement
	wg     sync.WaitGroup
	queued atomic.Int64 // settlements queued and not yet sent: drained waits for 0
}

type settlement struct {
	d      delivery
	kind   settleKind
	delay  time.Duration
	reason string
}

type settleKind uint8

const (
	settleAck settleKind = iota
	settleDeadLettered
	settleNack
)

func newSettler(ctx context.Context, h *Host, replay *replayFilter) *settler {
	s := &settler{ctx: ctx, host: h, replay: replay, jobs: make(chan settlement, ackWorkers)}
	for range ackWorkers {
		s.wg.Go(s.work)
	}
	return s
}

// ack queues the ack of a written record.
func (s *settler) ack(d delivery) {
	s.remember(d)
	s.queue(settlement{d: d, kind: settleAck})
}

// deadLettered queues the ack of a record that is now on the dead-letter topic.
func (s *settler) deadLettered(d delivery) {
	s.remember(d)
	s.queue(settlement{d: d, kind: settleDeadLettered})
}

func (s *settler) queue(j settlement) {
	s.queued.Add(1)
	s.jobs <- j
}

// drained waits until no settlement is queued or being sent, or ctx ends. Intake waits for it
// before it reopens after an outage: an ack queued while the consumer was open but sent after it
// closed fails, and its record must be in the replay filter before the broker can redeliver it.
func (s *settler) drained(ctx context.Context) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for s.queued.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// remember puts a record whose consumer is closed (intake closed for an outage) in the replay
// filter at once, before intake reopens: its ack cannot succeed, and the broker redelivers it to
// the new consumer, possibly before the failed ack would have been noted.
func (s *settler) remember(d delivery) {
	if s.replay != nil && d.cons.Closed() {
		s.replay.add(d.msg)
	}
}

// nack queues a nack: Danube redelivers the record after delay.
func (s *settler) nack(d delivery, delay time.Duration, reason string) {
	s.queue(settlement{d: d, kind: settleNack, delay: delay, reason: reason})
}

// close waits until every queued settlement was sent (or the work context ended).
func (s *settler) close() {
	close(s.jobs)
	s.wg.Wait()
}

func (s *settler) work() {
	for j := range s.jobs {
		m := j.d.msg
		switch j.kind {
		case settleAck, settleDeadLettered:
			if err := j.d.cons.Ack(s.ctx, m); err != nil {
				// Written but not acked: Danube redelivers it, and the redelivery is acked then.
				if s.replay != nil {
					s.replay.add(m)
				}
				s.host.Log.Debug("ack failed; the redelivery will be acked", "topic", m.Topic, "offset", m.Offset, "err", err)
			}
			if j.kind == settleAck {
				s.host.Metrics.Processed(1)
			} else {
				s.host.Metrics.DeadLettered(1)
			}
		case settleNack:
			if err := j.d.cons.Nack(s.ctx, m, j.delay, j.reason); err != nil {
				s.host.Log.Warn("nack failed; the broker redelivers after its ack timeout", "topic", m.Topic, "offset", m.Offset, "err", err)
			}
			s.host.Metrics.Dropped(1)
		}
		s.queued.Add(-1)
	}
}
