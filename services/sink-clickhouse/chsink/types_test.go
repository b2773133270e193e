package chsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// records wraps payloads as the runtime hands them over: one partition, consecutive offsets.
func records(partition string, first uint64, payloads ...string) []*runtime.SinkRecord {
	out := make([]*runtime.SinkRecord, len(payloads))
	for i, p := range payloads {
		out[i] = runtime.NewSinkRecord(&danube.Message{Topic: partition, Offset: first + uint64(i), ProducerID: 1, Payload: []byte(p)})
	}
	return out
}

// typeCase is one column: its type, the JSON value sent, and toString of what was stored (or of
// the column's expression in selects).
type typeCase struct {
	col, typ, value, want string
}

// selects reads columns whose toString hides what matters (trailing zero bytes).
var selects = map[string]string{"fs": "hex(fs)"}

// roundTrip creates a table with the cases' columns, inserts one message holding every value
// through ProcessBatch and compares what ClickHouse stored (read back as text).
func roundTrip(t *testing.T, ep harness.ClickHouseEndpoint, rd clickhouse.Conn, cases []typeCase) {
	t.Helper()
	var defs, fields, exprs []string
	for _, c := range cases {
		defs = append(defs, "`"+c.col+"` "+c.typ)
		fields = append(fields, fmt.Sprintf("%q:%s", c.col, c.value))
		expr := "toString(`" + c.col + "`)"
		if strings.HasPrefix(c.typ, "DateTime") && !strings.Contains(c.typ, "'") {
			expr = "toString(`" + c.col + "`, 'UTC')"
		}
		if sel, ok := selects[c.col]; ok {
			expr = sel
		}
		if strings.Contains(c.typ, "Nullable") {
			expr = "ifNull(" + expr + ", 'NULL')"
		}
		exprs = append(exprs, expr)
	}
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"allow_experimental_low_cardinality_type": 1}))
	if err := rd.Exec(ctx, "CREATE TABLE "+ep.Database+".types ("+strings.Join(defs, ", ")+") ENGINE = MergeTree ORDER BY tuple()"); err != nil {
		t.Fatal(err)
	}
	s := initialized(t, loadConfig(t, ep, "types"))
	if err := s.ProcessBatch(context.Background(), records("/default/types", 0, "{"+strings.Join(fields, ",")+"}")); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		got := queryStrings(t, rd, "SELECT "+exprs[i]+" FROM "+ep.Database+".types")
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("column %s %s: sent %s, stored %q, want %q", c.col, c.typ, c.value, got, c.want)
		}
	}
}

