package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Enum names the values of an enum type: the first name of a value is its canonical one, later
// entries for the same value are accepted aliases. It gives every enum setting the same parsing
// (case-insensitive, surrounding space ignored) and the same error, which lists what is accepted:
//
//	var modes = config.Enum[Mode]{{Value: ClientMode, Name: "client"}, {Value: ServerMode, Name: "server"}}
//
//	func (m Mode) String() string                { return modes.Name(m) }
//	func (m *Mode) UnmarshalText(b []byte) error { return modes.Parse(m, b) }
type Enum[T comparable] []EnumValue[T]

// EnumValue is one name of an enum value.
type EnumValue[T comparable] struct {
	Value T
	Name  string
}

// Name returns v's canonical name, or "Type(v)" for a value without one (as fmt would print it
// without the String method that calls Name).
func (e Enum[T]) Name(v T) string {
	for _, n := range e {
		if n.Value == v {
			return n.Name
		}
	}
	rv := reflect.ValueOf(v)
	return rv.Type().Name() + "(" + underlying(rv) + ")"
}

// Parse sets *dst to the value named by text, compared case-insensitively after trimming space. On
// an unknown name it leaves *dst alone and returns `want "a", "b" or "c"` (the loader prefixes the
// variable and the value).
func (e Enum[T]) Parse(dst *T, text []byte) error {
	s := strings.TrimSpace(string(text))
	for _, n := range e {
		if strings.EqualFold(s, n.Name) {
			*dst = n.Value
			return nil
		}
	}
	return errors.New("want " + e.names())
}

// names lists every accepted name, quoted: "a", "b" or "c".
func (e Enum[T]) names() string {
	q := make([]string, len(e))
	for i, n := range e {
		q[i] = strconv.Quote(n.Name)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// underlying prints the value of v's underlying type, never calling a String method (which may be
// the caller of Name).
func underlying(v reflect.Value) string {
	switch {
	case v.CanInt():
		return strconv.FormatInt(v.Int(), 10)
	case v.CanUint():
		return strconv.FormatUint(v.Uint(), 10)
	case v.Kind() == reflect.String:
		return strconv.Quote(v.String())
	}
	return fmt.Sprintf("%#v", v.Interface())
}
