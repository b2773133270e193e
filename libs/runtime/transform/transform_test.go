package transform_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// sourceChain loads TRANSFORMS and its step variables as a source's config would.
func sourceChain(t testing.TB, environ ...string) *transform.Chain {
	t.Helper()
	var cfg struct {
		Steps transform.SourceSteps `env:"TRANSFORMS"`
	}
	if err := config.Load(&cfg, environ); err != nil {
		t.Fatal(err)
	}
	return cfg.Steps.Chain()
}

func sinkChain(t testing.TB, environ ...string) *transform.Chain {
	t.Helper()
	var cfg struct {
		Steps transform.SinkSteps `env:"TRANSFORMS"`
	}
	if err := config.Load(&cfg, environ); err != nil {
		t.Fatal(err)
	}
	return cfg.Steps.Chain()
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("payload %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
}

func TestSteps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		in      string
		want    string // "" with drop: dropped
		drop    bool
	}{
		{"drop", []string{"TRANSFORMS=drop", "TRANSFORM_DROP_FIELDS=b,c.d,missing,items.secret"},
			`{"a":1,"b":2,"c":{"d":3,"e":4},"items":[{"secret":1,"x":1},{"x":2}]}`,
			`{"a":1,"c":{"e":4},"items":[{"x":1},{"x":2}]}`, false},
		{"keep", []string{"TRANSFORMS=keep", "TRANSFORM_KEEP_FIELDS=a,c.e,missing"},
			`{"a":1,"b":2,"c":{"d":3,"e":4}}`, `{"a":1,"c":{"e":4}}`, false},
		{"rename", []string{"TRANSFORMS=rename", "TRANSFORM_RENAME_FIELDS=a:x,c.d:y,missing:z"},
			`{"a":1,"c":{"d":3}}`, `{"x":1,"c":{"y":3}}`, false},
		{"redact", []string{"TRANSFORMS=mask", "TRANSFORM_MASK_FIELDS=email,phone,none"},
			`{"email":"a@b.c","phone":5551234,"none":null}`, `{"email":"****","phone":"****","none":null}`, false},
		{"insert", []string{"TRANSFORMS=insert", "TRANSFORM_INSERT_STATIC=env:prod,region:eu",
			"TRANSFORM_INSERT_EXPR={'danube_topic': topic, 'n': payload.a + 1}"},
			`{"a":1}`, `{"a":1,"env":"prod","region":"eu","danube_topic":"/ns/t","n":2}`, false},
		{"flatten", []string{"TRANSFORMS=flatten", "TRANSFORM_FLATTEN_DELIMITER=_"},
			`{"a":{"b":{"c":1},"d":[1,{"e":2}]},"f":{}}`, `{"a_b_c":1,"a_d":[1,{"e":2}],"f":{}}`, false},
		{"filter keeps", []string{"TRANSFORMS=eu", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region == 'eu'"},
			`{"region":"eu"}`, `{"region":"eu"}`, false},
		{"filter drops", []string{"TRANSFORMS=eu", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region == 'eu'"},
			`{"region":"us"}`, "", true},
		{"map", []string{"TRANSFORMS=map", "TRANSFORM_MAP_EXPR={'id': payload.id, 'total': double(payload.qty) * double(payload.price), 'tags': payload.tags.filter(t, t != 'x')}"},
			`{"id":7,"qty":3,"price":2.5,"tags":["a","x","b"]}`, `{"id":7,"total":7.5,"tags":["a","b"]}`, false},
		{"bigint stays exact", []string{"TRANSFORMS=map", "TRANSFORM_MAP_EXPR={'id': payload.id, 'next': payload.id + 1}"},
			`{"id":9007199254740993}`, `{"id":9007199254740993,"next":9007199254740994}`, false},
		{"unwrap insert", []string{"TRANSFORMS=unwrap", "TRANSFORM_UNWRAP_OP_FIELD=__op", "TRANSFORM_UNWRAP_ADD_FIELDS=source.lsn,table:tbl"},
			`{"op":"INSERT","table":"orders","before":null,"after":{"id":1},"source":{"lsn":"0/16B3748"}}`,
			`{"id":1,"__op":"INSERT","__lsn":"0/16B3748","tbl":"orders"}`, false},
		{"unwrap debezium update", []string{"TRANSFORMS=unwrap"},
			`{"op":"u","before":{"id":1,"v":1},"after":{"id":1,"v":2}}`, `{"id":1,"v":2}`, false},
		{"unwrap drops deletes", []string{"TRANSFORMS=unwrap"},
			`{"op":"DELETE","before":{"id":1},"after":null}`, "", true},
		{"unwrap rewrites deletes", []string{"TRANSFORMS=unwrap", "TRANSFORM_UNWRAP_DELETES=rewrite"},
			`{"op":"DELETE","before":{"id":1},"after":null}`, `{"id":1,"__deleted":true}`, false},
		{"unwrap rewrite marks rows", []string{"TRANSFORMS=unwrap", "TRANSFORM_UNWRAP_DELETES=rewrite"},
			`{"op":"READ","after":{"id":1}}`, `{"id":1,"__deleted":false}`, false},
		{"unwrap drops markers", []string{"TRANSFORMS=unwrap"}, `{"op":"COMMIT","source":{"lsn":"0/1"}}`, "", true},
		{"unwrap drops truncate", []string{"TRANSFORMS=unwrap"}, `{"op":"TRUNCATE","table":"t","before":null,"after":null}`, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sourceChain(t, tc.environ...)
			r := transform.Record{Payload: []byte(tc.in), Topic: "/ns/t"}
			keep, err := c.Apply(&r)
			if err != nil {
				t.Fatal(err)
			}
			if keep == tc.drop {
				t.Fatalf("keep %v, want %v", keep, !tc.drop)
			}
			if keep {
				jsonEqual(t, r.Payload, tc.want)
			}
		})
	}
}

