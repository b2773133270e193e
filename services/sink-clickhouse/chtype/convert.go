package chtype

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// Convert turns raw, one JSON value, into the Go value clickhouse-go appends to a column of type t:
// int8…uint64, *big.Int, float32/64, bool, string (String, FixedString, Enum names, UUID and
// Decimal text), time.Time, netip.Addr, nil (NULL), []any (Array, Tuple) and *OrderedMap (Map).
// The error says what was wanted; the caller adds the column and the value.
func (t *Type) Convert(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, errors.New("empty value")
	}
	if isNull(raw) {
		if t.Nullable() {
			return nil, nil
		}
		return nil, fmt.Errorf("null in a non-Nullable %s", t.Name)
	}
	switch t.Kind {
	case Int8, Int16, Int32, Int64:
		return t.signed(raw)
	case UInt8, UInt16, UInt32, UInt64:
		return t.unsigned(raw)
	case Int128, Int256, UInt128, UInt256:
		return t.bigInt(raw)
	case Float32, Float64:
		return t.float(raw)
	case Bool:
		return toBool(raw)
	case Decimal:
		return t.decimal(raw)
	case String:
		return toText(raw)
	case FixedString:
		s, err := toText(raw)
		if err != nil {
			return nil, err
		}
		if len(s) > t.Size {
			return nil, fmt.Errorf("%d bytes do not fit %s", len(s), t.Name)
		}
		return s, nil
	case Date, Date32:
		return t.date(raw)
	case DateTime, DateTime64:
		return t.dateTime(raw)
	case UUID:
		return toUUID(raw)
	case IPv4, IPv6:
		return t.ip(raw)
	case Enum8, Enum16:
		return t.enumName(raw)
	case Nullable, LowCardinality:
		return t.Elem.Convert(raw)
	case Array:
		return t.array(raw)
	case Tuple:
		return t.tuple(raw)
	case Map:
		return t.mapValue(raw)
	}
	return nil, fmt.Errorf("column type %s is not supported by this connector", t.Name)
}

func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }

// numberText returns the text of a JSON number, or of a JSON string holding one (64-bit and larger
// integers and decimals often travel as strings).
func numberText(raw []byte) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] == '"' {
		s, err := unquoteJSON(raw)
		if err != nil {
			return "", false
		}
		s = strings.TrimSpace(s)
		return s, s != ""
	}
	if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		return string(raw), true
	}
	return "", false
}

// integerText is numberText for an integer column, which also takes a JSON bool as 1 or 0 (a
// deleted-row flag, a UInt8 that ClickHouse's own Bool is an alias of).
func integerText(raw []byte) (string, bool) {
	switch string(raw) {
	case "true":
		return "1", true
	case "false":
		return "0", true
	}
	return numberText(raw)
}

var intBounds = map[Kind]int{Int8: 8, Int16: 16, Int32: 32, Int64: 64, UInt8: 8, UInt16: 16, UInt32: 32, UInt64: 64}

func (t *Type) signed(raw []byte) (any, error) {
	bits := intBounds[t.Kind]
	s, ok := integerText(raw)
	if !ok {
		return nil, fmt.Errorf("want an integer for %s", t.Name)
	}
	v, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		r, rerr := integral(s)
		if rerr != nil || !r.IsInt64() || r.Int64() < -1<<(bits-1) || r.Int64() > 1<<(bits-1)-1 {
			return nil, fmt.Errorf("want an integer from %d to %d for %s", int64(-1)<<(bits-1), int64(1)<<(bits-1)-1, t.Name)
		}
		v = r.Int64()
	}
	switch t.Kind {
	case Int8:
		return int8(v), nil
	case Int16:
		return int16(v), nil
	case Int32:
		return int32(v), nil
	}
	return v, nil
}

func (t *Type) unsigned(raw []byte) (any, error) {
	bits := intBounds[t.Kind]
	s, ok := integerText(raw)
	if !ok {
		return nil, fmt.Errorf("want an integer for %s", t.Name)
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		r, rerr := integral(s)
		maxV := uint64(1)<<bits - 1
		if bits == 64 {
			maxV = math.MaxUint64
		}
		if rerr != nil || !r.IsUint64() || r.Uint64() > maxV {
			return nil, fmt.Errorf("want an integer from 0 to %d for %s", maxV, t.Name)
		}
		v = r.Uint64()
	}
	switch t.Kind {
	case UInt8:
		return uint8(v), nil
	case UInt16:
		return uint16(v), nil
	case UInt32:
		return uint32(v), nil
	}
	return v, nil
}

