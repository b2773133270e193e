package chtype

import (
	"math"
	"math/big"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustParse(t *testing.T, s string) *Type {
	t.Helper()
	typ, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return typ
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in    string
		check func(*Type) bool
	}{
		{"UInt64", func(t *Type) bool { return t.Kind == UInt64 }},
		{"Nullable(DateTime64(3, 'Europe/Berlin'))", func(t *Type) bool {
			return t.Kind == Nullable && t.Elem.Kind == DateTime64 && t.Elem.Precision == 3 && t.Elem.Location.String() == "Europe/Berlin"
		}},
		{"Decimal(18, 4)", func(t *Type) bool { return t.Kind == Decimal && t.Precision == 18 && t.Scale == 4 }},
		{"Decimal64(3)", func(t *Type) bool { return t.Kind == Decimal && t.Precision == 18 && t.Scale == 3 }},
		{"Enum8('a,b' = 1, 'it\\'s' = -2)", func(t *Type) bool { return t.enum["a,b"] == 1 && t.enumNames[-2] == "it's" }},
		{"Map(LowCardinality(String), Array(Tuple(Int32, String)))", func(t *Type) bool {
			return t.Kind == Map && t.Key.Kind == LowCardinality && t.Value.Elem.Fields[1].Type.Kind == String
		}},
		{"Tuple(a Int32, `b c` Nullable(String))", func(t *Type) bool {
			return t.Fields[0].Name == "a" && t.Fields[1].Name == "b c" && t.Fields[1].Type.Nullable()
		}},
		{"FixedString(16)", func(t *Type) bool { return t.Size == 16 }},
		{"AggregateFunction(uniq, UInt64)", func(t *Type) bool { return t.Kind == Unsupported }},
		{"LowCardinality(Nullable(String))", func(t *Type) bool { return t.Nullable() }},
	} {
		if typ := mustParse(t, tc.in); !tc.check(typ) {
			t.Errorf("Parse(%q) = %+v", tc.in, typ)
		}
	}
	for _, bad := range []string{"Decimal(3, 4)", "FixedString(x)", "Array(Int32", "DateTime64(12)", "Nullable(Int8, Int8)", "DateTime('Nowhere/Land')"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func bigInt(s string) *big.Int {
	v, _ := new(big.Int).SetString(s, 10)
	return v
}

func TestConvert(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		typ, in string
		want    any
	}{
		{"Int8", "-128", int8(-128)},
		{"Int16", `"123"`, int16(123)},
		{"Int32", "2e3", int32(2000)},
		{"Int64", `"-9223372036854775808"`, int64(-9223372036854775808)},
		{"UInt8", "255", uint8(255)},
		{"UInt8", "true", uint8(1)}, // as ClickHouse reads JSON bools into numbers (input_format_json_read_bools_as_numbers)
		{"Int8", "false", int8(0)},
		{"UInt32", "4.0", uint32(4)},
		{"UInt64", "18446744073709551615", uint64(18446744073709551615)},
		{"Int128", `"-170141183460469231731687303715884105728"`, bigInt("-170141183460469231731687303715884105728")},
		{"UInt128", "340282366920938463463374607431768211455", bigInt("340282366920938463463374607431768211455")},
		{"Int256", "1e40", bigInt("10000000000000000000000000000000000000000")},
		{"UInt256", "0", big.NewInt(0)},
		{"Float32", "1.5", float32(1.5)},
		{"Float64", `"-Inf"`, math.Inf(-1)},
		{"Bool", "true", true},
		{"Bool", "0", false},
		{"Bool", `"false"`, false},
		{"Decimal(9, 2)", "1.5", "1.50"},
		{"Decimal(9, 2)", `"-1234567.89"`, "-1234567.89"},
		{"Decimal(76, 10)", "1e-10", "0.0000000001"},
		{"String", `"a\u00e9\n"`, "aé\n"},
		{"String", `{"x": [1, 2]}`, `{"x": [1, 2]}`},
		{"String", "12.50", "12.50"},
		{"FixedString(3)", `"abc"`, "abc"},
		{"Date", `"2026-01-02"`, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"Date", `"2026-01-02T23:30:00-05:00"`, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"Date", "1", time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"Date32", `"1900-01-01"`, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"DateTime", `"2026-01-02T03:04:05.999Z"`, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"DateTime", "1767323045", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"DateTime('Europe/Berlin')", `"2026-07-01 12:00:00"`, time.Date(2026, 7, 1, 12, 0, 0, 0, berlin)},
		{"DateTime64(3)", `"2026-01-02T03:04:05.123456789Z"`, time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.UTC)},
		{"DateTime64(6, 'UTC')", "1767323045.25", time.Date(2026, 1, 2, 3, 4, 5, 250000000, time.UTC)},
		{"DateTime64(9)", `"2026-01-02 03:04:05.000000001"`, time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC)},
		{"DateTime64(3)", "-1.5", time.Date(1969, 12, 31, 23, 59, 58, 500000000, time.UTC)},
		{"UUID", `"{7D2E9F8A4C1B4E2A9B7C1F0E2D3C4B5A}"`, "7d2e9f8a-4c1b-4e2a-9b7c-1f0e2d3c4b5a"},
		{"IPv4", `"192.0.2.1"`, netip.MustParseAddr("192.0.2.1")},
		{"IPv4", "3221225985", uint32(3221225985)},
		{"IPv4", `"::ffff:192.0.2.1"`, netip.MustParseAddr("192.0.2.1")},
		{"IPv6", `"2001:db8::1"`, netip.MustParseAddr("2001:db8::1")},
		{"IPv6", `"192.0.2.1"`, netip.MustParseAddr("::ffff:192.0.2.1")},
		{"Enum8('a' = 1, 'b' = 2)", `"a"`, "a"},
		{"Enum16('x' = -1000)", "-1000", "x"},
		{"Nullable(Int32)", "null", nil},
		{"Nullable(Int32)", "5", int32(5)},
		{"LowCardinality(String)", `"lc"`, "lc"},
		{"Array(Nullable(UInt8))", "[1, null]", []any{uint8(1), nil}},
		{"Array(Array(String))", `[["a"], []]`, []any{[]any{"a"}, []any{}}},
		{"Tuple(Int32, String)", `[1, "x"]`, []any{int32(1), "x"}},
		{"Tuple(a Int32, b String)", `{"b": "x", "a": 1}`, []any{int32(1), "x"}},
		{"Map(String, Int32)", `{"b": 2, "a": 1}`, &OrderedMap{Keys: []any{"a", "b"}, Values: []any{int32(1), int32(2)}}},
		{"Map(UInt16, Nullable(String))", `{"10": null, "9": "x"}`, &OrderedMap{Keys: []any{uint16(10), uint16(9)}, Values: []any{nil, "x"}}},
		{"Map(UUID, Date)", `{"7d2e9f8a-4c1b-4e2a-9b7c-1f0e2d3c4b5a": 0}`, &OrderedMap{Keys: []any{"7d2e9f8a-4c1b-4e2a-9b7c-1f0e2d3c4b5a"}, Values: []any{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}}},
	} {
		got, err := mustParse(t, tc.typ).Convert([]byte(tc.in))
		if err != nil {
			t.Errorf("%s ← %s: %v", tc.typ, tc.in, err)
			continue
		}
		if !equal(got, tc.want) {
			t.Errorf("%s ← %s = %#v, want %#v", tc.typ, tc.in, got, tc.want)
		}
	}
}

