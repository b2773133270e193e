// Package runtimetest runs connectors against a Danube broker — an in-process development broker,
// or an external one given by IT_DANUBE_URL (see SuiteBroker): helpers to start one, produce,
// collect and run a connector in the background, and the conformance suites (SinkSuite,
// SourceSuite) that every connector's tests run with its own external system.
package runtimetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Timeout bounds every wait of this package.
var Timeout = 20 * time.Second

// BrokerConfig is the configuration of StartBroker's development broker: millisecond timers, state
// persisted in dataDir. A test that stops the broker and starts a new one on the same addresses
// and directory (an outage) starts it with this.
func BrokerConfig(dataDir string) devbroker.Config {
	return devbroker.Config{
		DataDir:    dataDir,
		AckTimeout: 2 * time.Second, RedeliveryBaseDelay: 10 * time.Millisecond, RedeliveryMaxDelay: 100 * time.Millisecond,
		RetryTick: 10 * time.Millisecond, CursorFlushInterval: 20 * time.Millisecond,
	}
}

// StartBroker starts a development broker with millisecond timers whose state persists in a
// temporary directory (so Restart keeps topics, messages and cursors); it is closed at cleanup.
func StartBroker(t testing.TB) *devbroker.Broker {
	t.Helper()
	b, err := devbroker.Start(BrokerConfig(t.TempDir()))
	if err != nil {
		t.Fatalf("start devbroker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// common returns test-friendly shared settings for broker b. DANUBE_ADMIN_URL is set only for an
// external broker given IT_DANUBE_ADMIN_URL.
func common(b Broker, name string) runtime.Common {
	var admin string
	if a, ok := b.(adminURLer); ok {
		admin = a.AdminURL()
	}
	return runtime.Common{
		DanubeServiceURL: b.URL(), DanubeAdminURL: admin, ConnectorName: name,
		RetryPolicy: retry.Exponential, MaxRetries: 3,
		RetryBackoff: config.Millis(5 * time.Millisecond), RetryMaxBackoff: config.Millis(50 * time.Millisecond),
		ShutdownTimeout: config.Millis(5 * time.Second),
	}
}

// SinkConfig is a sink config for broker b with millisecond timers: one topic, an Exclusive
// subscription named after the connector, BATCH_SIZE 1.
func SinkConfig(b Broker, name, topic string) *runtime.SinkConfig {
	return &runtime.SinkConfig{
		Common: common(b, name), Topics: []string{topic}, SubscriptionName: name + "-sub", SubscriptionType: danube.Exclusive, MaxInFlight: 1,
		BatchSize: 1, BatchTimeout: config.Millis(20 * time.Millisecond), NackDelay: config.Millis(10 * time.Millisecond),
	}
}

// SourceConfig is a source config for broker b publishing to topic by default.
func SourceConfig(b Broker, name, topic string) *runtime.SourceConfig {
	return &runtime.SourceConfig{
		Common: common(b, name), Topic: topic, MaxInFlight: 100,
		PollInterval: config.Millis(5 * time.Millisecond), BatchSize: 100,
	}
}

// Client returns a client of b closed at cleanup.
func Client(t testing.TB, b Broker, opts ...danube.Option) *danube.Client {
	t.Helper()
	c, err := danube.NewClient(b.URL(), append([]danube.Option{danube.WithBackoff(danube.BackoffFunc(func(int) time.Duration { return 10 * time.Millisecond }))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CreateTopic makes topic exist as a reliable topic (consumers cannot subscribe before that).
func CreateTopic(t testing.TB, b Broker, topic string) {
	t.Helper()
	Produce(t, b, topic)
}

// Produce publishes msgs to topic with a reliable producer (created and closed here).
func Produce(t testing.TB, b Broker, topic string, msgs ...danube.ProducerMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c := Client(t, b)
	p, err := c.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "runtimetest-producer", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatalf("create producer on %s: %v", topic, err)
	}
	defer p.Close()
	for _, m := range msgs {
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatalf("send to %s: %v", topic, err)
		}
	}
}

// Payloads turns strings into messages.
func Payloads(ps ...string) []danube.ProducerMessage {
	out := make([]danube.ProducerMessage, len(ps))
	for i, p := range ps {
		out[i] = danube.ProducerMessage{Payload: []byte(p)}
	}
	return out
}

// Collector subscribes to a topic and records (and acks) everything it receives.
type Collector struct {
	mu   sync.Mutex
	msgs []*danube.Message
	wake chan struct{}
}

// Collect subscribes to topic (which must exist) with an Exclusive subscription named sub.
func Collect(t testing.TB, b Broker, topic, sub string) *Collector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cons, err := Client(t, b).Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: sub, Subscription: sub, Type: danube.Exclusive})
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	col := &Collector{wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range cons.Messages() {
			_ = cons.Ack(context.Background(), m)
			col.mu.Lock()
			col.msgs = append(col.msgs, m)
			col.mu.Unlock()
			select {
			case col.wake <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { _ = cons.Close(); <-done })
	return col
}

// Messages returns what was received so far.
func (c *Collector) Messages() []*danube.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// Payloads returns the payloads received so far, in arrival order.
func (c *Collector) Payloads() []string {
	var out []string
	for _, m := range c.Messages() {
		out = append(out, string(m.Payload))
	}
	return out
}

// WaitFor waits until cond holds for the received messages (evaluated on every arrival).
func (c *Collector) WaitFor(t testing.TB, what string, cond func([]*danube.Message) bool) []*danube.Message {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		if ms := c.Messages(); cond(ms) {
			return ms
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; received %q", what, c.Payloads())
		}
	}
}

// Running is a connector running in the background.
type Running struct {
	Telemetry *telemetry.Server
	cancel    context.CancelFunc
	done      chan error
	err       error
	stopped   bool
}

// StartSink runs conn with RunSink and waits until it is ready (subscribed and conn healthy).
func StartSink(t testing.TB, cfg *runtime.SinkConfig, conn runtime.SinkConnector, opts ...runtime.Option) *Running {
	t.Helper()
	return start(t, func(ctx context.Context, opts ...runtime.Option) error {
		return runtime.RunSink(ctx, cfg, conn, opts...)
	}, true, opts)
}

// StartSinkNoWait runs conn with RunSink without waiting for readiness (a sink that may turn not
// ready at once, as on a delivery gap).
func StartSinkNoWait(t testing.TB, cfg *runtime.SinkConfig, conn runtime.SinkConnector, opts ...runtime.Option) *Running {
	t.Helper()
	return start(t, func(ctx context.Context, opts ...runtime.Option) error {
		return runtime.RunSink(ctx, cfg, conn, opts...)
	}, false, opts)
}

// StartSource runs conn with RunSource; it waits for readiness only when waitReady is set (a source
// waiting for leadership never gets there).
func StartSource[P any](t testing.TB, cfg *runtime.SourceConfig, conn runtime.SourceConnector[P], waitReady bool, opts ...runtime.Option) *Running {
	t.Helper()
	return start(t, func(ctx context.Context, opts ...runtime.Option) error {
		return runtime.RunSource(ctx, cfg, conn, opts...)
	}, waitReady, opts)
}

func start(t testing.TB, run func(context.Context, ...runtime.Option) error, waitReady bool, opts []runtime.Option) *Running {
	t.Helper()
	srv, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Telemetry: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, append(opts, runtime.WithTelemetry(srv))...) }()
	t.Cleanup(func() {
		if !r.stopped {
			_ = r.Stop() // the test that wanted the run's error called Stop itself
		}
		_ = srv.Shutdown(context.Background())
	})
	if waitReady {
		r.WaitReady(t)
	}
	return r
}

// WaitReady waits until every readiness check passes; it fails the test if the connector stops.
func (r *Running) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		err := r.Telemetry.Ready(context.Background())
		if err == nil {
			return
		}
		select {
		case e := <-r.done:
			r.stopped, r.err = true, e
			t.Fatalf("connector stopped before ready: %v", e)
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %v: %v", Timeout, err)
		}
	}
}

// Stop cancels the run (as SIGTERM does) and returns its result.
func (r *Running) Stop() error {
	r.cancel()
	return r.Wait()
}

// Wait waits for the run to end by itself (a fatal error) and returns its result.
func (r *Running) Wait() error {
	if !r.stopped {
		r.err = <-r.done
		r.stopped = true
	}
	return r.err
}

// Done reports whether the run ended, without waiting.
func (r *Running) Done() bool {
	if r.stopped {
		return true
	}
	select {
	case r.err = <-r.done:
		r.stopped = true
		return true
	default:
		return false
	}
}

// Metric returns the value of the Prometheus sample whose name and labels are exactly series
// (e.g. `connector_records_received_total{connector="x"}`), or -1 when absent.
func (r *Running) Metric(t testing.TB, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Telemetry.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// WaitMetric waits until series reaches at least v.
func (r *Running) WaitMetric(t testing.TB, series string, v float64) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for r.Metric(t, series) < v {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %v, want >= %v", series, r.Metric(t, series), Timeout, v)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
