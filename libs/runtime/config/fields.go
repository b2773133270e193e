package config

import (
	"encoding"
	"reflect"
	"strings"
)

// field describes one environment variable of a config struct, as the env parser sees it.
type field struct {
	Key        string // full variable name, prefixes applied
	Name       string // Go field name (what env.ParseError reports)
	Default    string
	HasDefault bool
	Required   bool
	NotEmpty   bool
	Desc       string
	Secret     bool
	// EmptyDisables: set to "" the variable turns its feature off rather than taking the default
	// (tag emptyDisables:"true").
	EmptyDisables bool
	Type          string
	value         reflect.Value // the field itself (addressable)
}

var (
	secretType          = reflect.TypeOf(Secret{})
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// walk lists the variables of the struct pointed to by v, following embedded and nested structs and
// envPrefix exactly as github.com/caarlos0/env does.
func walk(v reflect.Value, prefix string, out *[]field) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf, fv := t.Field(i), v.Field(i)
		if !fv.CanSet() {
			continue
		}
		tag := sf.Tag.Get("env")
		key, opts, _ := strings.Cut(tag, ",")
		if key == "" {
			switch {
			case fv.Kind() == reflect.Pointer && !fv.IsNil() && fv.Elem().Kind() == reflect.Struct:
				walk(fv.Elem(), prefix+sf.Tag.Get("envPrefix"), out)
			case fv.Kind() == reflect.Struct && !reflect.PointerTo(sf.Type).Implements(textUnmarshalerType):
				walk(fv, prefix+sf.Tag.Get("envPrefix"), out)
			}
			continue
		}
		def, hasDef := sf.Tag.Lookup("envDefault")
		f := field{
			Key: prefix + key, Name: sf.Name, Default: def, HasDefault: hasDef,
			Desc: sf.Tag.Get("desc"), Secret: sf.Type == secretType, Type: typeName(sf.Type), value: fv,
			EmptyDisables: sf.Tag.Get("emptyDisables") == "true",
		}
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "required":
				f.Required = true
			case "notEmpty":
				f.NotEmpty = true
			}
		}
		*out = append(*out, f)
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == secretType:
		return "secret"
	case t == reflect.TypeOf(Millis(0)):
		return "milliseconds"
	case t == reflect.TypeOf(URL("")):
		return "url"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return "string" // an enum or a parsed value: what the user types is text
	}
	return t.Kind().String()
}

// Defaulter is implemented by a config struct that gives a variable of a struct it embeds a
// default of its own (a sink whose natural batch is not the runtime's BATCH_SIZE): EnvDefaults maps
// variable names to defaults that replace their envDefault tags in Load, Usage and Print.
type Defaulter interface{ EnvDefaults() map[string]string }

// fieldsOf lists the variables of cfg, which must be a non-nil pointer to a struct, with the
// defaults of a Defaulter applied.
func fieldsOf(cfg any) ([]field, bool) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	var out []field
	walk(v.Elem(), "", &out)
	if d, ok := cfg.(Defaulter); ok {
		defaults := d.EnvDefaults()
		for i := range out {
			if def, ok := defaults[out[i].Key]; ok {
				out[i].Default, out[i].HasDefault = def, true
			}
		}
	}
	return out, true
}
