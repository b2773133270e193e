package chsink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestClickHouseDownThenBack: while ClickHouse is unreachable the sink holds its batch, reports not
// ready and reconnects; when it is back every row is inserted exactly once and nothing was nacked
// or dead-lettered.
func TestClickHouseDownThenBack(t *testing.T) {
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
	px := harness.StartProxy(t, ep.NativeAddr)
	host, port, _ := strings.Cut(px.Addr(), ":")
	cfg := loadConfig(t, ep, "events", "CH_HOST="+host, "CH_PORT="+port, "CH_DIAL_TIMEOUT_MS=200", "CH_INSERT_TIMEOUT_MS=2000")

	br := runtimetest.StartBroker(t)
	topic := "/default/outage"
	runtimetest.CreateTopic(t, br, topic)
	sc := runtimetest.SinkConfig(br, "outage", topic)
	sc.BatchSize, sc.MaxRetries = 4, 0 // a retry spent would show as a nack
	r := runtimetest.StartSink(t, sc, newSink(t, cfg, sc))

	produce := func(from, to int) {
		var msgs []danube.ProducerMessage
		for i := from; i < to; i++ {
			msgs = append(msgs, danube.ProducerMessage{Payload: jsonRow(i)})
		}
		runtimetest.Produce(t, br, topic, msgs...)
	}
	rd := reader(t, ep)
	count := func() []string {
		return queryStrings(t, rd, "SELECT toString(id) FROM "+ep.Database+".events ORDER BY id")
	}
	waitRows := func(n int) []string {
		deadline := time.Now().Add(runtimetest.Timeout)
		for {
			got := count()
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	produce(0, 4)
	if got := waitRows(4); len(got) != 4 {
		t.Fatalf("before the outage: %q", got)
	}

	px.Down()
	produce(4, 12)
	deadline := time.Now().Add(runtimetest.Timeout)
	for r.Telemetry.Ready(context.Background()) == nil { // the lost connection shows on /readyz
		if time.Now().After(deadline) {
			t.Fatal("still ready while ClickHouse is unreachable")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := count(); len(got) != 4 {
		t.Fatalf("rows written during the outage: %q", got)
	}
	px.Up(t)
	r.WaitReady(t)
	got := waitRows(12)
	var want []string
	for i := range 12 {
		want = append(want, fmt.Sprint(i))
	}
	slices.SortFunc(want, strings.Compare)
	slices.SortFunc(got, strings.Compare)
	if !slices.Equal(got, want) {
		t.Fatalf("after the outage: %q, want each of 0..11 once", got)
	}
	for _, series := range []string{`connector_records_dead_lettered_total{connector="outage"}`, `connector_records_failed_total{class="retryable",connector="outage"}`} {
		if v := r.Metric(t, series); v > 0 {
			t.Errorf("%s = %v, want none", series, v)
		}
	}
	if v := r.Metric(t, `connector_records_processed_total{connector="outage"}`); v < 12 {
		t.Errorf("connector_records_processed_total = %v, want 12", v)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
