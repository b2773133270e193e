package transform

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// stats are a step's counters: atomics on the hot path, read by one callback at scrape time.
type stats struct {
	in, out, dropped, failed atomic.Int64
	nanos                    atomic.Int64
}

// record counts a record the step took in since start, and returns the time it ended.
func (s *stats) record(start time.Time, keep bool, err error) time.Time {
	end := time.Now()
	s.nanos.Add(int64(end.Sub(start)))
	s.in.Add(1)
	switch {
	case err != nil:
		s.failed.Add(1)
	case keep:
		s.out.Add(1)
	default:
		s.dropped.Add(1)
	}
	return end
}

// Stats is a step's counts so far.
type Stats struct {
	Step, Type               string
	In, Out, Dropped, Failed int64
	Time                     time.Duration // spent in the step
}

// Stats returns each step's counts, in chain order.
func (c *Chain) Stats() []Stats {
	out := make([]Stats, len(c.steps))
	for i, st := range c.steps {
		out[i] = Stats{Step: st.name, Type: st.typ, In: st.stats.in.Load(), Out: st.stats.out.Load(),
			Dropped: st.stats.dropped.Load(), Failed: st.stats.failed.Load(), Time: time.Duration(st.stats.nanos.Load())}
	}
	return out
}

// Observe exports the steps' counters on m, each data point carrying attrs (the connector's name)
// and the step's name and type: connector.transform.records by result (in, out, dropped, failed)
// and connector.transform.duration (seconds spent in the step). Unregister the returned
// registration when the chain stops.
func (c *Chain) Observe(m metric.Meter, attrs ...attribute.KeyValue) (metric.Registration, error) {
	records, err := m.Int64ObservableCounter("connector.transform.records",
		metric.WithDescription("Records a transform step took in (result=in) and what became of them: out, dropped (filtered) or failed (dead-lettered)."))
	if err != nil {
		return nil, err
	}
	secs, err := m.Float64ObservableCounter("connector.transform.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent in a transform step."))
	if err != nil {
		return nil, err
	}
	type point struct {
		step                     metric.MeasurementOption
		in, out, dropped, failed metric.MeasurementOption
	}
	points := make([]point, len(c.steps))
	for i, st := range c.steps {
		base := append([]attribute.KeyValue{attribute.String("step", st.name), attribute.String("type", st.typ)}, attrs...)
		with := func(result string) metric.MeasurementOption {
			return metric.WithAttributeSet(attribute.NewSet(append(slices.Clip(base), attribute.String("result", result))...))
		}
		points[i] = point{step: metric.WithAttributeSet(attribute.NewSet(slices.Clone(base)...)), // NewSet sorts in place
			in: with("in"), out: with("out"), dropped: with("dropped"), failed: with("failed")}
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, st := range c.steps {
			p := &points[i]
			o.ObserveInt64(records, st.stats.in.Load(), p.in)
			o.ObserveInt64(records, st.stats.out.Load(), p.out)
			o.ObserveInt64(records, st.stats.dropped.Load(), p.dropped)
			o.ObserveInt64(records, st.stats.failed.Load(), p.failed)
			o.ObserveFloat64(secs, time.Duration(st.stats.nanos.Load()).Seconds(), p.step)
		}
		return nil
	}, records, secs)
}