// A changed payload keeps its fields' order and its numbers' text; a hashed number hashes as its
// text.
func TestShapeKept(t *testing.T) {
	key := "0123456789abcdef"
	c := sourceChain(t, "TRANSFORMS=drop,mask,insert", "TRANSFORM_DROP_FIELDS=b", "TRANSFORM_MASK_FIELDS=n",
		"TRANSFORM_MASK_MODE=hash", "TRANSFORM_MASK_HASH_KEY="+key, "TRANSFORM_INSERT_STATIC=z:1,a:2")
	r := transform.Record{Payload: []byte(`{"z0":1.50,"b":2,"big":123456789012345678901234567890,"n":7e0,"s":"<a&b>"}`)}
	if keep, err := c.Apply(&r); err != nil || !keep {
		t.Fatal(keep, err)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("7e0"))
	want := `{"z0":1.50,"big":123456789012345678901234567890,"n":"` + hex.EncodeToString(mac.Sum(nil)) + `","s":"<a&b>","z":"1","a":"2"}`
	if string(r.Payload) != want {
		t.Fatalf("payload\n got %s\nwant %s", r.Payload, want)
	}
}

// A step that fails on a record names itself and the reason; as the first step, it leaves the
// record as it was.
func TestStepFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		in      string
		want    string
	}{
		{"malformed JSON", []string{"TRANSFORMS=drop", "TRANSFORM_DROP_FIELDS=a"}, `{"a":1`,
			`transform "drop" (drop): the payload is not JSON: cannot parse object: unexpected end of object`},
		{"trailing data", []string{"TRANSFORMS=drop", "TRANSFORM_DROP_FIELDS=a"}, `{"a":1} x`,
			`transform "drop" (drop): the payload is not JSON: unexpected tail: "x"`},
		{"not an object", []string{"TRANSFORMS=mask", "TRANSFORM_MASK_FIELDS=a"}, `[1,2]`,
			`transform "mask" (mask): the payload is an array, not a JSON object`},
		{"non-JSON to a field step", []string{"TRANSFORMS=unwrap"}, "plain text",
			`transform "unwrap" (unwrap): the payload is not JSON: cannot parse number: unexpected char: "p"`},
		{"missing field in an expression", []string{"TRANSFORMS=eu", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region == 'eu'"},
			`{"id":1}`, `transform "eu" (filter): no such key: region`},
		{"type error", []string{"TRANSFORMS=eu", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region.startsWith('e')"},
			`{"region":null}`, `transform "eu" (filter): no such overload`},
		{"dyn result of the wrong type", []string{"TRANSFORMS=eu", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region"},
			`{"region":"eu"}`, `transform "eu" (filter): the expression gave a value of type string, want a bool`},
		{"route to an invalid topic", []string{"TRANSFORMS=route", "TRANSFORM_ROUTE_EXPR='/orders/' + payload.kind"},
			`{"kind":"a b"}`, `transform "route" (route): topic "/orders/a b"`},
		{"not a change event", []string{"TRANSFORMS=unwrap"}, `{"id":1}`,
			`transform "unwrap" (unwrap): the payload has no "op" string field: not a change event`},
		{"NaN has no JSON", []string{"TRANSFORMS=map", "TRANSFORM_MAP_EXPR={'x': 0.0 / 0.0}"}, `{}`,
			`transform "map" (map): x: NaN has no JSON form`},
		{"unwrap delete without before", []string{"TRANSFORMS=unwrap", "TRANSFORM_UNWRAP_DELETES=rewrite"},
			`{"op":"DELETE","before":null}`, `DELETE event without a "before" object`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sourceChain(t, tc.environ...)
			r := transform.Record{Payload: []byte(tc.in), Topic: "/ns/t", Attributes: map[string]string{"a": "1"}}
			before := r
			keep, err := c.Apply(&r)
			var se *transform.StepError
			if keep || !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("keep %v, err %v; want a StepError containing %q", keep, err, tc.want)
			}
			if !reflect.DeepEqual(r, before) {
				t.Fatalf("the failed record changed: %+v", r)
			}
		})
	}
}

