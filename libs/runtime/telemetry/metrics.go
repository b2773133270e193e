package telemetry

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the instruments of one connector; every data point carries the connector's name so
// several connectors can share one exporter. A nil *Metrics records nothing, so code paths never
// need a nil check.
//
// The per-record counters are plain atomics read by one observable callback at scrape time: the
// hot path of a record pays an atomic add, not an SDK measurement (attribute lookup, lock).
type Metrics struct {
	received, processed, retried, deadLettered, published, reconnects, dropped atomic.Int64
	gaps                                                                       atomic.Int64
	failed                                                                     [4]atomic.Int64 // by class, see classes
	lag                                                                        atomic.Int64
	lagSet                                                                     atomic.Bool
	paused, poisoned                                                           atomic.Int64
	danube                                                                     atomic.Pointer[Check]

	batchSize metric.Int64Histogram
	latency   metric.Float64Histogram
	recOpts   []metric.RecordOption // prebuilt: passing them with ... avoids an allocation per record
	reg       metric.Registration
}

// classes are the failure classes, in the runtime's Class order.
var classes = [4]string{"retryable", "invalid_data", "fatal", "disconnected"}

// NewMetrics creates the instruments on mp for the connector called name.
func NewMetrics(mp metric.MeterProvider, name string) (*Metrics, error) {
	m := mp.Meter("github.com/danube-messaging/danube-connect-go/libs/runtime")
	conn := attribute.String("connector", name)
	set := metric.WithAttributeSet(attribute.NewSet(conn))
	x := &Metrics{recOpts: []metric.RecordOption{set}}
	var errs []error
	obs := x.observed()
	insts := make([]metric.Observable, 0, len(obs)+1)
	for i := range obs {
		var err error
		obs[i].inst, err = obs[i].kind.create(m, obs[i].name, obs[i].desc)
		errs = append(errs, err)
		insts = append(insts, obs[i].inst)
	}
	failed, err := m.Int64ObservableCounter("connector.records.failed", metric.WithDescription("Record attempts that failed, by class."))
	errs = append(errs, err)
	insts = append(insts, failed)
	x.batchSize, err = m.Int64Histogram("connector.batch.size", metric.WithDescription("Records per processed batch."),
		metric.WithExplicitBucketBoundaries(1, 10, 100, 1000, 10000))
	errs = append(errs, err)
	x.latency, err = m.Float64Histogram("connector.processing.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to process a batch (sink) or to publish a record (source), retries included."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var byClass [4]metric.MeasurementOption
	for i, c := range classes {
		byClass[i] = metric.WithAttributeSet(attribute.NewSet(conn, attribute.String("class", c)))
	}
	x.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		for _, v := range obs {
			if n, ok := v.load(ctx); ok {
				o.ObserveInt64(v.inst, n, set)
			}
		}
		for i := range classes {
			if n := x.failed[i].Load(); n > 0 {
				o.ObserveInt64(failed, n, byClass[i])
			}
		}
		return nil
	}, insts...)
	if err != nil {
		return nil, err
	}
	return x, nil
}

// observable is an instrument read at scrape time; load's false skips it.
type observable struct {
	name, desc string
	kind       instrumentKind
	load       func(context.Context) (int64, bool)
	inst       metric.Int64Observable
}

type instrumentKind uint8

const (
	counter instrumentKind = iota
	upDown
	gauge
)

func (k instrumentKind) create(m metric.Meter, name, desc string) (metric.Int64Observable, error) {
	switch k {
	case upDown:
		return m.Int64ObservableUpDownCounter(name, metric.WithDescription(desc))
	case gauge:
		return m.Int64ObservableGauge(name, metric.WithDescription(desc))
	}
	return m.Int64ObservableCounter(name, metric.WithDescription(desc))
}

