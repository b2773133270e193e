// Package config loads a connector's configuration from the environment only.
//
// A connector's config is a struct that embeds the runtime's common struct (runtime.SinkConfig or
// runtime.SourceConfig) and adds its own fields with `env`, `envDefault` and `desc` tags. Load parses
// all of it with github.com/caarlos0/env, reads NAME_FILE for every Secret field, runs every
// Validate method it finds and reports every problem at once; Usage and Print are generated from the
// same tags so the documentation cannot drift from the code.
package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/caarlos0/env/v10"
)

// Validator is implemented by config structs (at any nesting level) that check more than types: a
// range, an enum, a combination. Return one *FieldError per problem, joined with errors.Join.
type Validator interface{ Validate() error }

// FieldError is one invalid or missing variable.
type FieldError struct {
	Var    string // variable name, e.g. "BATCH_SIZE"
	Value  string // offending value as given ("" when missing); "[REDACTED]" for secrets
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Var + ": " + e.Reason
	}
	return fmt.Sprintf("%s=%q: %s", e.Var, e.Value, e.Reason)
}

// Invalid builds a FieldError; Validate methods use it so messages look the same everywhere.
func Invalid(variable string, value any, reason string) error {
	return &FieldError{Var: variable, Value: fmt.Sprint(value), Reason: reason}
}

// Error is every problem Load found; it unwraps to the individual *FieldError values.
type Error struct{ Problems []error }

func (e *Error) Error() string {
	var b strings.Builder
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "invalid configuration (%d %s):", len(e.Problems), noun)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the problems to errors.Is and errors.As.
func (e *Error) Unwrap() []error { return e.Problems }

// Load fills cfg (a pointer to a struct) from environ (os.Environ() form; nil means os.Environ()).
func Load(cfg any, environ []string) error {
	fields, ok := fieldsOf(cfg)
	if !ok {
		return fmt.Errorf("config: Load needs a non-nil pointer to a struct, got %T", cfg)
	}
	vars := env.ToMap(environOrOS(environ))
	declared, byName := map[string]bool{}, map[string][]field{}
	for _, f := range fields {
		declared[f.Key] = true
		byName[f.Name] = append(byName[f.Name], f)
	}
	problems := readSecretFiles(fields, declared, vars)
	// A variable documented as "empty disables" that is set to "" must not get its default.
	var emptied []field
	for _, f := range fields {
		if v, set := vars[f.Key]; set && v == "" && f.EmptyDisables {
			emptied = append(emptied, f)
		}
	}
	if err := applyDefaults(cfg, declared, vars); err != nil {
		return err
	}
	err := env.ParseWithOptions(cfg, env.Options{Environment: vars})
	for _, f := range emptied {
		f.value.Set(reflect.Zero(f.value.Type()))
	}
	var agg env.AggregateError
	if errors.As(err, &agg) {
		for _, e := range agg.Errors {
			problems = append(problems, describe(e, byName, vars, declared))
		}
	} else if err != nil {
		problems = append(problems, err)
	}
	for _, f := range fields {
		if f.Required && !f.NotEmpty && vars[f.Key] == "" && !f.HasDefault {
			if _, set := vars[f.Key]; set { // env accepts "required" but empty; we do not
				problems = append(problems, &FieldError{Var: f.Key, Reason: "required, but empty"})
			}
		}
	}
	problems = append(problems, expand(fields, vars, problems)...)
	problems = append(problems, validateParsed(cfg, problems)...)
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// expand runs the Expanders among fields whose own variable parsed.
func expand(fields []field, vars map[string]string, problems []error) []error {
	bad := badVars(problems)
	var out []error
	for _, f := range fields {
		if x, ok := f.value.Addr().Interface().(Expander); ok && !bad[f.Key] {
			out = append(out, x.Expand(vars)...)
		}
	}
	return out
}

// badVars returns the variables problems name.
func badVars(problems []error) map[string]bool {
	bad := map[string]bool{}
	for _, p := range problems {
		var fe *FieldError
		if errors.As(p, &fe) {
			bad[fe.Var] = true
		}
	}
	return bad
}

// readSecretFiles reads the NAME_FILE variants of secrets into vars: the file's content (without a
// trailing newline) wins over nothing, and setting both is a mistake worth reporting.
func readSecretFiles(fields []field, declared map[string]bool, vars map[string]string) (problems []error) {
	for _, f := range fields {
		if !f.Secret || declared[f.Key+"_FILE"] { // a struct that declares NAME_FILE handles it itself
			continue
		}
		path, ok := vars[f.Key+"_FILE"]
		if !ok || path == "" {
			continue
		}
		if v, both := vars[f.Key]; both && v != "" {
			problems = append(problems, &FieldError{Var: f.Key + "_FILE", Value: path, Reason: "set together with " + f.Key + "; use one"})
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, &FieldError{Var: f.Key + "_FILE", Value: path, Reason: "cannot read: " + errReason(err)})
			continue
		}
		vars[f.Key] = strings.TrimRight(string(b), "\r\n")
	}
	return problems
}