// A record a later step fails on is left as the steps before it made it: a masked field stays
// masked in the dead letter.
func TestFailedRecordKeepsEarlierSteps(t *testing.T) {
	c := sourceChain(t, "TRANSFORMS=mask,eu", "TRANSFORM_MASK_FIELDS=email", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region == 'eu'")
	r := transform.Record{Payload: []byte(`{"email":"a@b.c"}`)}
	if keep, err := c.Apply(&r); keep || err == nil || !strings.Contains(err.Error(), `transform "eu" (filter): no such key: region`) {
		t.Fatalf("keep %v, err %v", keep, err)
	}
	jsonEqual(t, r.Payload, `{"email":"****"}`)
}

// An expression that fails on one record only fails that record: the chain goes on with the next.
func TestExpressionFailsOnOneRecordOnly(t *testing.T) {
	c := sourceChain(t, "TRANSFORMS=eu", "TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=payload.region.lowerAscii() == 'eu'")
	var kept, dropped, failed int
	for _, p := range []string{`{"region":"EU"}`, `{"region":null}`, `{"region":"us"}`, `{"region":"eu"}`, `not json`} {
		r := transform.Record{Payload: []byte(p)}
		switch keep, err := c.Apply(&r); {
		case err != nil:
			failed++
		case keep:
			kept++
		default:
			dropped++
		}
	}
	if kept != 2 || dropped != 1 || failed != 2 {
		t.Fatalf("kept %d, dropped %d, failed %d; want 2, 1, 2", kept, dropped, failed)
	}
	st := c.Stats()[0]
	if st.Step != "eu" || st.Type != "filter" || st.In != 5 || st.Out != 2 || st.Dropped != 1 || st.Failed != 2 || st.Time <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The chain runs in order: unwrap, then mask, then a filter that sees the masked row, then
// attributes and key from it.
func TestChainInOrder(t *testing.T) {
	key := "0123456789abcdef-key"
	c := sourceChain(t, "TRANSFORMS=unwrap,mask_pii,only_eu,tag,by_customer",
		"TRANSFORM_MASK_PII_TYPE=mask", "TRANSFORM_MASK_PII_FIELDS=email", "TRANSFORM_MASK_PII_MODE=hash", "TRANSFORM_MASK_PII_HASH_KEY="+key,
		"TRANSFORM_ONLY_EU_TYPE=filter", "TRANSFORM_ONLY_EU_EXPR=payload.region == 'eu' && payload.email != 'a@b.c'",
		"TRANSFORM_TAG_TYPE=attributes", "TRANSFORM_TAG_EXPR={'region': payload.region, 'id': payload.id, 'op': null}",
		"TRANSFORM_BY_CUSTOMER_TYPE=key", "TRANSFORM_BY_CUSTOMER_EXPR=string(payload.customer)")
	shared := map[string]string{"table": "public.orders", "op": "INSERT"}
	r := transform.Record{Topic: "/cdc/orders", Attributes: shared, Key: "7",
		Payload: []byte(`{"op":"INSERT","after":{"id":7,"customer":42,"email":"a@b.c","region":"eu"},"source":{"lsn":"0/1"}}`)}
	keep, err := c.Apply(&r)
	if err != nil || !keep {
		t.Fatalf("keep %v, err %v", keep, err)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("a@b.c"))
	jsonEqual(t, r.Payload, `{"id":7,"customer":42,"email":"`+hex.EncodeToString(mac.Sum(nil))+`","region":"eu"}`)
	if want := map[string]string{"table": "public.orders", "region": "eu", "id": "7"}; !maps.Equal(r.Attributes, want) {
		t.Fatalf("attributes %v, want %v", r.Attributes, want)
	}
	if shared["op"] != "INSERT" || len(shared) != 2 {
		t.Fatalf("the record's shared attribute map was written into: %v", shared)
	}
	if r.Key != "42" {
		t.Fatalf("key %q", r.Key)
	}
}

// A sink's expressions see the Danube message; non-JSON payloads are bytes.
func TestSinkVariables(t *testing.T) {
	c := sinkChain(t, "TRANSFORMS=meta,body", "TRANSFORM_META_TYPE=insert",
		"TRANSFORM_META_EXPR={'offset': offset, 'published': publish_time, 'id': message_id, 'key': key}",
		"TRANSFORM_BODY_TYPE=map", "TRANSFORM_BODY_EXPR=payload")
	m := &danube.Message{Topic: "/ns/t-part-0", Offset: 42, ProducerID: 3, Key: "k", PublishTime: time.UnixMilli(1700000000123).UTC(),
		Payload: []byte(`{"a":1}`)}
	r := transform.Record{Payload: m.Payload, Topic: m.Topic, Key: m.Key, Message: m}
	if keep, err := c.Apply(&r); err != nil || !keep {
		t.Fatalf("keep %v, err %v", keep, err)
	}
	jsonEqual(t, r.Payload, `{"a":1,"offset":42,"published":"2023-11-14T22:13:20.123Z","id":"`+m.ID()+`","key":"k"}`)

	bytesMap := sinkChain(t, "TRANSFORMS=map", "TRANSFORM_MAP_EXPR=type(payload) == bytes ? b'raw:' + payload : b'json'")
	r = transform.Record{Payload: []byte{0xff, 0x00}}
	if keep, err := bytesMap.Apply(&r); err != nil || !keep || string(r.Payload) != "raw:\xff\x00" {
		t.Fatalf("keep %v, err %v, payload %q", keep, err, r.Payload)
	}
}

// A tombstone (an empty payload) passes field steps unchanged.
func TestTombstonePassesFieldSteps(t *testing.T) {
	c := sourceChain(t, "TRANSFORMS=unwrap,mask", "TRANSFORM_UNWRAP_DELETES=tombstone", "TRANSFORM_MASK_FIELDS=email")
	r := transform.Record{Key: "7", Payload: []byte(`{"op":"DELETE","before":{"id":7,"email":"x"}}`)}
	keep, err := c.Apply(&r)
	if err != nil || !keep || len(r.Payload) != 0 || r.Key != "7" || r.Attributes["op"] != "DELETE" {
		t.Fatalf("keep %v, err %v, record %+v", keep, err, r)
	}
}

// Bad configuration is reported at load, every problem at once, each naming the variable, the
// value and the reason; a CEL error carries the position.
func TestConfigProblems(t *testing.T) {
	var cfg struct {
		Steps transform.SinkSteps `env:"TRANSFORMS"`
	}
	err := config.Load(&cfg, []string{
		"TRANSFORMS=eu,mystery,mask,route,keep,ins,unwrap,mask_x",
		"TRANSFORM_EU_TYPE=filter", "TRANSFORM_EU_EXPR=paylod.region == 'eu'", "TRANSFORM_EU_EXPRR=1",
		"TRANSFORM_MASK_FIELDS=a..b", "TRANSFORM_MASK_MODE=hash", "TRANSFORM_MASK_HASH_KEY=short",
		"TRANSFORM_ROUTE_EXPR='/a/b'",
		"TRANSFORM_INS_TYPE=insert", "TRANSFORM_INS_EXPR=1 + 1",
		"TRANSFORM_UNWRAP_DELETES=purge",
		"TRANSFORM_MASK_X_TYPE=mask", "TRANSFORM_MASK_X_FIELDS=a",
	})
	want := []string{
		`TRANSFORM_EU_EXPRR: not a variable of a filter step (it has TYPE, EXPR); did you mean TRANSFORM_EU_EXPR?`,
		`TRANSFORM_EU_EXPR="paylod.region == 'eu'": <input>:1:1: undeclared reference to 'paylod'`,
		`TRANSFORM_MYSTERY_TYPE: required: step mystery is not a type's name; want one of filter, map`,
		`TRANSFORM_MASK_FIELDS="a..b": want a field name or a dotted path`,
		`TRANSFORM_MASK_HASH_KEY="[REDACTED]": MODE=hash needs a key of at least 16 bytes`,
		`TRANSFORM_ROUTE_TYPE="route": route sets a source's destination topic`,
		`TRANSFORM_KEEP_FIELDS: required, but not set`,
		`TRANSFORM_INS_EXPR="1 + 1": the expression is of type int, want map(string, dyn)`,
		`TRANSFORM_UNWRAP_DELETES="purge"`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), "MASK_X") {
		t.Errorf("a secret leaked or a valid step was reported:\n%v", err)
	}
}

func TestStepNames(t *testing.T) {
	var s transform.SourceSteps
	for in, want := range map[string]string{
		"A, b ,,c_1": "", "a,a": `step "a" is listed twice`, "1a": `step name "1a"`, "a-b": `step name "a-b"`,
	} {
		err := s.UnmarshalText([]byte(in))
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	_ = s.UnmarshalText([]byte("A, b ,,c_1"))
	if s.String() != "a,b,c_1" {
		t.Fatalf("names %q", s.String())
	}
}

// Print and the startup log list the step variables, secrets redacted; --help documents them.
func TestExpandedAndUsage(t *testing.T) {
	var cfg struct {
		Steps transform.SourceSteps `env:"TRANSFORMS"`
	}
	if err := config.Load(&cfg, []string{"TRANSFORMS=mask", "TRANSFORM_MASK_FIELDS=a", "TRANSFORM_MASK_MODE=hash",
		"TRANSFORM_MASK_HASH_KEY=0123456789abcdefXYZ"}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := config.Print(&out, &cfg); err != nil {
		t.Fatal(err)
	}
	want := "TRANSFORMS=mask\nTRANSFORM_MASK_FIELDS=a\nTRANSFORM_MASK_HASH_KEY=[REDACTED]\nTRANSFORM_MASK_MODE=hash\n"
	if out.String() != want {
		t.Fatalf("print\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := config.Usage(&out, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"TRANSFORM_<NAME>_<VARIABLE>", "EXPR", "HASH_KEY", "DELETES", "unwrap"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage lacks %q:\n%s", w, out.String())
		}
	}
}

// A step variable of no listed step is a startup warning: a mask forgotten in TRANSFORMS must not
// go unnoticed.
func TestUnlistedStepWarned(t *testing.T) {
	var cfg struct {
		Steps transform.SourceSteps `env:"TRANSFORMS"`
	}
	environ := []string{"TRANSFORMS=drop", "TRANSFORM_DROP_FIELDS=a", "TRANSFORM_MASK_FIELDS=email"}
	if err := config.Load(&cfg, environ); err != nil {
		t.Fatal(err)
	}
	w := config.Warnings(&cfg, environ)
	want := "TRANSFORM_MASK_FIELDS is set, but no step it configures is listed in TRANSFORMS (drop): it is ignored"
	if len(w) != 1 || w[0] != want {
		t.Fatalf("warnings %q, want %q", w, want)
	}
}