// integral parses a number written with a fraction or an exponent ("3.0", "1e3") that is still an
// integer.
func integral(s string) (*big.Int, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || !r.IsInt() {
		return nil, errors.New("not an integer")
	}
	return r.Num(), nil
}

func (t *Type) bigInt(raw []byte) (any, error) {
	bits, signed := 128, true
	switch t.Kind {
	case Int256:
		bits = 256
	case UInt128:
		signed = false
	case UInt256:
		bits, signed = 256, false
	}
	lo, hi := new(big.Int), new(big.Int).Lsh(big.NewInt(1), uint(bits))
	if signed {
		hi.Rsh(hi, 1)
		lo.Neg(hi)
	}
	hi.Sub(hi, big.NewInt(1))
	s, ok := numberText(raw)
	var v *big.Int
	if ok {
		v, ok = new(big.Int).SetString(s, 10)
		if !ok {
			v, _ = integral(s)
		}
	}
	if v == nil || v.Cmp(lo) < 0 || v.Cmp(hi) > 0 {
		return nil, fmt.Errorf("want an integer from %s to %s for %s", lo, hi, t.Name)
	}
	return v, nil
}

func (t *Type) float(raw []byte) (any, error) {
	bits := 64
	if t.Kind == Float32 {
		bits = 32
	}
	s, ok := numberText(raw)
	var v float64
	var err error
	if ok {
		v, err = strconv.ParseFloat(s, bits) // also "NaN", "Inf", "-inf" in strings
	}
	if !ok || err != nil {
		return nil, fmt.Errorf("want a number in %s's range", t.Name)
	}
	if bits == 32 {
		return float32(v), nil
	}
	return v, nil
}

func toBool(raw []byte) (any, error) {
	switch string(raw) {
	case "true", `"true"`, "1":
		return true, nil
	case "false", `"false"`, "0":
		return false, nil
	}
	return nil, errors.New("want true, false, 1 or 0 for Bool")
}

