package telemetry

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics are the instruments of one connector; every data point carries the connector's name so
// several connectors can share one exporter. A nil *Metrics records nothing, so code paths never
// need a nil check.
type Metrics struct {
	received, processed, failed, retried, deadLettered, published, reconnects metric.Int64Counter
	batchSize                                                                 metric.Int64Histogram
	latency                                                                   metric.Float64Histogram
	inFlight                                                                  metric.Int64UpDownCounter
	lag                                                                       metric.Int64Gauge
	set                                                                       metric.MeasurementOption
	// Prebuilt option slices: passing them with ... avoids an allocation per measurement.
	addOpts []metric.AddOption
	recOpts []metric.RecordOption
}

// NewMetrics creates the instruments on mp for the connector called name.
func NewMetrics(mp metric.MeterProvider, name string) (*Metrics, error) {
	m := mp.Meter("github.com/danube-messaging/danube-connect-go/libs/runtime")
	var errs [11]error
	x := &Metrics{set: metric.WithAttributeSet(attribute.NewSet(attribute.String("connector", name)))}
	x.received, errs[0] = m.Int64Counter("connector.records.received", metric.WithDescription("Records taken in: from Danube (sink) or from the external system (source)."))
	x.processed, errs[1] = m.Int64Counter("connector.records.processed", metric.WithDescription("Records completed: written and acked (sink) or published and acked by Danube (source)."))
	x.failed, errs[2] = m.Int64Counter("connector.records.failed", metric.WithDescription("Record attempts that failed, by class."))
	x.retried, errs[3] = m.Int64Counter("connector.records.retried", metric.WithDescription("Retries of a record or batch."))
	x.deadLettered, errs[4] = m.Int64Counter("connector.records.dead_lettered", metric.WithDescription("Records published to the dead-letter topic."))
	x.published, errs[5] = m.Int64Counter("connector.records.published", metric.WithDescription("Messages published to Danube, DLQ included."))
	x.batchSize, errs[6] = m.Int64Histogram("connector.batch.size", metric.WithDescription("Records per processed batch."),
		metric.WithExplicitBucketBoundaries(1, 10, 100, 1000, 10000))
	x.latency, errs[7] = m.Float64Histogram("connector.processing.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to process a batch (sink) or to publish a record (source), retries included."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
	x.inFlight, errs[8] = m.Int64UpDownCounter("connector.records.in_flight", metric.WithDescription("Records taken in and not yet completed."))
	x.lag, errs[9] = m.Int64Gauge("connector.source.lag", metric.WithDescription("Source-reported lag behind the external system (records or bytes, as the connector knows it)."))
	x.reconnects, errs[10] = m.Int64Counter("connector.reconnects", metric.WithDescription("Reconnects to the external system after the connector reported its connection lost."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	x.addOpts = []metric.AddOption{x.set}
	x.recOpts = []metric.RecordOption{x.set}
	return x, nil
}

func (m *Metrics) add(c metric.Int64Counter, n int64, extra ...attribute.KeyValue) {
	if n == 0 {
		return
	}
	if len(extra) == 0 {
		c.Add(context.Background(), n, m.addOpts...)
		return
	}
	c.Add(context.Background(), n, m.set, metric.WithAttributes(extra...))
}

// Every method checks m for nil itself: the instrument fields cannot even be read through a nil
// pointer, so the check cannot live in add alone.

// Received counts records taken in.
func (m *Metrics) Received(n int) {
	if m != nil {
		m.add(m.received, int64(n))
		m.InFlight(n)
	}
}

// Processed counts records completed.
func (m *Metrics) Processed(n int) {
	if m != nil {
		m.add(m.processed, int64(n))
		m.InFlight(-n)
	}
}

// Failed counts failed attempts of class ("retryable", "invalid_data", "fatal").
func (m *Metrics) Failed(n int, class string) {
	if m != nil {
		m.add(m.failed, int64(n), attribute.String("class", class))
	}
}

// Retried counts retries.
func (m *Metrics) Retried(n int) {
	if m != nil {
		m.add(m.retried, int64(n))
	}
}

// DeadLettered counts records sent to the DLQ (they also complete).
func (m *Metrics) DeadLettered(n int) {
	if m != nil {
		m.add(m.deadLettered, int64(n))
		m.InFlight(-n)
	}
}

// Reconnected counts a completed reconnect to the external system.
func (m *Metrics) Reconnected() {
	if m != nil {
		m.add(m.reconnects, 1)
	}
}

// Published counts messages sent to Danube.
func (m *Metrics) Published(n int) {
	if m != nil {
		m.add(m.published, int64(n))
	}
}

// Dropped leaves the in-flight count without counting the record as processed (nacked, or
// abandoned at shutdown for redelivery).
func (m *Metrics) Dropped(n int) { m.InFlight(-n) }

// InFlight moves the in-flight gauge by delta.
func (m *Metrics) InFlight(delta int) {
	if m == nil || delta == 0 {
		return
	}
	m.inFlight.Add(context.Background(), int64(delta), m.addOpts...)
}

// Batch records one processed batch of n records that took seconds.
func (m *Metrics) Batch(n int, seconds float64) {
	if m == nil {
		return
	}
	m.batchSize.Record(context.Background(), int64(n), m.recOpts...)
	m.latency.Record(context.Background(), seconds, m.recOpts...)
}

// Lag records the source's lag, where the connector knows it.
func (m *Metrics) Lag(v int64) {
	if m == nil {
		return
	}
	m.lag.Record(context.Background(), v, m.recOpts...)
}