// TestTypesRoundTrip inserts a value of every type the local 18.16 server has, and reads it back.
func TestTypesRoundTrip(t *testing.T) {
	ep := harness.ClickHouse(t)
	roundTrip(t, ep, reader(t, ep), []typeCase{
		{"i8", "Int8", "-128", "-128"},
		{"i16", "Int16", `"32767"`, "32767"},
		{"i32", "Int32", "-2147483648", "-2147483648"},
		{"i64", "Int64", `"9223372036854775807"`, "9223372036854775807"},
		{"i64e", "Int64", "1e3", "1000"},
		{"u8", "UInt8", "255", "255"},
		{"u16", "UInt16", "65535", "65535"},
		{"u32", "UInt32", "4294967295", "4294967295"},
		{"u64", "UInt64", "18446744073709551615", "18446744073709551615"},
		{"f32", "Float32", "1.5", "1.5"},
		{"f64", "Float64", "-2.25e-3", "-0.00225"},
		{"fnan", "Float64", `"NaN"`, "nan"},
		{"dec", "Decimal(18, 4)", `"12345678901234.5678"`, "12345678901234.5678"},
		{"dec2", "Decimal(9, 2)", "-1.5", "-1.50"},
		{"s", "String", `"héllo \"quoted\"\n"`, "héllo \"quoted\"\n"},
		{"sobj", "String", `{"a":[1,2]}`, `{"a":[1,2]}`},
		{"fs", "FixedString(4)", `"ab"`, "61620000"},
		{"d", "Date", `"2026-01-02"`, "2026-01-02"},
		{"dn", "Date", "20000", "2024-10-04"},
		{"dt", "DateTime", `"2026-01-02T03:04:05+02:00"`, "2026-01-02 01:04:05"},
		{"dte", "DateTime", "1767323045", "2026-01-02 03:04:05"},
		{"dtz", "DateTime('Europe/Berlin')", `"2026-07-01 12:00:00"`, "2026-07-01 12:00:00"},
		{"uid", "UUID", `"7D2E9F8A-4C1B-4E2A-9B7C-1F0E2D3C4B5A"`, "7d2e9f8a-4c1b-4e2a-9b7c-1f0e2d3c4b5a"},
		{"e8", "Enum8('a' = 1, 'b' = 2)", `"b"`, "b"},
		{"e16", "Enum16('x' = 1000, 'y' = -1000)", "-1000", "y"},
		{"n", "Nullable(Int32)", "null", "NULL"},
		{"nv", "Nullable(Int32)", "7", "7"},
		{"arr", "Array(Int32)", "[1,-2,3]", "[1,-2,3]"},
		{"arrn", "Array(Nullable(String))", `["a",null]`, "['a',NULL]"},
		{"arr2", "Array(Array(UInt8))", "[[1],[],[2,3]]", "[[1],[],[2,3]]"},
		{"tup", "Tuple(Int32, String)", `[1,"x"]`, "(1,'x')"},
		{"lc", "LowCardinality(String)", `"low"`, "low"},
		{"lcn", "LowCardinality(Nullable(String))", "null", "NULL"},
	})
}

// TestNewerTypesRoundTrip covers the types the local 18.16 server lacks; it runs where the server
// has them (GitHub CI's current ClickHouse) and is skipped only where it does not.
func TestNewerTypesRoundTrip(t *testing.T) {
	ep := harness.ClickHouse(t)
	rd := reader(t, ep)
	have := queryStrings(t, rd, "SELECT name FROM system.data_type_families WHERE name IN ('DateTime64', 'Bool', 'Map', 'Int128', 'Int256', 'UInt256', 'Date32', 'IPv4', 'IPv6')")
	if len(have) < 9 {
		major, minor := serverVersion(t, rd)
		t.Skipf("ClickHouse %d.%d has only %v of DateTime64, Bool, Map, Int128, Int256, UInt256, Date32, IPv4, IPv6: their round trip needs 22.x or later (the conversions are unit-tested in chtype)", major, minor, have)
	}
	roundTrip(t, ep, rd, []typeCase{
		{"dt64", "DateTime64(3, 'UTC')", `"2026-01-02T03:04:05.678901Z"`, "2026-01-02 03:04:05.678"},
		{"dt64e", "DateTime64(6)", "1767323045.25", "2026-01-02 03:04:05.250000"},
		{"b", "Bool", "true", "true"},
		{"m", "Map(String, Int32)", `{"b":2,"a":1}`, "{'a':1,'b':2}"},
		{"mk", "Map(UInt8, String)", `{"7":"x"}`, "{7:'x'}"},
		{"i128", "Int128", `"-170141183460469231731687303715884105728"`, "-170141183460469231731687303715884105728"},
		{"i256", "Int256", "12345678901234567890123456789", "12345678901234567890123456789"},
		{"u256", "UInt256", `"115792089237316195423570985008687907853269984665640564039457584007913129639935"`, "115792089237316195423570985008687907853269984665640564039457584007913129639935"},
		{"d32", "Date32", `"1925-06-01"`, "1925-06-01"},
		{"ip4", "IPv4", `"192.0.2.1"`, "192.0.2.1"},
		{"ip6", "IPv6", `"192.0.2.1"`, "::ffff:192.0.2.1"},
		{"ip6b", "IPv6", `"2001:db8::1"`, "2001:db8::1"},
		{"tupn", "Tuple(a Int32, b String)", `{"b":"x","a":1}`, "(1,'x')"},
		{"dec256", "Decimal(76, 2)", `"-12.5"`, "-12.5"},
	})
}