// decimal checks the value fits Decimal(P, S) exactly and returns it as text with S places.
func (t *Type) decimal(raw []byte) (any, error) {
	s, ok := numberText(raw)
	var r *big.Rat
	if ok {
		r, ok = new(big.Rat).SetString(s)
	}
	if !ok {
		return nil, fmt.Errorf("want a decimal number for %s", t.Name)
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(pow10(t.Scale)))
	if !scaled.IsInt() {
		return nil, fmt.Errorf("more than %d decimal places for %s", t.Scale, t.Name)
	}
	if new(big.Int).Abs(scaled.Num()).Cmp(pow10(t.Precision)) >= 0 {
		return nil, fmt.Errorf("more than %d digits for %s", t.Precision, t.Name)
	}
	return r.FloatString(t.Scale), nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// toText returns a JSON string's text; any other JSON value is stored as its JSON text.
func toText(raw []byte) (string, error) {
	if raw[0] == '"' {
		return unquoteJSON(raw)
	}
	return string(raw), nil
}

// unquoteJSON decodes a JSON string without reflection when it holds no escapes.
func unquoteJSON(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errors.New("want a JSON string")
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

var (
	dateMin   = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	dateMax   = time.Date(2149, 6, 6, 0, 0, 0, 0, time.UTC)
	date32Min = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	date32Max = time.Date(2299, 12, 31, 0, 0, 0, 0, time.UTC)
	dtMax     = time.Unix(math.MaxUint32, 0).UTC()
	dt64Max   = time.Date(2299, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// date accepts "2006-01-02", an RFC 3339 timestamp (its calendar date as written) or a number of
// days since 1970-01-01.
func (t *Type) date(raw []byte) (any, error) {
	lo, hi := dateMin, dateMax
	if t.Kind == Date32 {
		lo, hi = date32Min, date32Max
	}
	var d time.Time
	if raw[0] == '"' {
		s, err := unquoteJSON(raw)
		if err != nil {
			return nil, err
		}
		ts, err := parseTime(s, time.UTC)
		if err != nil {
			return nil, fmt.Errorf("want YYYY-MM-DD, an RFC 3339 timestamp or days since 1970-01-01 for %s", t.Name)
		}
		d = time.Date(ts.Year(), ts.Month(), ts.Day(), 0, 0, 0, 0, time.UTC)
	} else {
		days, err := strconv.ParseInt(string(raw), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("want YYYY-MM-DD, an RFC 3339 timestamp or days since 1970-01-01 for %s", t.Name)
		}
		d = dateMin.AddDate(0, 0, int(days))
	}
	if d.Before(lo) || d.After(hi) {
		return nil, fmt.Errorf("date %s outside %s's range %s to %s", d.Format(time.DateOnly), t.Name, lo.Format(time.DateOnly), hi.Format(time.DateOnly))
	}
	return d, nil
}

// dateTime accepts an RFC 3339 timestamp, "2006-01-02 15:04:05[.fff]" in the column's time zone
// (UTC when it has none), or seconds since the epoch, with a fraction for DateTime64. The value is
// truncated to the column's precision.
func (t *Type) dateTime(raw []byte) (any, error) {
	var ts time.Time
	bad := func() error {
		return fmt.Errorf("want an RFC 3339 timestamp, \"YYYY-MM-DD hh:mm:ss\" or seconds since the epoch for %s", t.Name)
	}
	if raw[0] == '"' {
		s, err := unquoteJSON(raw)
		if err != nil {
			return nil, bad()
		}
		if ts, err = parseTime(s, t.Location); err != nil {
			return nil, bad()
		}
	} else if secs, err := strconv.ParseInt(string(raw), 10, 64); err == nil && t.Kind == DateTime {
		ts = time.Unix(secs, 0)
	} else {
		r, ok := new(big.Rat).SetString(string(raw))
		if !ok {
			return nil, bad()
		}
		ns := new(big.Rat).Mul(r, new(big.Rat).SetInt64(1e9))
		q := new(big.Int).Quo(ns.Num(), ns.Denom()) // toward zero; a fraction below 1 ns is dropped
		secs, nanos := new(big.Int).QuoRem(q, big.NewInt(1e9), new(big.Int))
		if !secs.IsInt64() || secs.Int64() < -1<<40 || secs.Int64() > 1<<40 {
			return nil, fmt.Errorf("epoch seconds %s outside %s's range", raw, t.Name)
		}
		ts = time.Unix(secs.Int64(), nanos.Int64())
	}
	lo, hi := dateMin, dtMax
	prec := 0
	if t.Kind == DateTime64 {
		lo, hi, prec = date32Min, dt64Max, t.Precision
	}
	ts = ts.Truncate(time.Duration(math.Pow10(9 - prec)))
	if ts.Before(lo) || ts.After(hi) {
		return nil, fmt.Errorf("time %s outside %s's range %s to %s", ts.UTC().Format(time.RFC3339Nano), t.Name,
			lo.Format(time.RFC3339), hi.Format(time.RFC3339))
	}
	return ts.In(t.Location), nil
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999", time.DateOnly}

func parseTime(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	for _, l := range timeLayouts {
		if ts, err := time.ParseInLocation(l, s, loc); err == nil {
			return ts, nil
		}
	}
	return time.Time{}, errors.New("not a timestamp")
}

var errUUID = errors.New("want a UUID such as \"123e4567-e89b-12d3-a456-426614174000\"")

// toUUID checks the canonical 8-4-4-4-12 form (or 32 hex digits, or braces) and returns it
// lower-cased with dashes.
func toUUID(raw []byte) (any, error) {
	s, err := unquoteJSON(raw)
	bad := errUUID
	if err != nil {
		return nil, bad
	}
	s = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}"))
	hex := strings.ReplaceAll(s, "-", "")
	if len(hex) != 32 || (len(s) != 32 && (len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')) {
		return nil, bad
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, bad
		}
	}
	return hex[:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:], nil
}

// ip accepts an address string; IPv4 also takes its number, IPv6 also an IPv4 address (mapped).
func (t *Type) ip(raw []byte) (any, error) {
	if t.Kind == IPv4 && raw[0] != '"' {
		v, err := strconv.ParseUint(string(raw), 10, 32)
		if err != nil {
			return nil, errors.New("want an IPv4 address such as \"192.0.2.1\" or its number")
		}
		return uint32(v), nil
	}
	s, err := unquoteJSON(raw)
	var a netip.Addr
	if err == nil {
		a, err = netip.ParseAddr(s)
	}
	if t.Kind == IPv4 {
		if err != nil || !a.Unmap().Is4() {
			return nil, errors.New("want an IPv4 address such as \"192.0.2.1\"")
		}
		return a.Unmap(), nil
	}
	if err != nil || a.Zone() != "" {
		return nil, errors.New("want an IPv6 or IPv4 address such as \"2001:db8::1\"")
	}
	return netip.AddrFrom16(a.As16()), nil
}

// enumName accepts an element's name or its number and returns the name.
func (t *Type) enumName(raw []byte) (any, error) {
	if raw[0] == '"' {
		s, err := unquoteJSON(raw)
		if err == nil {
			if _, ok := t.enum[s]; ok {
				return s, nil
			}
		}
	} else if v, err := strconv.Atoi(string(raw)); err == nil {
		if name, ok := t.enumNames[v]; ok {
			return name, nil
		}
	}
	return nil, fmt.Errorf("want one of %s", t.enumList())
}

func (t *Type) enumList() string {
	names := make([]string, 0, len(t.enum))
	for n := range t.enum {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ") + " (or their numbers)"
}

func (t *Type) array(raw []byte) (any, error) {
	var elems []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		return nil, fmt.Errorf("want a JSON array for %s", t.Name)
	}
	out := make([]any, len(elems))
	for i, e := range elems {
		v, err := t.Elem.Convert(e)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// tuple accepts a JSON array (positional) or, for named tuples, an object by element name.
func (t *Type) tuple(raw []byte) (any, error) {
	out := make([]any, len(t.Fields))
	if raw[0] == '{' && t.Fields[0].Name != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("want a JSON object or array for %s", t.Name)
		}
		for i, f := range t.Fields {
			e, ok := obj[f.Name]
			if !ok {
				return nil, fmt.Errorf("element %q missing", f.Name)
			}
			v, err := f.Type.Convert(e)
			if err != nil {
				return nil, fmt.Errorf("element %q: %w", f.Name, err)
			}
			out[i] = v
		}
		if len(obj) != len(t.Fields) {
			return nil, fmt.Errorf("%d elements, want %d for %s", len(obj), len(t.Fields), t.Name)
		}
		return out, nil
	}
	var elems []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		return nil, fmt.Errorf("want a JSON array for %s", t.Name)
	}
	if len(elems) != len(t.Fields) {
		return nil, fmt.Errorf("%d elements, want %d for %s", len(elems), len(t.Fields), t.Name)
	}
	for i, f := range t.Fields {
		v, err := f.Type.Convert(elems[i])
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// OrderedMap is a Map value in key order (clickhouse-go's IterableOrderedMap), so that the same
// message always produces the same block.
type OrderedMap struct {
	Keys, Values []any
}

// Put appends a key and its value.
func (m *OrderedMap) Put(k, v any) { m.Keys, m.Values = append(m.Keys, k), append(m.Values, v) }

// Iterator walks the entries in order.
func (m *OrderedMap) Iterator() column.MapIterator { return &mapIter{m: m, i: -1} }

var _ column.IterableOrderedMap = (*OrderedMap)(nil)

type mapIter struct {
	m *OrderedMap
	i int
}

func (it *mapIter) Next() bool { it.i++; return it.i < len(it.m.Keys) }
func (it *mapIter) Key() any   { return it.m.Keys[it.i] }
func (it *mapIter) Value() any { return it.m.Values[it.i] }

// mapValue accepts a JSON object; keys are converted from their text to the key type.
func (t *Type) mapValue(raw []byte) (any, error) {
	var obj map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
		return nil, fmt.Errorf("want a JSON object for %s", t.Name)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	m := &OrderedMap{Keys: make([]any, 0, len(keys)), Values: make([]any, 0, len(keys))}
	for _, k := range keys {
		kraw, _ := json.Marshal(k)
		if t.Key.plainKey() {
			kraw = []byte(k) // numeric keys: the text is the number
		}
		kv, err := t.Key.Convert(kraw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		v, err := t.Value.Convert(obj[k])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		m.Put(kv, v)
	}
	return m, nil
}

// plainKey reports whether a Map key of type t is read from its text as a bare JSON number.
func (t *Type) plainKey() bool {
	switch t.Kind {
	case Int8, Int16, Int32, Int64, Int128, Int256, UInt8, UInt16, UInt32, UInt64, UInt128, UInt256, Float32, Float64:
		return true
	case LowCardinality:
		return t.Elem.plainKey()
	}
	return false
}
