package runtime_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// withTransforms loads TRANSFORMS and the step variables into cfg (a *SinkConfig or *SourceConfig)
// as the environment would.
func withTransforms(t testing.TB, steps config.Expander, names string, vars ...string) {
	t.Helper()
	if err := steps.(interface{ UnmarshalText([]byte) error }).UnmarshalText([]byte(names)); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	if errs := steps.Expand(m); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
}

// A sink's chain runs before the connector: it writes the mapped records only; a filtered record
// is acked without a write, one a step fails on goes to DLQ_TOPIC as it arrived, with the step and
// the reason. A batch retried after a failure keeps each record's outcome (the chain runs once).
func TestSinkTransforms(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/tf")
	cfg := runtimetest.SinkConfig(b, "tf", "/default/tf")
	cfg.DLQTopic, cfg.BatchSize = "/default/tf-dlq", 10
	withTransforms(t, &cfg.Transforms, "keep_real,body",
		"TRANSFORM_KEEP_REAL_TYPE=filter", "TRANSFORM_KEEP_REAL_EXPR=!('test' in payload) || !payload.test",
		"TRANSFORM_BODY_TYPE=map", "TRANSFORM_BODY_EXPR=payload.name + '@' + string(offset)")
	s := batched{scripted: newScripted(map[string][]error{"a@0": {runtime.Retryable(errors.New("busy"))}})}
	r := runtimetest.StartSink(t, cfg, s)
	dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
	runtimetest.Produce(t, b, "/default/tf", runtimetest.Payloads(`{"name":"a"}`, `{"name":"t","test":true}`, `not json`, `{"name":"c"}`)...)
	s.wait(t, 2)
	got := dlq.WaitFor(t, "the record the map failed on", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	reason := got[0].Attributes[runtime.AttrFailureReason]
	if string(got[0].Payload) != "not json" || !strings.Contains(reason, `transform "keep_real" (filter)`) {
		t.Fatalf("dead letter %q, reason %q", got[0].Payload, reason)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	written, calls, _ := s.snapshot()
	if slices.Sort(written); !slices.Equal(written, []string{"a@0", "c@3"}) || calls["a@0"] != 2 {
		t.Fatalf("written %q, calls %v", written, calls)
	}
	// Everything was acked, the filtered record too: a restarted sink gets only what is new.
	s2 := newScripted(nil)
	r2 := runtimetest.StartSink(t, cfg, s2)
	runtimetest.Produce(t, b, "/default/tf", runtimetest.Payloads(`{"name":"d"}`)...)
	s2.wait(t, 1)
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	if written, _, _ := s2.snapshot(); !slices.Equal(written, []string{"d@4"}) {
		t.Fatalf("after restart written %q", written)
	}
}

// A sink writing one record per call: a record the chain drops or fails on never reaches the
// connector (a call with no record left makes no write).
func TestSinkTransformsOneAtATime(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/tf1")
	cfg := runtimetest.SinkConfig(b, "tf1", "/default/tf1")
	cfg.DLQTopic = "/default/tf1-dlq"
	withTransforms(t, &cfg.Transforms, "big", "TRANSFORM_BIG_TYPE=filter", "TRANSFORM_BIG_EXPR=payload.n >= 10")
	s := newScripted(nil)
	r := runtimetest.StartSink(t, cfg, s)
	dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
	runtimetest.Produce(t, b, "/default/tf1", runtimetest.Payloads(`{"n":1}`, `{"n":10}`, `oops`, `{"n":2}`, `{"n":20}`)...)
	s.wait(t, 2)
	dlq.WaitFor(t, "the record the filter failed on", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	r.WaitMetric(t, `connector_transform_records_total{connector="tf1",result="dropped",step="big",type="filter"}`, 2)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if written, _, _ := s.snapshot(); !slices.Equal(written, []string{`{"n":10}`, `{"n":20}`}) {
		t.Fatalf("written %q", written)
	}
	if got := dlq.Payloads(); !slices.Equal(got, []string{"oops"}) {
		t.Fatalf("dead letters %q", got)
	}
}

// A source's chain runs before publish: a dropped record is committed like a published one (and
// its OnAck called); one a step fails on goes to DLQ_TOPIC as it was polled, with the reason, and
// the stream goes on.
func TestSourceTransforms(t *testing.T) {
	b := runtimetest.StartBroker(t)
	for _, topic := range []string{"/default/tfs", "/default/tfs-eu", "/default/tfs-dlq"} {
		runtimetest.CreateTopic(t, b, topic)
	}
	eu := runtimetest.Collect(t, b, "/default/tfs-eu", "r")
	dlq := runtimetest.Collect(t, b, "/default/tfs-dlq", "r")
	cfg := runtimetest.SourceConfig(b, "tfs", "/default/tfs")
	cfg.DLQTopic = "/default/tfs-dlq"
	withTransforms(t, &cfg.Transforms, "only_eu,mask,to",
		"TRANSFORM_ONLY_EU_TYPE=filter", "TRANSFORM_ONLY_EU_EXPR=payload.region.lowerAscii() == 'eu'",
		"TRANSFORM_MASK_FIELDS=email", "TRANSFORM_TO_TYPE=route", "TRANSFORM_TO_EXPR=topic + '-eu'")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 5)}
	r := runtimetest.StartSource(t, cfg, s, true)
	for i, p := range []string{`{"region":"EU","email":"a@b.c"}`, `{"region":"us"}`, `{"region":null}`, `{"region":"eu","email":"d@e.f"}`, `{"region":"us"}`} {
		s.in <- runtime.NewSourceRecord("", []byte(p), i).WithAttribute("n", string(rune('0'+i)))
	}
	eu.WaitFor(t, "the EU records", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	m := dlq.WaitFor(t, "the record the filter failed on", func(ms []*danube.Message) bool { return len(ms) >= 1 })[0]
	if string(m.Payload) != `{"region":null}` || m.Attributes["n"] != "2" || m.Attributes[runtime.AttrOriginalTopic] != "/default/tfs" ||
		!strings.Contains(m.Attributes[runtime.AttrFailureReason], `transform "only_eu" (filter): no such overload`) {
		t.Fatalf("dead letter %q %v", m.Payload, m.Attributes)
	}
	r.WaitMetric(t, `connector_transform_records_total{connector="tfs",result="dropped",step="only_eu",type="filter"}`, 2)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := eu.Payloads(); !slices.Equal(got, []string{`{"region":"EU","email":"****"}`, `{"region":"eu","email":"****"}`}) {
		t.Fatalf("published %q", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acked) != 5 || len(s.commits) == 0 || s.commits[len(s.commits)-1] != 4 {
		t.Fatalf("acked %q, commits %v: want all five handled and position 4 (a dropped record) committed", s.acked, s.commits)
	}
}

// Without DLQ_TOPIC a record a step fails on stops the source, the error naming the step.
func TestSourceTransformFailureStopsWithoutDLQ(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/tfx")
	cfg := runtimetest.SourceConfig(b, "tfx", "/default/tfx")
	withTransforms(t, &cfg.Transforms, "unwrap")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 1)}
	r := runtimetest.StartSource(t, cfg, s, true)
	s.in <- runtime.NewSourceRecord("", []byte(`{"id":1}`), 0)
	err := r.Wait()
	want := `runtime: a record for topic "/default/tfx" (position 0, 8 bytes): transform "unwrap" (unwrap): the payload has no "op" ` +
		`string field: not a change event; set DLQ_TOPIC to dead-letter such records and go on`
	if err == nil || err.Error() != want || !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}
