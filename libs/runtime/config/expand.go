package config

import (
	"io"
	"reflect"
)

// Expander is a variable whose value names further variables: TRANSFORMS=unwrap,mask names steps
// configured by TRANSFORM_UNWRAP_* and TRANSFORM_MASK_*. Struct tags cannot declare those, so the
// value declares them itself. Load calls Expand with every variable set once the struct is parsed,
// and reports its problems with the others; Usage appends ExpandUsage; Print and LogValue list
// Expanded.
type Expander interface {
	// Expand reads and checks the variables the value names, one problem per error.
	Expand(vars map[string]string) []error
	// ExpandUsage documents the variables the value may name.
	ExpandUsage(w io.Writer) error
	// Expanded lists the variables Expand read, as NAME and value, secrets redacted.
	Expanded() [][2]string
}

// Unreader is an Expander that knows the variables of its namespace that it did not read
// (TRANSFORM_MASK_FIELDS set while TRANSFORMS names no step mask): Warnings reports a variable that
// every Unreader of the config left unread, with the Unreader's words (variable → warning).
type Unreader interface {
	Unread() map[string]string
}

var expanderType = reflect.TypeOf((*Expander)(nil)).Elem()

// expanders returns the fields of fields whose value is an Expander.
func expanders(fields []field) []Expander {
	var out []Expander
	for _, f := range fields {
		if f.value.CanAddr() && f.value.Addr().Type().Implements(expanderType) {
			out = append(out, f.value.Addr().Interface().(Expander))
		}
	}
	return out
}
