package schema_test

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

func TestValidateJSONSchema(t *testing.T) {
	s := &schema.Schema{Type: schema.JSONSchema, Text: []byte(`{"type":"object","properties":{"id":{"type":"integer"},` +
		`"name":{"type":"string"}},"required":["id"]}`)}
	v, err := s.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for payload, want := range map[string]string{
		`{"id":1,"name":"a"}`:   "",
		`{"id":"x","name":3}`:   "does not match the schema: at /id: got string, want integer; at /name: got number, want string",
		`{"name":"a"}`:          "does not match the schema: at /: missing property 'id'",
		`not json`:              "not JSON: ",
		`{"id":1.5,"name":"a"}`: "at /id: got number, want integer",
	} {
		err := v.Validate([]byte(payload))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", payload, err, want)
		}
	}
}

func TestCompileRefusesBadSchemas(t *testing.T) {
	for _, s := range []*schema.Schema{
		{Type: schema.JSONSchema, Text: []byte(`{"type":"objekt"}`)},
		{Type: schema.JSONSchema, Text: []byte(`{`)},
		{Type: schema.Avro, Text: []byte(`{"type":"record","name":"r","fields":[{"name":"a","type":"nope"}]}`)},
		{Type: schema.None},
	} {
		if _, err := s.Compile(); err == nil {
			t.Errorf("%s %s compiled", s.Type, s.Text)
		}
	}
}

// An Avro payload is checked by decoding it, and written as JSON with exact decimals and RFC 3339
// timestamps.
func TestAvro(t *testing.T) {
	text := `{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"]},` +
		`{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},` +
		`{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":3}},` +
		`{"name":"opens","type":{"type":"int","logicalType":"time-millis"}},` +
		`{"name":"item","type":["null",{"type":"record","name":"Item","fields":[{"name":"sku","type":["null","string"]},` +
		`{"name":"tags","type":["null",{"type":"array","items":["null","string"]}]}]}]}]}`
	v, err := (&schema.Schema{Type: schema.Avro, Text: []byte(text)}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := avro.Marshal(v.Avro(), map[string]any{"id": int64(7), "note": nil,
		"at": time.UnixMilli(1700000000123).UTC(), "amount": big.NewRat(-1234567, 1000),
		"opens": 8*time.Hour + 30*time.Minute + 1500*time.Millisecond,
		"item":  map[string]any{"Item": map[string]any{"sku": map[string]any{"string": "A-1"}, "tags": map[string]any{"array": []any{"x", nil}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(payload); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{{0xff}, payload[:len(payload)-1], append(payload, 0)} {
		if err := v.Validate(bad); err == nil || !strings.HasPrefix(err.Error(), "not Avro of the schema") {
			t.Fatalf("%x: %v", bad, err)
		}
	}
	j, err := v.AvroToJSON(payload)
	if want := `{"amount":-1234.567,"at":"2023-11-14T22:13:20.123Z","id":7,"item":{"sku":"A-1","tags":["x",null]},"note":null,"opens":"08:30:01.5"}`; err != nil || string(j) != want {
		t.Fatalf("JSON %s, %v; want %s", j, err, want)
	}
}

func TestTypeNames(t *testing.T) {
	var typ schema.Type
	if err := typ.UnmarshalText([]byte("avro")); err != nil || typ != schema.Avro || typ.Danube() != "avro" {
		t.Fatalf("avro: %v %v", typ, err)
	}
	if err := typ.UnmarshalText([]byte("protobuf")); err == nil {
		t.Fatal("protobuf accepted")
	}
}
