package runtime_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// With DLQ_TOPIC, a record Danube can never accept (here over its size limit) goes there as a
// small descriptor naming its origin, it counts as handled (acked, committed) and the stream goes on.
func TestSourceDeadLettersRefusedRecord(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/big")
	runtimetest.CreateTopic(t, b, "/default/big-dlq")
	col := runtimetest.Collect(t, b, "/default/big", "r")
	dlq := runtimetest.Collect(t, b, "/default/big-dlq", "r")
	cfg := runtimetest.SourceConfig(b, "big", "/default/big")
	cfg.DLQTopic = "/default/big-dlq"
	s := &streaming{in: make(chan runtime.SourceRecord[int], 3)}
	r := runtimetest.StartSource(t, cfg, s, true)

	big := runtime.NewSourceRecord("", []byte(strings.Repeat("x", danube.MaxMessageSize)), 1).WithKey("id=7").
		WithAttribute("table", "public.docs")
	big.Origin = func() string { return "table public.docs, key id=7, LSN 0/16B3748" }
	s.in <- runtime.NewSourceRecord("", []byte("before"), 0)
	s.in <- big
	s.in <- runtime.NewSourceRecord("", []byte("after"), 2)

	col.WaitFor(t, "both small records", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	m := dlq.WaitFor(t, "the descriptor", func(ms []*danube.Message) bool { return len(ms) >= 1 })[0]
	var d struct {
		Reason, Topic, Key, Origin, Position, Connector string
		Size                                            int
		Attributes                                      map[string]string
		PayloadHead                                     []byte `json:"payload_head"`
	}
	if err := json.Unmarshal(m.Payload, &d); err != nil {
		t.Fatalf("descriptor %q: %v", m.Payload, err)
	}
	if d.Topic != "/default/big" || d.Key != "id=7" || d.Size != danube.MaxMessageSize || d.Position != "1" ||
		d.Origin != "table public.docs, key id=7, LSN 0/16B3748" || d.Connector != "big" ||
		d.Attributes["table"] != "public.docs" || len(d.PayloadHead) != 1024 ||
		!strings.Contains(d.Reason, "over the broker's 4194304-byte limit") {
		t.Fatalf("descriptor %+v", d)
	}
	if m.Attributes[runtime.AttrOriginalTopic] != "/default/big" || !strings.Contains(m.Attributes[runtime.AttrFailureReason], "limit") {
		t.Fatalf("descriptor attributes %v", m.Attributes)
	}
	if got := col.Payloads(); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("topic got %q", got)
	}
	r.WaitMetric(t, `connector_records_dead_lettered_total{connector="big"}`, 1)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acked) != 3 || len(s.commits) == 0 || s.commits[len(s.commits)-1] != 2 {
		t.Fatalf("acked %q, commits %v: want all three acked and position 2 committed", s.acked, s.commits)
	}
}

// Without DLQ_TOPIC a record over the broker's size limit (never sent: it cannot be accepted) stops
// the source at once, and the error names it by its origin.
func TestSourceRefusedRecordNamesItsOrigin(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/big")
	cfg := runtimetest.SourceConfig(b, "big", "/default/big")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 1)}
	r := runtimetest.StartSource(t, cfg, s, true)
	big := runtime.NewSourceRecord("", make([]byte, danube.MaxMessageSize+1), 0)
	big.Origin = func() string { return "MQTT topic plant/1/image from client cam-1" }
	s.in <- big
	err := r.Wait()
	want := `runtime: Danube refused a record for topic "/default/big" for good (MQTT topic plant/1/image from client cam-1, 4194305 bytes): ` +
		`the record is 4194817 bytes with its attributes, over the broker's 4194304-byte limit; set DLQ_TOPIC to dead-letter such records and go on`
	if err == nil || err.Error() != want || !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// A record the connector marks invalid is dead-lettered as it is with the connector's reason, and
// the stream goes on past it.
func TestSourceDeadLettersInvalidRecord(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/inv")
	runtimetest.CreateTopic(t, b, "/default/inv-dlq")
	col := runtimetest.Collect(t, b, "/default/inv", "r")
	dlq := runtimetest.Collect(t, b, "/default/inv-dlq", "r")
	cfg := runtimetest.SourceConfig(b, "inv", "/default/inv")
	cfg.DLQTopic = "/default/inv-dlq"
	s := &streaming{in: make(chan runtime.SourceRecord[int], 3)}
	r := runtimetest.StartSource(t, cfg, s, true)
	bad := runtime.NewSourceRecord("", []byte("row 1"), 1)
	bad.Invalid = errors.New("column grid: a 2-D array has no Avro form")
	s.in <- runtime.NewSourceRecord("", []byte("row 0"), 0)
	s.in <- bad
	s.in <- runtime.NewSourceRecord("", []byte("row 2"), 2)
	col.WaitFor(t, "the valid records", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	m := dlq.WaitFor(t, "the invalid record", func(ms []*danube.Message) bool { return len(ms) >= 1 })[0]
	if string(m.Payload) != "row 1" || m.Attributes[runtime.AttrFailureReason] != "column grid: a 2-D array has no Avro form" {
		t.Fatalf("dead letter %q %v", m.Payload, m.Attributes)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := col.Payloads(); !slices.Equal(got, []string{"row 0", "row 2"}) {
		t.Fatalf("published %q", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commits[len(s.commits)-1] != 2 {
		t.Fatalf("commits %v", s.commits)
	}
}
