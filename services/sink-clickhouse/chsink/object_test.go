package chsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// objectSeeds are payloads at the edges of the JSON grammar.
var objectSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":1,"b":"x"}`, "\t{\"a\" : [1, 2, {\"b\": null}] ,\n\"c\":true}\r\n",
	`{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":1E-2}`, `{"a":-0}`,
	`{"a":"\u00e9\n\"\\\/"}`, `{"a":"\u00g9"}`, `{"a":"\x"}`, "{\"a\":\"tab\there\"}", `{"a":"é"}`,
	`{"a\"b":1}`, `{"\u0061":2}`, `{"a":tru}`, `{"a":true1}`, `{"a":nul}`, `{"a":falsey}`,
	`{"a":1,}`, `{,"a":1}`, `{"a"1}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b"}}`, `{"a":{}}`,
	`{"a":[]}`, `{"a":[[[]]]}`, `{"a":1}}`, `{"a":1} x`, `{"a":1}{}`, `{"a":"unterminated}`, `{"a":1`, `{`,
	`[]`, `"s"`, `1`, `null`, ``, ` `, `{"a":"\ud83d\ude00"}`, `{"a":[1,2,3],"a":4}`,
	"{\"\xdc\":0}", "{\"a\":\"\xff\"}",
	`{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`,
}

// TestScanObjectMatchesEncodingJSON: the one-pass scanner accepts exactly what json.Valid accepts
// as an object, and finds the same fields as encoding/json.
func TestScanObjectMatchesEncodingJSON(t *testing.T) {
	for _, s := range objectSeeds {
		checkScan(t, []byte(s))
	}
}

func FuzzScanObject(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScan)
}

func checkScan(t *testing.T, b []byte) {
	fields, ok := scanObject(nil, b)
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	want := json.Valid(b) && len(trimmed) > 0 && trimmed[0] == '{'
	if ok != want {
		t.Fatalf("scanObject(%q) ok = %v, json.Valid says %v", b, ok, want)
	}
	if !ok {
		if err := eachField(b, func(_, _ []byte) error { t.Fatalf("fn called for %q", b); return nil }); !errors.Is(err, errNotObject) {
			t.Fatalf("eachField(%q) = %v, want errNotObject", b, err)
		}
		return
	}
	if !utf8.Valid(b) {
		return // encoding/json replaces invalid UTF-8 in names, which then match no column anyway
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	last := map[string][]byte{} // encoding/json keeps the last of repeated names
	for _, f := range fields {
		last[string(f.name)] = f.raw
	}
	if len(last) != len(m) {
		t.Fatalf("%q: fields %d, encoding/json %d", b, len(last), len(m))
	}
	for name, raw := range m {
		if got, ok := last[name]; !ok || !bytes.Equal(got, raw) {
			t.Fatalf("%q: field %q = %q, encoding/json %q", b, name, got, raw)
		}
	}
}

// TestEachFieldTooDeep: nesting past encoding/json's limit is refused, not a stack overflow.
func TestEachFieldTooDeep(t *testing.T) {
	deep := `{"a":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`
	if err := eachField([]byte(deep), func(_, _ []byte) error { return nil }); !errors.Is(err, errNotObject) {
		t.Fatalf("eachField(%d levels) = %v, want errNotObject", maxDepth+1, err)
	}
}

// TestScanStringEveryPosition: a byte that ends, escapes or invalidates a string is found at every
// position of a long string (scanString skips eight plain bytes at a time), beside plain ASCII and
// multi-byte UTF-8.
func TestScanStringEveryPosition(t *testing.T) {
	specials := []string{`"`, `\n`, `\u00e9`, `\`, "\x00", "\x1f", "\x7f", "\xff", "é", " "}
	for c := byte(0); c < 0x20; c++ {
		specials = append(specials, string([]byte{c}))
	}
	for _, plain := range []string{"x", "é"} {
		for _, sp := range specials {
			for p := range 20 {
				s := strings.Repeat(plain, p) + sp + strings.Repeat(plain, 19-p)
				checkScan(t, []byte(`{"a":"`+s+`","b`+s+`":1}`))
			}
		}
	}
}
