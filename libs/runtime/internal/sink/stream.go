package sink

import (
	"context"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/keyed"
)

// streamKey is a record's ordering domain: its routing key on its topic.
type streamKey struct{ topic, key string }

// orderKey returns d's ordering domain; a record without a routing key is unordered.
func orderKey(d delivery) (streamKey, bool) {
	return streamKey{d.msg.Topic, d.msg.Key}, d.msg.Key != ""
}

// stream is the schedule stage of a sink whose connector writes concurrently: records flow to
// concurrent writes as they arrive, with no batch barrier. A key is handed to at most one worker
// at a time, and its next record waits in the key's queue until the previous one is finished
// (written, dead-lettered or nacked), so per-key order holds across retries; at most 2×workers
// records are taken and not finished, which bounds those queues. Each record is handled like a
// batch of one: the same retry, dead-letter and RETRY_EXHAUSTED rules, and its ack is queued the
// moment it is written.
//
// On ctx's end intake stops and every record already taken is finished (within the work context,
// the shutdown timeout). On a fatal error intake stops, records not yet started are left unacked
// (Danube redelivers them), records in flight are cancelled, and the error is returned.
func (p *processor[R]) stream(ctx, work context.Context, in <-chan delivery, workers int) error {
	s := keyed.Scheduler[streamKey, delivery]{
		Key: orderKey,
		Run: func(ctx context.Context, ds []delivery) error { // a fatal error, or RETRY_EXHAUSTED=stop, halts the stream
			return p.handle(ctx, ds, p.othersWritten)
		},
		Drop:     func(ds []delivery) { p.host.Metrics.Dropped(len(ds)) },
		Taken:    func(delivery) { p.host.Metrics.Received(1) },
		Stopping: func(n int) { p.host.Log.Info("stopping: finishing records in flight", "records", n) },
		Workers:  workers,
		Pending:  2 * workers,
	}
	return s.Serve(ctx, work, in)
}
