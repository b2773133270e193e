package sink

import (
	"context"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/batch"
)

// batchLoop is the schedule stage of a sink that writes one record or one batch at a time: it
// groups records into per-partition batches (BATCH_SIZE, BATCH_TIMEOUT_MS, BATCH_IDLE_MS) and
// hands each to process in turn.
type batchLoop[R any] struct {
	proc    *processor[R]
	in      <-chan delivery
	batches *batch.Batcher[delivery]
	parked  []delivery // canaries that failed: processed before new intake
}

func newBatchLoop[R any](proc *processor[R], in <-chan delivery, cfg *Config) *batchLoop[R] {
	return &batchLoop[R]{proc: proc, in: in, batches: batch.New[delivery](cfg.BatchSize, cfg.BatchTimeout).WithIdle(cfg.BatchIdle)}
}

// run batches records until ctx ends (then it flushes what it holds, in work) or a batch fails for
// good.
func (l *batchLoop[R]) run(ctx, work context.Context) error {
	b, h := l.batches, l.proc.host
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var tc <-chan time.Time
		if d, ok := b.Deadline(); ok {
			timer.Reset(time.Until(d))
			tc = timer.C
		}
		var ready []*batch.Batch[delivery]
		if len(l.parked) > 0 {
			d := l.parked[0]
			l.parked = l.parked[1:]
			ready = b.Add(d.msg.Topic, d.msg.Offset, d, time.Now())
		} else {
			select {
			case <-ctx.Done():
				h.Log.Info("stopping: flushing pending batches", "records", b.Len())
				return l.handle(work, b.Drain())
			case d := <-l.in:
				h.Metrics.Received(1)
				ready = b.Add(d.msg.Topic, d.msg.Offset, d, time.Now())
			case now := <-tc:
				ready = b.Expired(now)
			}
		}
		if err := l.handle(work, ready); err != nil {
			h.Metrics.Dropped(b.Len())
			return err
		}
	}
}

func (l *batchLoop[R]) handle(ctx context.Context, ready []*batch.Batch[delivery]) error {
	for _, bt := range ready {
		if err := l.proc.handle(ctx, bt.Items, l.canary); err != nil {
			return err
		}
	}
	return nil
}

// canary is the poison probe of a sink that writes one record or batch at a time, where no other
// record is written while one fails: it takes the next record from intake (if one comes within
// RETRY_BACKOFF_MS) and writes it out of turn. Written, it proves that the external system takes
// records, so the failing ones are poison; failing too, it is parked and processed in turn after
// them. A redelivery of a failing record is no canary.
func (l *batchLoop[R]) canary(ctx context.Context, _ int64, failing []delivery) bool {
	t := time.NewTimer(max(l.proc.policy.retry.Base, 10*time.Millisecond))
	defer t.Stop()
	var d delivery
	select {
	case d = <-l.in:
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
	l.proc.host.Metrics.Received(1)
	for _, f := range failing {
		if f.msg.Topic == d.msg.Topic && f.msg.Offset == d.msg.Offset {
			l.parked = append(l.parked, d)
			return false
		}
	}
	if err := l.proc.processOne(ctx, d); err != nil {
		l.parked = append(l.parked, d)
		return false
	}
	l.proc.written(d)
	return true
}