// equal compares converted values; times by instant and zone, big ints by value.
func equal(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w) && g.Location().String() == w.Location().String()
	case *big.Int:
		g, ok := got.(*big.Int)
		return ok && g.Cmp(w) == 0
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !equal(g[i], w[i]) {
				return false
			}
		}
		return true
	case *OrderedMap:
		g, ok := got.(*OrderedMap)
		return ok && equal(g.Keys, w.Keys) && equal(g.Values, w.Values)
	}
	return reflect.DeepEqual(got, want)
}

// TestConvertErrors checks the reason given for values that do not fit; the sink prefixes it with
// the column and the value.
func TestConvertErrors(t *testing.T) {
	for _, tc := range []struct{ typ, in, want string }{
		{"Int8", "128", "want an integer from -128 to 127 for Int8"},
		{"Int32", "1.5", "want an integer from -2147483648 to 2147483647 for Int32"},
		{"UInt8", "-1", "want an integer from 0 to 255 for UInt8"},
		{"UInt64", `"abc"`, "want an integer from 0 to 18446744073709551615 for UInt64"},
		{"Int64", "[1]", "want an integer for Int64"},
		{"Int128", `"1.5"`, "want an integer from -170141183460469231731687303715884105728 to 170141183460469231731687303715884105727 for Int128"},
		{"UInt256", "-1", "want an integer from 0 to 115792089237316195423570985008687907853269984665640564039457584007913129639935 for UInt256"},
		{"Float32", "1e39", "want a number in Float32's range"},
		{"Bool", `"yes"`, "want true, false, 1 or 0 for Bool"},
		{"Decimal(9, 2)", "1.005", "more than 2 decimal places for Decimal(9, 2)"},
		{"Decimal(4, 2)", "100", "more than 4 digits for Decimal(4, 2)"},
		{"Decimal(4, 2)", `"x"`, "want a decimal number for Decimal(4, 2)"},
		{"FixedString(2)", `"abc"`, "3 bytes do not fit FixedString(2)"},
		{"Date", `"1969-12-31"`, "date 1969-12-31 outside Date's range 1970-01-01 to 2149-06-06"},
		{"Date32", `"2300-01-01"`, "date 2300-01-01 outside Date32's range 1900-01-01 to 2299-12-31"},
		{"DateTime", `"yesterday"`, `want an RFC 3339 timestamp, "YYYY-MM-DD hh:mm:ss" or seconds since the epoch for DateTime`},
		{"DateTime", "-1", "time 1969-12-31T23:59:59Z outside DateTime's range 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z"},
		{"DateTime64(3)", `"1899-12-31T23:59:59Z"`, "time 1899-12-31T23:59:59Z outside DateTime64(3)'s range 1900-01-01T00:00:00Z to 2299-12-31T23:59:59Z"},
		{"UUID", `"not-a-uuid"`, `want a UUID such as "123e4567-e89b-12d3-a456-426614174000"`},
		{"IPv4", `"2001:db8::1"`, `want an IPv4 address such as "192.0.2.1"`},
		{"IPv6", `"fe80::1%eth0"`, `want an IPv6 or IPv4 address such as "2001:db8::1"`},
		{"Enum8('a' = 1, 'b' = 2)", `"c"`, `want one of "a", "b" (or their numbers)`},
		{"Enum8('a' = 1)", "3", `want one of "a" (or their numbers)`},
		{"Int32", "null", "null in a non-Nullable Int32"},
		{"Array(Int8)", "[1, 300]", "element 1: want an integer from -128 to 127 for Int8"},
		{"Array(Int8)", "{}", "want a JSON array for Array(Int8)"},
		{"Array(Int8)", "[null]", "element 0: null in a non-Nullable Int8"},
		{"Tuple(Int8, String)", "[1]", "1 elements, want 2 for Tuple(Int8, String)"},
		{"Tuple(a Int8, b String)", `{"a": 1}`, `element "b" missing`},
		{"Map(UInt8, String)", `{"x": "y"}`, `key "x": want an integer for UInt8`},
		{"Map(String, UInt8)", `{"x": -1}`, `key "x": want an integer from 0 to 255 for UInt8`},
		{"Map(String, UInt8)", `[]`, "want a JSON object for Map(String, UInt8)"},
		{"AggregateFunction(uniq, UInt64)", "1", "column type AggregateFunction(uniq, UInt64) is not supported by this connector"},
	} {
		_, err := mustParse(t, tc.typ).Convert([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s ← %s: error %v, want %q", tc.typ, tc.in, err, tc.want)
		}
	}
}
