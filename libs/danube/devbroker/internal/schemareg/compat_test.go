package schemareg

import (
	"reflect"
	"testing"
	"time"
)

func TestJSONSchemaCompatibility(t *testing.T) {
	const (
		name        = `{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`
		nameEmail   = `{"type":"object","properties":{"name":{"type":"string"},"email":{"type":"string"}},"required":["name"]}`
		nameAgeReq  = `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}`
		nameAgeOpt  = `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name"]}`
		nameEmailRq = `{"type":"object","properties":{"name":{"type":"string"},"email":{"type":"string"}},"required":["name","email"]}`
		idString    = `{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`
		idInteger   = `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}`
	)
	tests := []struct {
		name     string
		mode     string
		old, new string
		want     []string
	}{
		{"none allows anything", "none", name, idInteger, nil},
		{"backward: add optional field", "backward", name, nameEmail, nil},
		{"backward: remove required field", "backward", nameAgeReq, name, []string{"Backward incompatible: removed required field 'age'"}},
		{"backward: optional becomes required", "backward", nameAgeOpt, nameAgeReq, []string{"Backward incompatible: made optional field 'age' required"}},
		{"backward: type change", "backward", idString, idInteger, []string{"Backward incompatible: changed type of field 'id'"}},
		{"forward: remove optional field", "forward", nameEmail, name, nil},
		{"forward: add required field", "forward", name, nameEmailRq, []string{"Forward incompatible: added new required field 'email'"}},
		{"full: add optional field", "full", nameAgeReq, `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"d":{"type":"string"}},"required":["name","age"]}`, nil},
		{"full: remove required field", "full", nameAgeReq, name, []string{"Backward incompatible: removed required field 'age'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compatible("json_schema", "json_schema", tc.mode, []byte(tc.old), []byte(tc.new))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAvroCompatibility(t *testing.T) {
	const (
		v1         = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"}]}`
		v2Default  = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}`
		v2Nullable = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":["null","int"]}]}`
		v2Required = `{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}`
		renamed    = `{"type":"record","name":"Person","fields":[{"name":"name","type":"string"}]}`
	)
	tests := []struct {
		name     string
		mode     string
		old, new string
		want     []string
	}{
		{"backward: field with default", "backward", v1, v2Default, nil},
		{"backward: nullable union field", "backward", v1, v2Nullable, nil},
		{"backward: field without default", "backward", v1, v2Required, []string{"Reader schema cannot read data written with writer schema"}},
		{"backward: removing a field is fine", "backward", v2Required, v1, nil},
		{"forward: adding a field is fine", "forward", v1, v2Required, nil},
		{"forward: removing a field without default", "forward", v2Required, v1, []string{"Old schema cannot read data written with new schema"}},
		{"full: record renamed", "full", v1, renamed, []string{"Reader schema cannot read data written with writer schema"}},
		{"backward: int promoted to long", "backward", `"int"`, `"long"`, nil},
		{"backward: long narrowed to int", "backward", `"long"`, `"int"`, []string{"Reader schema cannot read data written with writer schema"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compatible("avro", "avro", tc.mode, []byte(tc.old), []byte(tc.new))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r := New()
	now := time.Unix(1700000000, 0)
	s, v, isNew, err := r.Register("users", "json", []byte(`{"b":1, "a":"<x>"}`), "d", "me", nil, now)
	if err != nil || !isNew || s.ID != 1 || v.Version != 1 || v.Type != "json_schema" || v.CreatedAt != 1700000000 {
		t.Fatalf("register: %+v %+v %v %v", s, v, isNew, err)
	}
	// Key order and whitespace do not change the fingerprint.
	_, v2, isNew, err := r.Register("users", "json_schema", []byte(`{"a":"<x>","b":1}`), "", "", nil, now)
	if err != nil || isNew || v2 != v {
		t.Fatalf("re-register: %+v %v %v", v2, isNew, err)
	}
	if _, _, _, err := r.Register("users", "avro", []byte(`"string"`), "", "", nil, now); err == nil ||
		err.Error() != "Schema is not compatible with subject 'users' (mode: Backward): Schema types must match (cannot change from Avro to JSON, etc.)" {
		t.Fatalf("type change error = %v", err)
	}
	if _, _, _, err := r.Register("x", "xml", nil, "", "", nil, now); err == nil || err.Error() != "Unknown schema type: xml" {
		t.Fatalf("unknown type error = %v", err)
	}
	s2, _, _, _ := r.Register("other", "string", nil, "", "", nil, now)
	if s2.ID != 2 || r.ByID(2) != s2 || r.Subject("other") != s2 {
		t.Fatalf("second subject %+v", s2)
	}
	if got := string(Envelope(s2.Latest())); got != `"String"` {
		t.Fatalf("envelope %s", got)
	}
	if got := string(Envelope(v)); got != `{"JsonSchema":{"raw_schema":"{\"b\":1, \"a\":\"<x>\"}","fingerprint":"`+v.Fingerprint+`"}}` {
		t.Fatalf("envelope %s", got)
	}
}
