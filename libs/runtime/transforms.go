package runtime

import (
	"cmp"

	"go.opentelemetry.io/otel/attribute"

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

// transformState is where a sink record is in the chain.
type transformState uint8

const (
	untransformed    transformState = iota // not yet through the chain
	transformed                            // through it, kept: Message is the changed copy
	transformDropped                       // a step dropped it: acked without a write
	transformFailed                        // a step failed on it: dead-lettered with the reason
)

// transform runs the chain on rec once (a retried record keeps its outcome); the error is the
// failure, as invalid data.
func (rec *SinkRecord) transform(chain *transform.Chain) (keep bool, err error) {
	if rec.tstate == untransformed {
		m := rec.Message
		r := transform.Record{Payload: m.Payload, Attributes: m.Attributes, Key: m.Key, Topic: m.Topic, Message: m}
		keep, err := chain.Apply(&r)
		switch {
		case err != nil:
			rec.tstate, rec.terr = transformFailed, InvalidData(err)
		case !keep:
			rec.tstate = transformDropped
		default:
			rec.tstate = transformed
			c := *m // the engine keeps m: what is acked, nacked or dead-lettered is the original
			c.Payload, c.Attributes, c.Key = r.Payload, r.Attributes, r.Key
			rec.Message = &c
		}
	}
	return rec.tstate == transformed, rec.terr
}

// transformRecords runs the chain on recs: dropped and failed records get their outcome in errs,
// and the records left for the connector are returned with their indexes in recs (recs itself and
// no indexes when all are left).
func (s sinkRecords) transformRecords(recs []*SinkRecord, errs []error) (left []*SinkRecord, at []int) {
	all := true
	for i, rec := range recs {
		keep, err := rec.transform(s.chain)
		errs[i] = err
		all = all && keep
	}
	if all {
		return recs, nil
	}
	for i, rec := range recs {
		if rec.tstate == transformed {
			left, at = append(left, rec), append(at, i)
		}
	}
	return left, at
}

// transformSource runs the chain on a source's records: a dropped record becomes a checkpoint
// (its position is committed in order, its OnAck called), a failed one carries the failure to the
// engine, which dead-letters the original record.
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