// observed lists the instruments x's atomics feed.
func (m *Metrics) observed() []observable {
	always := func(v *atomic.Int64) func(context.Context) (int64, bool) {
		return func(context.Context) (int64, bool) { return v.Load(), true }
	}
	return []observable{
		{name: "connector.records.received", desc: "Records taken in: from Danube (sink) or from the external system (source).", load: always(&m.received)},
		{name: "connector.records.processed", desc: "Records completed: written and acked (sink) or published and acked by Danube (source).", load: always(&m.processed)},
		{name: "connector.records.retried", desc: "Retries of a record or batch.", load: always(&m.retried)},
		{name: "connector.records.dead_lettered", desc: "Records published to the dead-letter topic.", load: always(&m.deadLettered)},
		{name: "connector.records.published", desc: "Messages published to Danube, DLQ included.", load: always(&m.published)},
		{name: "connector.delivery.gaps", desc: "Messages Danube never delivered to the sink's subscription (offsets it skipped).", load: always(&m.gaps)},
		{name: "connector.reconnects", desc: "Reconnects to the external system after the connector reported its connection lost.", load: always(&m.reconnects)},
		{name: "connector.records.in_flight", kind: upDown, desc: "Records taken in and not yet completed.", load: func(context.Context) (int64, bool) {
			return m.received.Load() - m.processed.Load() - m.deadLettered.Load() - m.dropped.Load(), true
		}},
		{name: "connector.paused", kind: gauge, desc: "1 while a sink has paused its Danube consumers because the external system is failing.", load: always(&m.paused)},
		{name: "connector.records.poisoned", kind: gauge, desc: "Records that keep failing while others are written, held because there is no DLQ_TOPIC: the broker stops the subscription once they use up their delivery attempts.", load: always(&m.poisoned)},
		{name: "connector.danube.connected", kind: gauge, desc: "1 while the connector reaches Danube, 0 while it does not (an outage it is waiting out: a source keeps its records and publishes them when Danube is back).", load: func(ctx context.Context) (int64, bool) {
			check := m.danube.Load()
			if check == nil {
				return 0, false
			}
			if (*check)(ctx) != nil {
				return 0, true
			}
			return 1, true
		}},
		{name: "connector.source.lag", kind: gauge, desc: "Source-reported lag behind the external system (records or bytes, as the connector knows it).", load: func(context.Context) (int64, bool) {
			return m.lag.Load(), m.lagSet.Load()
		}},
	}
}

// DeliveryGap counts n messages Danube skipped.
func (m *Metrics) DeliveryGap(n int) {
	if m != nil {
		m.gaps.Add(int64(n))
	}
}

// WatchDanube makes connector_danube_connected follow check (the runner's Danube readiness).
func (m *Metrics) WatchDanube(check Check) {
	if m != nil {
		m.danube.Store(&check)
	}
}

// Close unregisters the callback: a stopped connector's series disappear from /metrics.
func (m *Metrics) Close() error {
	if m == nil || m.reg == nil {
		return nil
	}
	return m.reg.Unregister()
}

// Received counts records taken in (they are in flight until processed, dead-lettered or dropped).
func (m *Metrics) Received(n int) {
	if m != nil {
		m.received.Add(int64(n))
	}
}

// Processed counts records completed.
func (m *Metrics) Processed(n int) {
	if m != nil {
		m.processed.Add(int64(n))
	}
}

// Failed counts failed attempts of class ("retryable", "invalid_data", "fatal", "disconnected").
func (m *Metrics) Failed(n int, class string) {
	if m == nil {
		return
	}
	for i, c := range classes {
		if c == class {
			m.failed[i].Add(int64(n))
			return
		}
	}
}

// Retried counts retries.
func (m *Metrics) Retried(n int) {
	if m != nil {
		m.retried.Add(int64(n))
	}
}

// Reconnected counts a completed reconnect to the external system.
func (m *Metrics) Reconnected() {
	if m != nil {
		m.reconnects.Add(1)
	}
}

// DeadLettered counts records sent to the DLQ (they also complete).
func (m *Metrics) DeadLettered(n int) {
	if m != nil {
		m.deadLettered.Add(int64(n))
	}
}

// Published counts messages sent to Danube.
func (m *Metrics) Published(n int) {
	if m != nil {
		m.published.Add(int64(n))
	}
}

// Dropped leaves the in-flight count without counting the record as processed (nacked, or
// abandoned at shutdown for redelivery).
func (m *Metrics) Dropped(n int) {
	if m != nil {
		m.dropped.Add(int64(n))
	}
}

// Batch records one processed batch of n records that took seconds.
func (m *Metrics) Batch(n int, seconds float64) {
	if m == nil {
		return
	}
	m.batchSize.Record(context.Background(), int64(n), m.recOpts...)
	m.latency.Record(context.Background(), seconds, m.recOpts...)
}

// Paused records whether a sink's consumers are paused.
func (m *Metrics) Paused(on bool) {
	if m == nil {
		return
	}
	var v int64
	if on {
		v = 1
	}
	m.paused.Store(v)
}

// Poisoned records how many poison records a sink holds.
func (m *Metrics) Poisoned(n int) {
	if m != nil {
		m.poisoned.Store(int64(n))
	}
}

// Lag records the source's lag, where the connector knows it.
func (m *Metrics) Lag(v int64) {
	if m == nil {
		return
	}
	m.lag.Store(v)
	m.lagSet.Store(true)
}
