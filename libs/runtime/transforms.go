package runtime

import (
	"cmp"
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/source"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// transformScope is the instrumentation scope of the transform steps' metrics.
const transformScope = "github.com/danube-messaging/danube-connect-go/libs/runtime/transform"

// transforms returns the runner's own copy of chain, its per-step metrics exported while the
// runner lives; nil when there are no steps.
func (e *env) transforms(chain *transform.Chain) (*transform.Chain, error) {
	if chain.Len() == 0 {
		return nil, nil
	}
	chain = chain.Copy()
	if e.server != nil {
		reg, err := chain.Observe(e.server.MeterProvider().Meter(transformScope), attribute.String("connector", e.name))
		if err != nil {
			return nil, err
		}
		e.cleanup = append(e.cleanup, func() { _ = reg.Unregister() })
	}
	names := make([]string, 0, chain.Len())
	for _, s := range chain.Stats() {
		names = append(names, s.Step+" ("+s.Type+")")
	}
	e.log.Info("transform steps", "steps", names)
	return chain, nil
}

// prepState is where a sink record is on its way to the connector.
type prepState uint8

const (
	unprepared  prepState = iota // schema not read, TRANSFORMS not run
	prepared                     // ready, kept: Message may be a changed copy
	prepDropped                  // a transform step dropped it: acked without a write
	prepFailed                   // it cannot be written (a step failed, the schema refused it): dead-lettered
)

// prepare readies rec for the connector once (a retried record keeps its outcome): its schema read
// (an Avro payload decoded to JSON, a payload checked with SCHEMA_VALIDATE), then TRANSFORMS run.
// The connector gets a copy of the message with what changed; the engine keeps the original, which
// is what is acked, nacked or dead-lettered. An error is the record's failure; a registry that
// cannot be reached leaves it unprepared, to be tried again.
func (s sinkRecords) prepare(ctx context.Context, rec *SinkRecord) (keep bool, err error) {
	if rec.pstate != unprepared {
		return rec.pstate == prepared, rec.perr
	}
	m := rec.Message
	if s.schemas != nil {
		var retry bool
		if m, retry, err = s.schemas.read(ctx, rec); retry {
			return false, err
		}
		if err != nil {
			rec.pstate, rec.perr = prepFailed, InvalidData(err)
			return false, rec.perr
		}
	}
	if s.chain != nil {
		r := transform.Record{Payload: m.Payload, Attributes: m.Attributes, Key: m.Key, Topic: m.Topic, Message: m}
		keep, err := s.chain.Apply(&r)
		switch {
		case err != nil:
			rec.pstate, rec.perr = prepFailed, InvalidData(err)
			return false, rec.perr
		case !keep:
			rec.pstate = prepDropped
			return false, nil
		}
		m = rec.changed(m, r.Payload, r.Attributes, r.Key)
	}
	rec.pstate, rec.Message = prepared, m
	return true, nil
}

// changed returns a copy of m with payload, attributes and key, kept in rec (which lives in its
// batch's memory: no allocation per record).
func (rec *SinkRecord) changed(m *danube.Message, payload []byte, attrs map[string]string, key string) *danube.Message {
	rec.copy = *m
	rec.copy.Payload, rec.copy.Attributes, rec.copy.Key = payload, attrs, key
	return &rec.copy
}

// prepareRecords prepares recs: dropped and failed records get their outcome in errs, and the
// records left for the connector are returned with their indexes in recs (recs itself and no
// indexes when all are left).
func (s sinkRecords) prepareRecords(ctx context.Context, recs []*SinkRecord, errs []error) (left []*SinkRecord, at []int) {
	all := true
	for i, rec := range recs {
		keep, err := s.prepare(ctx, rec)
		errs[i] = err
		all = all && keep
	}
	if all {
		return recs, nil
	}
	for i, rec := range recs {
		if rec.pstate == prepared {
			left, at = append(left, rec), append(at, i)
		}
	}
	return left, at
}

// transformSource runs the chain on a source's record: a dropped record becomes a checkpoint (its
// position is committed in order, its OnAck called), a failed one carries the failure to the
// engine, which dead-letters it as the steps before the failing one left it.
func transformSource[P any](chain *transform.Chain, defaultTopic string, r *source.Record[P]) {
	if r.Checkpoint {
		return
	}
	t := transform.Record{Payload: r.Payload, Attributes: r.Attributes, Key: r.Key, Topic: cmp.Or(r.Topic, defaultTopic)}
	keep, err := chain.Apply(&t)
	switch {
	case !keep && err == nil:
		r.Checkpoint = true
		return
	case err != nil:
		// Dead-lettered as the steps before the failing one left it: a record a later step fails on
		// does not reach Danube with what an earlier mask removed. Its topic stays the one it had.
		r.Failed, t.Topic = err, r.Topic
	}
	r.Payload, r.Attributes, r.Key, r.Topic = t.Payload, t.Attributes, t.Key, t.Topic
}
