package bridge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/kafkatest"
)

func TestMain(m *testing.M) { harness.Main(m) }

// running is the bridge run in the background with its own telemetry server.
type running struct {
	srv    *telemetry.Server
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, environ []string) *running {
	t.Helper()
	var cfg bridge.Config
	if err := config.Load(&cfg, environ); err != nil {
		t.Fatal(err)
	}
	srv, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- bridge.Run(ctx, &cfg, runtime.WithTelemetry(srv)) }()
	t.Cleanup(func() { r.stop(t); _ = srv.Shutdown(context.Background()) })
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		err := srv.Ready(context.Background())
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge not ready: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("bridge stopped with %v", err)
	}
}

func (r *running) metric(series string) float64 {
	rec := httptest.NewRecorder()
	r.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func (r *running) waitMetric(t *testing.T, series string, v float64) {
	t.Helper()
	deadline := time.Now().Add(runtimetest.Timeout)
	for r.metric(series) < v {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed below %v", series, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBothDirectionsNoPingPong runs one bridge that imports Kafka topic T into Danube topic D and
// exports D to T: a record written to T reaches D once, a message published to D reaches T once,
// and neither comes back.
func TestBothDirectionsNoPingPong(t *testing.T) {
	ep := harness.Kafka(t)
	topic := harness.Name(t)
	kafkatest.CreateTopic(t, ep.Bootstrap, topic, 1)
	b := runtimetest.StartBroker(t)
	dest := "/default/loop"
	runtimetest.CreateTopic(t, b, dest)
	col := runtimetest.Collect(t, b, dest, "reader")
	r := start(t, []string{
		"DANUBE_SERVICE_URL=" + b.URL(), "CONNECTOR_NAME=bridge", "METRICS_ADDR=",
		"KAFKA_BOOTSTRAP_SERVERS=" + ep.Bootstrap, "KAFKA_GROUP_ID=" + topic + "_group",
		"IMPORT_MAPPINGS=" + topic + "=" + dest, "EXPORT_MAPPINGS=" + dest + "=" + topic,
		"KAFKA_PRODUCER_PROPERTIES=enable.metrics.push=false", "KAFKA_CONSUMER_PROPERTIES=enable.metrics.push=false",
	})

	kafkatest.Produce(t, ep.Bootstrap, topic, &kafka.Message{Key: []byte("k"), Value: []byte("from-kafka")})
	runtimetest.Produce(t, b, dest, danube.ProducerMessage{Key: "k", Payload: []byte("from-danube")})

	// Each side sees the other's message once, and each direction skipped the echo once.
	r.waitMetric(t, `bridge_kafka_export_loop_skipped_total{connector="bridge-export-default-loop"}`, 1)
	r.waitMetric(t, `bridge_kafka_import_loop_skipped_total{connector="bridge-import-`+topic+`"}`, 1)
	inDanube := col.WaitFor(t, "both messages", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	inKafka := kafkatest.Read(t, ep.Bootstrap, topic, 1).Drain(t)
	r.stop(t)

	var d, k []string
	for _, m := range inDanube {
		d = append(d, string(m.Payload))
	}
	for _, m := range inKafka {
		k = append(k, string(m.Value))
	}
	slices.Sort(d)
	slices.Sort(k)
	want := []string{"from-danube", "from-kafka"}
	if !slices.Equal(d, want) || !slices.Equal(k, want) {
		t.Fatalf("Danube holds %q, Kafka holds %q; want each to hold %q once", d, k, want)
	}
}
