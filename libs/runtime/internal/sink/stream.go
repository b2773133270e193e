package sink

import (
	"context"
	"sync"
)

// streamResult is a record a worker finished: written, dead-lettered, nacked or left unacked.
type streamResult struct {
	d   delivery
	err error // fatal, or RETRY_EXHAUSTED=stop: the sink stops
}

// orderKey is the ordering domain of a record: its routing key on its topic; "" = unordered.
func orderKey(d delivery) string {
	if d.msg.Key == "" {
		return ""
	}
	return d.msg.Topic + "\x00" + d.msg.Key
}

// stream is the loop for a ConcurrentSinkConnector: records flow to concurrent Process calls as they
// arrive, with no batch barrier. The loop alone owns the scheduling state; a key is handed to at
// most one worker at a time, and its next record waits in the key's queue until the previous one
// is finished (written, dead-lettered or nacked), so per-key order holds across retries. Each
// record is handled like a batch of one: the same retry, dead-letter and RETRY_EXHAUSTED rules, and
// its ack is queued the moment it is written.
//
// On ctx's end intake stops and every record already taken is finished (within the work context,
// the shutdown timeout). On a fatal error intake stops, records not yet started are left unacked
// (Danube redelivers them), records in flight are cancelled, and the error is returned.
func (p *processor[R]) stream(ctx, work context.Context, in <-chan delivery, workers int) error {
	limit := 2 * workers                // records taken but not finished: a queue behind each busy key, bounded
	ready := make(chan delivery, limit) // never blocks: at most limit records are pending
	results := make(chan streamResult, limit)
	run, halt := context.WithCancel(work)
	defer halt()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range ready {
				if run.Err() != nil { // halted by a fatal error: leave it unacked
					p.host.Metrics.Dropped(1)
					results <- streamResult{d: d}
					continue
				}
				one := [1]delivery{d}
				results <- streamResult{d: d, err: p.handle(run, one[:], p.othersWritten)}
			}
		})
	}
	defer func() {
		close(ready)
		wg.Wait()
	}()

	queues := map[string][]delivery{} // keys in flight → their records waiting, oldest first
	pending := 0
	stopping, done := false, ctx.Done()
	var fatal error
	for !stopping || pending > 0 {
		intake := in
		if stopping || pending >= limit {
			intake = nil
		}
		select {
		case <-done:
			p.host.Log.Info("stopping: finishing records in flight", "records", pending)
			stopping, done = true, nil
		case d := <-intake:
			p.host.Metrics.Received(1)
			pending++
			k := orderKey(d)
			if k == "" {
				ready <- d
				continue
			}
			if q, busy := queues[k]; busy {
				queues[k] = append(q, d)
				continue
			}
			queues[k] = nil
			ready <- d
		case res := <-results:
			pending--
			if res.err != nil && fatal == nil {
				fatal, stopping, done = res.err, true, nil
				halt()
			}
			k := orderKey(res.d)
			if k == "" {
				continue
			}
			q := queues[k]
			switch {
			case len(q) == 0:
				delete(queues, k)
			case fatal != nil: // never started: unacked, redelivered after the restart
				p.host.Metrics.Dropped(len(q))
				pending -= len(q)
				delete(queues, k)
			default:
				queues[k] = q[1:]
				ready <- q[0]
			}
		}
	}
	return fatal
}
