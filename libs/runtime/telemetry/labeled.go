package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Labeled returns a meter whose synchronous instruments add attrs to every measurement: a
// connector's own instruments then carry its name like the runtime's, with no attribute to
// remember. (The Prometheus exporter does not turn instrumentation-scope attributes into labels.)
// Observable instruments are passed through: their callbacks set their own attributes.
func Labeled(m metric.Meter, attrs ...attribute.KeyValue) metric.Meter {
	return labeledMeter{Meter: m, set: metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

type labeledMeter struct {
	metric.Meter
	set metric.MeasurementOption
}

func labeled[I, W any](inst I, err error, wrap func(I) W) (W, error) {
	if err != nil {
		var zero W
		return zero, err
	}
	return wrap(inst), nil
}

func (m labeledMeter) Int64Counter(name string, o ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := m.Meter.Int64Counter(name, o...)
	return labeled(c, err, func(c metric.Int64Counter) metric.Int64Counter { return int64Counter{c, m.set} })
}

func (m labeledMeter) Float64Counter(name string, o ...metric.Float64CounterOption) (metric.Float64Counter, error) {
	c, err := m.Meter.Float64Counter(name, o...)
	return labeled(c, err, func(c metric.Float64Counter) metric.Float64Counter { return float64Counter{c, m.set} })
}

func (m labeledMeter) Int64UpDownCounter(name string, o ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	c, err := m.Meter.Int64UpDownCounter(name, o...)
	return labeled(c, err, func(c metric.Int64UpDownCounter) metric.Int64UpDownCounter { return int64UpDownCounter{c, m.set} })
}

func (m labeledMeter) Float64UpDownCounter(name string, o ...metric.Float64UpDownCounterOption) (metric.Float64UpDownCounter, error) {
	c, err := m.Meter.Float64UpDownCounter(name, o...)
	return labeled(c, err, func(c metric.Float64UpDownCounter) metric.Float64UpDownCounter { return float64UpDownCounter{c, m.set} })
}

func (m labeledMeter) Int64Histogram(name string, o ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	h, err := m.Meter.Int64Histogram(name, o...)
	return labeled(h, err, func(h metric.Int64Histogram) metric.Int64Histogram { return int64Histogram{h, m.set} })
}

func (m labeledMeter) Float64Histogram(name string, o ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	h, err := m.Meter.Float64Histogram(name, o...)
	return labeled(h, err, func(h metric.Float64Histogram) metric.Float64Histogram { return float64Histogram{h, m.set} })
}

func (m labeledMeter) Int64Gauge(name string, o ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	g, err := m.Meter.Int64Gauge(name, o...)
	return labeled(g, err, func(g metric.Int64Gauge) metric.Int64Gauge { return int64Gauge{g, m.set} })
}

func (m labeledMeter) Float64Gauge(name string, o ...metric.Float64GaugeOption) (metric.Float64Gauge, error) {
	g, err := m.Meter.Float64Gauge(name, o...)
	return labeled(g, err, func(g metric.Float64Gauge) metric.Float64Gauge { return float64Gauge{g, m.set} })
}

type int64Counter struct {
	metric.Int64Counter
	set metric.MeasurementOption
}

func (c int64Counter) Add(ctx context.Context, v int64, o ...metric.AddOption) {
	c.Int64Counter.Add(ctx, v, append(o, c.set)...)
}

type float64Counter struct {
	metric.Float64Counter
	set metric.MeasurementOption
}

func (c float64Counter) Add(ctx context.Context, v float64, o ...metric.AddOption) {
	c.Float64Counter.Add(ctx, v, append(o, c.set)...)
}

type int64UpDownCounter struct {
	metric.Int64UpDownCounter
	set metric.MeasurementOption
}

func (c int64UpDownCounter) Add(ctx context.Context, v int64, o ...metric.AddOption) {
	c.Int64UpDownCounter.Add(ctx, v, append(o, c.set)...)
}

type float64UpDownCounter struct {
	metric.Float64UpDownCounter
	set metric.MeasurementOption
}

func (c float64UpDownCounter) Add(ctx context.Context, v float64, o ...metric.AddOption) {
	c.Float64UpDownCounter.Add(ctx, v, append(o, c.set)...)
}

type int64Histogram struct {
	metric.Int64Histogram
	set metric.MeasurementOption
}

func (h int64Histogram) Record(ctx context.Context, v int64, o ...metric.RecordOption) {
	h.Int64Histogram.Record(ctx, v, append(o, h.set)...)
}

type float64Histogram struct {
	metric.Float64Histogram
	set metric.MeasurementOption
}

func (h float64Histogram) Record(ctx context.Context, v float64, o ...metric.RecordOption) {
	h.Float64Histogram.Record(ctx, v, append(o, h.set)...)
}

type int64Gauge struct {
	metric.Int64Gauge
	set metric.MeasurementOption
}

func (g int64Gauge) Record(ctx context.Context, v int64, o ...metric.RecordOption) {
	g.Int64Gauge.Record(ctx, v, append(o, g.set)...)
}

type float64Gauge struct {
	metric.Float64Gauge
	set metric.MeasurementOption
}

func (g float64Gauge) Record(ctx context.Context, v float64, o ...metric.RecordOption) {
	g.Float64Gauge.Record(ctx, v, append(o, g.set)...)
}