// applyDefaults gives vars the config's own defaults (Defaulter) as if set, where env would apply
// the tag's: the variable is unset or empty (an emptied "empty disables" variable is zeroed later).
func applyDefaults(cfg any, declared map[string]bool, vars map[string]string) error {
	d, ok := cfg.(Defaulter)
	if !ok {
		return nil
	}
	for key, def := range d.EnvDefaults() {
		if !declared[key] {
			return fmt.Errorf("config: EnvDefaults of %T names %s, which no field declares", cfg, key)
		}
		if vars[key] == "" {
			vars[key] = def
		}
	}
	return nil
}

// validateParsed runs cfg's Validate methods. They see zero values where parsing failed, so what
// they say about a variable already in problems is dropped.
func validateParsed(cfg any, problems []error) []error {
	bad := badVars(problems)
	var out []error
	for _, p := range validate(reflect.ValueOf(cfg)) {
		var fe *FieldError
		if errors.As(p, &fe) && bad[fe.Var] {
			continue
		}
		out = append(out, p)
	}
	return out
}

func describe(err error, byName map[string][]field, vars map[string]string, declared map[string]bool) error {
	var (
		notSet env.EnvVarIsNotSetError
		empty  env.EmptyEnvVarError
		parse  env.ParseError
	)
	switch {
	case errors.As(err, &notSet):
		return &FieldError{Var: notSet.Key, Reason: "required, but not set" + misspelt(notSet.Key, vars, declared)}
	case errors.As(err, &empty):
		return &FieldError{Var: empty.Key, Reason: "required, but empty"}
	case errors.As(err, &parse):
		for _, f := range byName[parse.Name] {
			if f.value.Type() != parse.Type {
				continue
			}
			v := vars[f.Key]
			if f.Secret {
				v = redacted
			}
			return &FieldError{Var: f.Key, Value: v, Reason: parseReason(f.value.Type(), parse.Err)}
		}
	}
	return err
}

// misspelt names a set variable that no field declares and that looks like a misspelling of the
// required variable key (PG_HOTS for PG_HOST), as a hint: "" when there is none.
func misspelt(key string, vars map[string]string, declared map[string]bool) string {
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		if declared[name] || strings.ToUpper(name) != name || closest(name, map[string]bool{key: true}) == "" {
			continue
		}
		return " (" + name + " is set: did you mean " + key + "?)"
	}
	return ""
}

// parseReason says what a value of type t looks like when strconv rejected it ("invalid syntax"
// alone does not tell the operator what to type).
func parseReason(t reflect.Type, err error) string {
	var num *strconv.NumError
	if !errors.As(err, &num) {
		return errReason(err)
	}
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "want an integer (" + errReason(err) + ")"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "want a non-negative integer (" + errReason(err) + ")"
	case reflect.Float32, reflect.Float64:
		return "want a number (" + errReason(err) + ")"
	case reflect.Bool:
		return "want true or false"
	}
	return errReason(err)
}

// errReason trims the strconv noise ("strconv.ParseInt: parsing \"x\": invalid syntax").
func errReason(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "strconv.") {
		return s[i+2:]
	}
	return s
}

// validate calls Validate on every struct, innermost first. An embedded struct's Validate is
// promoted to its parent, so the same problem can be reported twice: duplicates are dropped.
func validate(cfg reflect.Value) []error {
	var out []error
	seen := map[string]bool{}
	var visit func(v reflect.Value)
	visit = func(v reflect.Value) {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Field(i); f.CanSet() {
				visit(f)
			}
		}
		if !v.CanAddr() {
			return
		}
		if val, ok := v.Addr().Interface().(Validator); ok {
			for _, e := range flatten(val.Validate()) {
				if !seen[e.Error()] {
					seen[e.Error()] = true
					out = append(out, e)
				}
			}
		}
	}
	visit(cfg)
	return out
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func environOrOS(environ []string) []string {
	if environ == nil {
		return os.Environ()
	}
	return environ
}
