// Package chtype parses ClickHouse column types and converts JSON values to the Go values
// clickhouse-go appends to columns of those types. It knows nothing about Danube: the sink decodes a
// message into fields and hands each field's raw JSON to the converter of its column.
//
// Conversions are strict where a silent change would lose data: integers out of range, decimals
// with more places than the scale, strings longer than a FixedString, unknown enum names and dates
// outside a type's range are errors, never clamped or wrapped. Timestamps are truncated to the
// column's precision (the documented behaviour of ClickHouse itself).
package chtype

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is a ClickHouse type constructor.
type Kind int

// The kinds this package converts to. Other server types parse as Unsupported: a field for such a
// column is rejected with a clear reason, a missing one takes the column default.
const (
	Unsupported Kind = iota
	Int8
	Int16
	Int32
	Int64
	Int128
	Int256
	UInt8
	UInt16
	UInt32
	UInt64
	UInt128
	UInt256
	Float32
	Float64
	Bool
	Decimal
	String
	FixedString
	Date
	Date32
	DateTime
	DateTime64
	UUID
	IPv4
	IPv6
	Enum8
	Enum16
	Nullable
	LowCardinality
	Array
	Tuple
	Map
	Nothing
)

var kindNames = map[string]Kind{
	"Int8": Int8, "Int16": Int16, "Int32": Int32, "Int64": Int64, "Int128": Int128, "Int256": Int256,
	"UInt8": UInt8, "UInt16": UInt16, "UInt32": UInt32, "UInt64": UInt64, "UInt128": UInt128, "UInt256": UInt256,
	"Float32": Float32, "Float64": Float64, "Bool": Bool, "Boolean": Bool,
	"Decimal": Decimal, "Decimal32": Decimal, "Decimal64": Decimal, "Decimal128": Decimal, "Decimal256": Decimal,
	"String": String, "FixedString": FixedString, "Date": Date, "Date32": Date32, "DateTime": DateTime,
	"DateTime64": DateTime64, "UUID": UUID, "IPv4": IPv4, "IPv6": IPv6, "Enum8": Enum8, "Enum16": Enum16,
	"Nullable": Nullable, "LowCardinality": LowCardinality, "Array": Array, "Tuple": Tuple, "Map": Map,
	"Nothing": Nothing,
}

// Type is a parsed column type such as Nullable(DateTime64(3, 'UTC')).
type Type struct {
	Kind Kind
	Name string // the type as the server spells it

	Elem   *Type   // Nullable, LowCardinality, Array
	Key    *Type   // Map
	Value  *Type   // Map
	Fields []Field // Tuple, in order

	Precision int            // Decimal (digits), DateTime64 (sub-second digits)
	Scale     int            // Decimal
	Size      int            // FixedString bytes
	Location  *time.Location // DateTime, DateTime64: the column's time zone (UTC when not given)
	enum      map[string]int // Enum8/16: name → value
	enumNames map[int]string // Enum8/16: value → name
}

// Field is one element of a Tuple; Name is empty for unnamed tuples.
type Field struct {
	Name string
	Type *Type
}

// Nullable reports whether the type holds NULL (Nullable, or LowCardinality(Nullable)).
func (t *Type) Nullable() bool {
	return t.Kind == Nullable || t.Kind == Nothing || (t.Kind == LowCardinality && t.Elem.Nullable())
}

// Parse parses a type name as system.columns and the native protocol spell it. Types the package
// does not convert parse as Unsupported, so that a table with such a column can still be loaded.
func Parse(s string) (*Type, error) {
	s = strings.TrimSpace(s)
	t := &Type{Name: s}
	name, args, hasArgs, err := splitCall(s)
	if err != nil {
		return nil, fmt.Errorf("type %q: %w", s, err)
	}
	kind, ok := kindNames[name]
	if !ok {
		return t, nil // Unsupported
	}
	t.Kind = kind
	if err := t.parseArgs(name, args, hasArgs); err != nil {
		return nil, fmt.Errorf("type %q: %w", s, err)
	}
	return t, nil
}