// TestBadRowsRejectedRestInserted: rows that cannot be converted are invalid data naming the
// column, the value and the reason; the rest of the batch is inserted in one INSERT.
func TestBadRowsRejectedRestInserted(t *testing.T) {
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, name String, d Date, e Enum8('a' = 1)) ENGINE = MergeTree ORDER BY id")
	s := initialized(t, loadConfig(t, ep, "events", "UNKNOWN_FIELDS=error"))
	recs := records("/default/ev-part-0", 40,
		`{"id":1,"name":"a"}`,
		`{"id":-3,"name":"b"}`,
		`not json`,
		`{"id":2,"name":"c","extra":1,"more":2}`,
		`{"id":3,"d":"2026-13-01"}`,
		`{"id":4,"e":"zz"}`,
		`{"id":5,"name":"e"}`,
	)
	err := s.ProcessBatch(context.Background(), recs)
	var be *runtime.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(recs) {
		t.Fatalf("ProcessBatch = %v, want a BatchError with %d entries", err, len(recs))
	}
	want := []string{
		"",
		`message topic:/default/ev-part-0/producer:1/offset:41: column "id" (UInt64): value -3: want an integer from 0 to 18446744073709551615 for UInt64`,
		`message topic:/default/ev-part-0/producer:1/offset:42: payload is not a JSON object: not json`,
		"message topic:/default/ev-part-0/producer:1/offset:43: fields without a column in `" + ep.Database + "`.`events` (UNKNOWN_FIELDS=error): extra, more",
		`message topic:/default/ev-part-0/producer:1/offset:44: column "d" (Date): value "2026-13-01": want YYYY-MM-DD, an RFC 3339 timestamp or days since 1970-01-01 for Date`,
		`message topic:/default/ev-part-0/producer:1/offset:45: column "e" (Enum8('a' = 1)): value "zz": want one of "a" (or their numbers)`,
		"",
	}
	for i, e := range be.Errs {
		got := ""
		if e != nil {
			got = e.Error()
			if runtime.ClassOf(e) != runtime.ClassInvalidData {
				t.Errorf("record %d: class %v, want invalid data", i, runtime.ClassOf(e))
			}
		}
		if got != want[i] {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
	rows := queryStrings(t, reader(t, ep), "SELECT concat(toString(id), ':', name) FROM "+ep.Database+".events ORDER BY id")
	if !slices.Equal(rows, []string{"1:a", "5:e"}) {
		t.Fatalf("stored %q, want [1:a 5:e]", rows)
	}
}

// TestMissingFieldsTakeDefaults: absent fields and nulls for non-Nullable columns take the
// column's default, computed by the server; messages with different fields go in separate
// INSERTs of one batch.
func TestMissingFieldsTakeDefaults(t *testing.T) {
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, name String DEFAULT concat('n', toString(id)), n Nullable(Int8), k UInt8, m String MATERIALIZED upper(name)) ENGINE = MergeTree ORDER BY id")
	s := initialized(t, loadConfig(t, ep, "events"))
	if err := s.ProcessBatch(context.Background(), records("/default/ev", 0,
		`{"id":1,"name":"x","n":1,"k":1}`, `{"id":2}`, `{"id":3,"name":null,"n":null}`, `{"id":4,"name":"y","n":4,"k":4,"m":"ignored"}`)); err != nil {
		t.Fatal(err)
	}
	rows := queryStrings(t, reader(t, ep), "SELECT concat(toString(id), ',', name, ',', ifNull(toString(n), 'NULL'), ',', toString(k), ',', m) FROM "+ep.Database+".events ORDER BY id")
	want := []string{"1,x,1,1,X", "2,n2,NULL,0,N2", "3,n3,NULL,0,N3", "4,y,4,4,Y"}
	if !slices.Equal(rows, want) {
		t.Fatalf("stored %q, want %q", rows, want)
	}
}
