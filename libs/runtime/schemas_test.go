package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

const (
	rowV1 = `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}`
	rowV2 = `{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"}},"required":["id"]}`
)

func schemaSource(t *testing.T, b runtimetest.Broker, name, topic string) *runtime.SourceConfig {
	t.Helper()
	cfg := runtimetest.SourceConfig(b, name, topic)
	cfg.SchemaType, cfg.SchemaSubject, cfg.SchemaCompatibility, cfg.SchemaValidate = schema.JSONSchema, "{topic}", "keep", true
	return cfg
}

// stamps returns each message's payload with its schema version ("" for none).
func stamps(ms []*danube.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		v := "-"
		if m.SchemaVersion != nil {
			v = string(rune('0' + *m.SchemaVersion))
		}
		out[i] = string(m.Payload) + "@v" + v
	}
	return out
}

// Records bring their schema (a new value when it changes): the runtime registers each under the
// topic's subject and stamps the records with its id and version; a record that does not match
// goes to DLQ_TOPIC with the reason and the stream goes on.
func TestSourceRegistersRecordSchemas(t *testing.T) {
	b := runtimetest.StartBroker(t)
	for _, topic := range []string{"/default/rows", "/default/rows-dlq"} {
		runtimetest.CreateTopic(t, b, topic)
	}
	col := runtimetest.Collect(t, b, "/default/rows", "r")
	dlq := runtimetest.Collect(t, b, "/default/rows-dlq", "r")
	cfg := schemaSource(t, b, "rows", "/default/rows")
	cfg.DLQTopic, cfg.SchemaCompatibility = "/default/rows-dlq", "full"
	s := &streaming{in: make(chan runtime.SourceRecord[int], 4)}
	r := runtimetest.StartSource(t, cfg, s, true)
	v1 := &schema.Schema{Type: schema.JSONSchema, Text: []byte(rowV1)}
	v2 := &schema.Schema{Type: schema.JSONSchema, Text: []byte(rowV2)}
	for i, rec := range []struct {
		payload string
		s       *schema.Schema
	}{{`{"id":1}`, v1}, {`{"id":"two"}`, v1}, {`{"id":3,"name":"c"}`, v2}, {`{"id":4}`, &schema.Schema{Type: schema.JSONSchema, Text: []byte(rowV1)}}} {
		rr := runtime.NewSourceRecord("", []byte(rec.payload), i)
		rr.Schema = rec.s
		s.in <- rr
	}
	got := col.WaitFor(t, "the valid records", func(ms []*danube.Message) bool { return len(ms) >= 3 })
	if want := []string{`{"id":1}@v1`, `{"id":3,"name":"c"}@v2`, `{"id":4}@v1`}; !slices.Equal(stamps(got), want) {
		t.Fatalf("published %q, want %q", stamps(got), want)
	}
	m := dlq.WaitFor(t, "the record that does not match", func(ms []*danube.Message) bool { return len(ms) >= 1 })[0]
	if reason := m.Attributes[runtime.AttrFailureReason]; string(m.Payload) != `{"id":"two"}` ||
		reason != `schema subject "default-rows" version 1: does not match the schema: at /id: got string, want integer` {
		t.Fatalf("dead letter %s, reason %q", m.Payload, reason)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	reg := runtimetest.Client(t, b).SchemaRegistry()
	latest, err := reg.Latest(context.Background(), "default-rows")
	if err != nil || latest.Version != 2 || latest.CompatibilityMode != "full" || latest.CreatedBy != "rows" || *got[0].SchemaID != latest.ID {
		t.Fatalf("registry: %+v, %v", latest, err)
	}
}

// SCHEMA_FILE gives the schema of records that bring none; without it they follow the subject's
// latest version, and a subject nobody registered stops the source with what to do.
func TestSourceSchemaFromFileOrRegistry(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/filed")
	col := runtimetest.Collect(t, b, "/default/filed", "r")
	file := filepath.Join(t.TempDir(), "row.json")
	if err := os.WriteFile(file, []byte(rowV2), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := schemaSource(t, b, "filed", "/default/filed")
	cfg.SchemaFile, cfg.SchemaSubject = file, "{topic}-value"
	s := &streaming{in: make(chan runtime.SourceRecord[int], 1)}
	r := runtimetest.StartSource(t, cfg, s, true)
	s.in <- runtime.NewSourceRecord("", []byte(`{"id":1,"name":"a"}`), 0)
	col.WaitFor(t, "the record", func(ms []*danube.Message) bool { return len(ms) == 1 && *ms[0].SchemaVersion == 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	// Registered by someone else: followed.
	cfg2 := schemaSource(t, b, "reader", "/default/filed")
	cfg2.SchemaSubject = "default-filed-value"
	s2 := &streaming{in: make(chan runtime.SourceRecord[int], 1)}
	r2 := runtimetest.StartSource(t, cfg2, s2, true)
	s2.in <- runtime.NewSourceRecord("", []byte(`{"id":2}`), 0)
	col.WaitFor(t, "the second record", func(ms []*danube.Message) bool { return len(ms) == 2 && *ms[1].SchemaVersion == 1 })
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}

	runtimetest.CreateTopic(t, b, "/default/unregistered")
	cfg3 := schemaSource(t, b, "lost", "/default/unregistered")
	s3 := &streaming{in: make(chan runtime.SourceRecord[int], 1)}
	r3 := runtimetest.StartSource(t, cfg3, s3, true)
	s3.in <- runtime.NewSourceRecord("", []byte(`{"id":3}`), 0)
	err := r3.Wait()
	want := `runtime: SCHEMA_TYPE=json_schema, but subject "default-unregistered" is not registered and neither SCHEMA_FILE ` +
		`nor the connector gives a schema: register it first, or set SCHEMA_FILE`
	if err == nil || err.Error() != want || !errors.Is(err, runtime.ErrFatal) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// A new version the subject's compatibility mode refuses stops the source, naming the subject and
// the way out; nothing of the refused schema is published.
func TestSourceStopsOnIncompatibleSchema(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/evolve")
	col := runtimetest.Collect(t, b, "/default/evolve", "r")
	cfg := schemaSource(t, b, "evolve", "/default/evolve")
	s := &streaming{in: make(chan runtime.SourceRecord[int], 2)}
	r := runtimetest.StartSource(t, cfg, s, true)
	first := runtime.NewSourceRecord("", []byte(`{"id":1}`), 0)
	first.Schema = &schema.Schema{Type: schema.JSONSchema, Text: []byte(rowV1)}
	s.in <- first
	col.WaitFor(t, "the first record", func(ms []*danube.Message) bool { return len(ms) == 1 })
	bad := runtime.NewSourceRecord("", []byte(`{"id":"x"}`), 1)
	bad.Schema = &schema.Schema{Type: schema.JSONSchema, Text: []byte(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id","extra"]}`)}
	s.in <- bad
	err := r.Wait()
	if err == nil || !errors.Is(err, runtime.ErrFatal) || !strings.Contains(err.Error(), `the schema registry refused a new version of subject "default-evolve"`) ||
		!strings.Contains(err.Error(), "SCHEMA_COMPATIBILITY") {
		t.Fatalf("got %v", err)
	}
	if n := len(col.Messages()); n != 1 {
		t.Fatalf("%d messages published, want 1", n)
	}
}

// Bad SCHEMA_* settings are reported at start with the others.
func TestSourceSchemaConfigProblems(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"type":"objekt"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg runtime.SourceConfig
	err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://x:1", "CONNECTOR_NAME=c", "SCHEMA_TYPE=json_schema",
		"SCHEMA_FILE=" + bad, "SCHEMA_COMPATIBILITY=sideways"})
	for _, want := range []string{`SCHEMA_FILE="` + bad + `": invalid JSON Schema`, `SCHEMA_COMPATIBILITY="sideways"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	err = config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://x:1", "CONNECTOR_NAME=c", "SCHEMA_FILE=" + bad})
	if err == nil || !strings.Contains(err.Error(), `SCHEMA_FILE="`+bad+`": set, but SCHEMA_TYPE is none`) {
		t.Errorf("got %v", err)
	}
}

const orderAvro = `{"type":"record","name":"order","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"]},` +
	`{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}]}`

// schemaProducer registers text under subject and returns a producer on topic stamping it.
func schemaProducer(t *testing.T, b runtimetest.Broker, topic, subject string, typ danube.SchemaType, text string) *danube.Producer {
	t.Helper()
	ctx := context.Background()
	cl := runtimetest.Client(t, b)
	if _, err := cl.SchemaRegistry().Register(ctx, subject, typ, []byte(text), nil); err != nil {
		t.Fatal(err)
	}
	p, err := cl.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "p", Schema: &danube.SchemaRef{Subject: subject}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// recordingSchemas records what a sink is handed: payload and schema.
type recordingSchemas struct {
	*scripted
	mu      sync.Mutex
	schemas []string
}

func (r *recordingSchemas) Process(ctx context.Context, rec *runtime.SinkRecord) error {
	if s := rec.Schema(); s != nil {
		r.mu.Lock()
		r.schemas = append(r.schemas, fmt.Sprintf("%s v%d %s", s.Subject, s.Version, s.Type))
		r.mu.Unlock()
	}
	return r.scripted.Process(ctx, rec)
}

// An Avro message reaches the connector as JSON (SCHEMA_DECODE), with its schema; TRANSFORMS see
// the JSON.
func TestSinkDecodesAvro(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/avro")
	p := schemaProducer(t, b, "/default/avro", "orders-avro", danube.SchemaAvro, orderAvro)
	cfg := runtimetest.SinkConfig(b, "avro", "/default/avro")
	cfg.SchemaDecode = true
	withTransforms(t, &cfg.Transforms, "big", "TRANSFORM_BIG_TYPE=filter", "TRANSFORM_BIG_EXPR=payload.amount > 10")
	s := &recordingSchemas{scripted: newScripted(nil)}
	r := runtimetest.StartSink(t, cfg, s)
	as := avro.MustParse(orderAvro)
	for _, o := range []map[string]any{{"id": int64(1), "note": "first", "amount": big.NewRat(12345, 100)}, {"id": int64(2), "note": nil, "amount": big.NewRat(5, 1)}} {
		payload, err := avro.Marshal(as, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Send(context.Background(), danube.ProducerMessage{Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	s.wait(t, 1)
	r.WaitMetric(t, `connector_transform_records_total{connector="avro",result="dropped",step="big",type="filter"}`, 1)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	written, _, _ := s.snapshot()
	if want := []string{`{"amount":123.45,"id":1,"note":"first"}`}; !slices.Equal(written, want) {
		t.Fatalf("written %q, want %q", written, want)
	}
	if want := []string{"orders-avro v1 avro"}; !slices.Equal(s.schemas, want) {
		t.Fatalf("schemas %q, want %q", s.schemas, want)
	}
}

// With SCHEMA_VALIDATE a message that does not match its schema is invalid data: dead-lettered
// with the reason.
func TestSinkValidatesJSON(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/checked")
	p := schemaProducer(t, b, "/default/checked", "checked", danube.SchemaJSON, rowV1)
	cfg := runtimetest.SinkConfig(b, "checked", "/default/checked")
	cfg.SchemaValidate, cfg.DLQTopic = true, "/default/checked-dlq"
	s := newScripted(nil)
	r := runtimetest.StartSink(t, cfg, s)
	dlq := runtimetest.Collect(t, b, cfg.DLQTopic, "dlq-reader")
	for _, m := range []string{`{"id":1}`, `{"id":"x"}`, `{"id":3}`} {
		if _, err := p.Send(context.Background(), danube.ProducerMessage{Payload: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	s.wait(t, 2)
	m := dlq.WaitFor(t, "the invalid message", func(ms []*danube.Message) bool { return len(ms) >= 1 })[0]
	if reason := m.Attributes[runtime.AttrFailureReason]; string(m.Payload) != `{"id":"x"}` ||
		!strings.HasSuffix(reason, `schema subject "checked" version 1: does not match the schema: at /id: got string, want integer`) {
		t.Fatalf("dead letter %s, reason %q", m.Payload, reason)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