func (t *Type) parseArgs(name string, args []string, hasArgs bool) error {
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("want %d argument(s), got %d", n, len(args))
		}
		return nil
	}
	var err error
	switch t.Kind {
	case Nullable, LowCardinality, Array:
		if err := want(1); err != nil {
			return err
		}
		t.Elem, err = Parse(args[0])
		return err
	case Map:
		if err := want(2); err != nil {
			return err
		}
		if t.Key, err = Parse(args[0]); err != nil {
			return err
		}
		t.Value, err = Parse(args[1])
		return err
	case Tuple:
		for _, a := range args {
			f, err := parseField(a)
			if err != nil {
				return err
			}
			t.Fields = append(t.Fields, f)
		}
		if len(t.Fields) == 0 {
			return fmt.Errorf("empty Tuple")
		}
		return nil
	case FixedString:
		if err := want(1); err != nil {
			return err
		}
		t.Size, err = strconv.Atoi(args[0])
		if err != nil || t.Size <= 0 {
			return fmt.Errorf("bad FixedString size %q", args[0])
		}
		return nil
	case Decimal:
		return t.parseDecimal(name, args)
	case DateTime:
		t.Location = time.UTC
		if hasArgs {
			if err := want(1); err != nil {
				return err
			}
			return t.parseZone(args[0])
		}
		return nil
	case DateTime64:
		t.Location = time.UTC
		if len(args) < 1 || len(args) > 2 {
			return fmt.Errorf("want DateTime64(precision[, 'zone'])")
		}
		t.Precision, err = strconv.Atoi(args[0])
		if err != nil || t.Precision < 0 || t.Precision > 9 {
			return fmt.Errorf("bad DateTime64 precision %q", args[0])
		}
		if len(args) == 2 {
			return t.parseZone(args[1])
		}
		return nil
	case Enum8, Enum16:
		return t.parseEnum(args)
	}
	if hasArgs {
		return fmt.Errorf("%s takes no arguments", name)
	}
	return nil
}

func (t *Type) parseDecimal(name string, args []string) error {
	maxP := map[string]int{"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
	var err error
	if p, fixed := maxP[name]; fixed {
		if len(args) != 1 {
			return fmt.Errorf("want %s(scale)", name)
		}
		t.Precision = p
		t.Scale, err = strconv.Atoi(args[0])
	} else {
		if len(args) != 2 {
			return fmt.Errorf("want Decimal(precision, scale)")
		}
		if t.Precision, err = strconv.Atoi(args[0]); err == nil {
			t.Scale, err = strconv.Atoi(args[1])
		}
	}
	if err != nil || t.Precision < 1 || t.Precision > 76 || t.Scale < 0 || t.Scale > t.Precision {
		return fmt.Errorf("bad decimal precision or scale")
	}
	return nil
}

func (t *Type) parseZone(arg string) error {
	name, err := unquote(arg)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return fmt.Errorf("time zone %q: %w", name, err)
	}
	t.Location = loc
	return nil
}

func (t *Type) parseEnum(args []string) error {
	t.enum, t.enumNames = map[string]int{}, map[int]string{}
	for _, a := range args {
		i := strings.LastIndexByte(a, '=')
		if i < 0 {
			return fmt.Errorf("enum element %q: want 'name' = value", a)
		}
		name, err := unquote(strings.TrimSpace(a[:i]))
		if err != nil {
			return err
		}
		v, err := strconv.Atoi(strings.TrimSpace(a[i+1:]))
		if err != nil {
			return fmt.Errorf("enum element %q: %w", a, err)
		}
		t.enum[name], t.enumNames[v] = v, name
	}
	return nil
}

// parseField reads a tuple element: "Type" or "name Type".
func parseField(s string) (Field, error) {
	s = strings.TrimSpace(s)
	if len(s) > 0 && (s[0] == '`' || s[0] == '"') {
		if end := strings.IndexByte(s[1:], s[0]); end >= 0 {
			t, err := Parse(s[end+2:])
			return Field{Name: s[1 : end+1], Type: t}, err
		}
	}
	if t, err := Parse(s); err == nil && t.Kind != Unsupported {
		return Field{Type: t}, nil
	}
	if i := strings.IndexAny(s, " \t"); i > 0 && !strings.ContainsAny(s[:i], "(',") {
		t, err := Parse(s[i+1:])
		if err != nil {
			return Field{}, err
		}
		return Field{Name: strings.Trim(s[:i], "`\""), Type: t}, nil
	}
	t, err := Parse(s)
	return Field{Type: t}, err
}

// splitCall splits "Name(a, b(c), 'd,e')" into Name and its top-level arguments.
func splitCall(s string) (name string, args []string, hasArgs bool, err error) {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return s, nil, false, nil
	}
	if !strings.HasSuffix(s, ")") {
		return "", nil, false, fmt.Errorf("unbalanced parentheses")
	}
	name, body := strings.TrimSpace(s[:open]), s[open+1:len(s)-1]
	depth, start, quote := 0, 0, byte(0)
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case quote != 0:
			switch c {
			case '\\':
				i++
			case quote:
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return "", nil, false, fmt.Errorf("unbalanced parentheses")
			}
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(body[start:i]))
			start = i + 1
		}
	}
	if depth != 0 || quote != 0 {
		return "", nil, false, fmt.Errorf("unbalanced parentheses or quotes")
	}
	if rest := strings.TrimSpace(body[start:]); rest != "" || len(args) > 0 {
		args = append(args, rest)
	}
	return name, args, true, nil
}

// unquote reads a ClickHouse string literal 'like \'this\”.
func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", fmt.Errorf("want a quoted string, got %s", s)
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s)-1 {
			i++
			switch s[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case '0':
				c = 0
			default:
				c = s[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}
