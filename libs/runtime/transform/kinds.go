package transform

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// builder is a step type's configuration: its fields are the TRANSFORM_<NAME>_* variables; build
// checks what the tags cannot and returns the step (pre is the variable prefix, for errors).
type builder interface {
	build(side Side, pre string) (func(*state) (bool, error), []error)
}

// kind is a step type.
type kind struct {
	name   string
	config func() builder
	fields bool // works on the payload's fields (see step.fields)
}

// kinds are the step types, in the order --help lists them.
var kinds = []kind{
	{name: "filter", config: func() builder { return &filterConfig{} }},
	{name: "map", config: func() builder { return &mapConfig{} }},
	{name: "route", config: func() builder { return &routeConfig{} }},
	{name: "key", config: func() builder { return &keyConfig{} }},
	{name: "attributes", config: func() builder { return &attributesConfig{} }},
	{name: "drop", config: func() builder { return &dropConfig{} }, fields: true},
	{name: "keep", config: func() builder { return &keepConfig{} }, fields: true},
	{name: "rename", config: func() builder { return &renameConfig{} }, fields: true},
	{name: "mask", config: func() builder { return &maskConfig{} }, fields: true},
	{name: "insert", config: func() builder { return &insertConfig{} }, fields: true},
	{name: "flatten", config: func() builder { return &flattenConfig{} }, fields: true},
	{name: "unwrap", config: func() builder { return &unwrapConfig{} }, fields: true},
}

func kindOf(name string) (kind, bool) {
	i := slices.IndexFunc(kinds, func(k kind) bool { return k.name == name })
	if i < 0 {
		return kind{}, false
	}
	return kinds[i], true
}

func kindNames() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name
	}
	return out
}

// variables lists the variables of k's type.
func (k kind) variables() []string {
	t := reflect.TypeOf(k.config()).Elem()
	out := []string{"TYPE"}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		out = append(out, name)
	}
	return out
}

type filterConfig struct {
	Expr string `env:"EXPR,required" desc:"CEL, bool; the record is kept when true, dropped (and acked or committed) when false"`
}

func (c *filterConfig) build(side Side, pre string) (func(*state) (bool, error), []error) {
	return exprStep(side, pre, c.Expr, boolResult, filterStep)
}

type mapConfig struct {
	Expr string `env:"EXPR,required" desc:"CEL; the new payload: a map, list, number or bool as JSON, a string or bytes as they are"`
}

func (c *mapConfig) build(side Side, pre string) (func(*state) (bool, error), []error) {
	return exprStep(side, pre, c.Expr, nil, mapStep)
}

type routeConfig struct {
	Expr string `env:"EXPR,required" desc:"sources only: CEL, string; the destination topic, /namespace/topic"`
}

func (c *routeConfig) build(side Side, pre string) (func(*state) (bool, error), []error) {
	return exprStep(side, pre, c.Expr, stringResult, routeStep)
}

type keyConfig struct {
	Expr string `env:"EXPR,required" desc:"CEL, string; the routing key"`
}

func (c *keyConfig) build(side Side, pre string) (func(*state) (bool, error), []error) {
	return exprStep(side, pre, c.Expr, stringResult, keyStep)
}

type attributesConfig struct {
	Expr string `env:"EXPR,required" desc:"CEL, map; each entry sets an attribute (a string as it is, other values as JSON; null removes it)"`
}

func (c *attributesConfig) build(side Side, pre string) (func(*state) (bool, error), []error) {
	return exprStep(side, pre, c.Expr, mapResult, attributesStep)
}

// exprStep compiles src and makes the step of it.
func exprStep(side Side, pre, src string, want []*cel.Type, step func(*expression) func(*state) (bool, error)) (func(*state) (bool, error), []error) {
	x, err := compile(side, src, want...)
	if err != nil {
		return nil, []error{config.Invalid(pre+"EXPR", src, err.Error())}
	}
	return step(x), nil
}

type dropConfig struct {
	Fields []string `env:"FIELDS,required" envSeparator:"," desc:"fields to remove, comma-separated paths (customer.email)"`
}

func (c *dropConfig) build(_ Side, pre string) (func(*state) (bool, error), []error) {
	paths, errs := parsePaths(pre+"FIELDS", c.Fields)
	return dropStep(paths), errs
}

type keepConfig struct {
	Fields []string `env:"FIELDS,required" envSeparator:"," desc:"the only fields to keep, comma-separated paths"`
}

func (c *keepConfig) build(_ Side, pre string) (func(*state) (bool, error), []error) {
	paths, errs := parsePaths(pre+"FIELDS", c.Fields)
	return keepStep(paths), errs
}

// parsePaths checks a list of field paths.
func parsePaths(variable string, specs []string) ([]path, []error) {
	var (
		out  []path
		errs []error
	)
	for _, s := range specs {
		s = strings.TrimSpace(s)
		p := parsePath(s)
		if slices.Contains(p, "") {
			errs = append(errs, config.Invalid(variable, s, "want a field name or a dotted path (a.b.c)"))
			continue
		}
		out = append(out, p)
	}
	return out, errs
}

type renameConfig struct {
	Fields []string `env:"FIELDS,required" envSeparator:"," desc:"comma-separated old:new pairs; old is a path, new a name in the same object"`
}

func (c *renameConfig) build(_ Side, pre string) (func(*state) (bool, error), []error) {
	var (
		renames []rename
		errs    []error
	)
	for _, spec := range c.Fields {
		from, to, ok := strings.Cut(strings.TrimSpace(spec), ":")
		p := parsePath(from)
		if !ok || to == "" || slices.Contains(p, "") {
			errs = append(errs, config.Invalid(pre+"FIELDS", spec, "want old:new (old a field or a dotted path, new a name)"))
			continue
		}
		renames = append(renames, rename{from: p, to: to})
	}
	return renameStep(renames), errs
}

// MaskMode is mask's MODE.
type MaskMode uint8

const (
	// MaskRedact replaces the value with REPLACEMENT.
	MaskRedact MaskMode = iota
	// MaskHash replaces the value with the hex HMAC-SHA256 of it under HASH_KEY: equal values
	// still join, and without the key nobody can test a guess.
	MaskHash
)

var maskModes = config.Enum[MaskMode]{{Value: MaskRedact, Name: "redact"}, {Value: MaskHash, Name: "hash"}}

func (m MaskMode) String() string { return maskModes.Name(m) }

// UnmarshalText parses "redact" or "hash".
func (m *MaskMode) UnmarshalText(b []byte) error { return maskModes.Parse(m, b) }

type maskConfig struct {
	Fields      []string      `env:"FIELDS,required" envSeparator:"," desc:"fields to mask, comma-separated paths (null values stay null)"`
	Mode        MaskMode      `env:"MODE" envDefault:"redact" desc:"redact (replace with REPLACEMENT) or hash (hex HMAC-SHA256 under HASH_KEY: equal values still join)"`
	Replacement string        `env:"REPLACEMENT" envDefault:"****" desc:"the text a redacted value becomes"`
	HashKey     config.Secret `env:"HASH_KEY" desc:"the HMAC key of MODE=hash (or HASH_KEY_FILE); at least 16 bytes"`
}

// minHashKey is the shortest HASH_KEY accepted: a short key can be guessed, and then every hashed
// value tested against a dictionary.
const minHashKey = 16

func (c *maskConfig) build(_ Side, pre string) (func(*state) (bool, error), []error) {
	paths, errs := parsePaths(pre+"FIELDS", c.Fields)
	m := &masker{replacement: c.Replacement}
	switch {
	case c.Mode == MaskHash && len(c.HashKey.Reveal()) < minHashKey:
		errs = append(errs, config.Invalid(pre+"HASH_KEY", c.HashKey, fmt.Sprintf(
			"MODE=hash needs a key of at least %d bytes (a hash without a secret key is reversed by trying every email or phone number)", minHashKey)))
	case c.Mode == MaskHash:
		m.key = []byte(c.HashKey.Reveal())
	case c.HashKey.IsSet():
		errs = append(errs, config.Invalid(pre+"HASH_KEY", c.HashKey, "set, but MODE is redact; set MODE=hash to hash"))
	}
	return maskStep(paths, m), errs
}

type insertConfig struct {
	Static []string `env:"STATIC" envSeparator:"," desc:"comma-separated name:value pairs set as string fields"`
	Expr   string   `env:"EXPR" desc:"CEL, map; its entries are set as fields (computed: {\"danube_topic\": topic, \"published\": publish_time})"`
}

func (c *insertConfig) build(side Side, pre string) (func(*state) (bool, error), []error) {
	var errs []error
	var static [][2]string // in the order given: they are set, and written, in it
	for _, spec := range c.Static {
		name, value, ok := strings.Cut(spec, ":")
		if !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, config.Invalid(pre+"STATIC", spec, "want name:value"))
			continue
		}
		static = append(static, [2]string{strings.TrimSpace(name), value})
	}
	var x *expression
	switch {
	case c.Expr != "":
		var err error
		if x, err = compile(side, c.Expr, mapResult...); err != nil {
			errs = append(errs, config.Invalid(pre+"EXPR", c.Expr, err.Error()))
		}
	case len(c.Static) == 0:
		errs = append(errs, config.Invalid(pre+"STATIC", "", "an insert step needs STATIC, EXPR or both"))
	}
	return insertStep(static, x), errs
}

type flattenConfig struct {
	Delimiter string `env:"DELIMITER" envDefault:"." desc:"what joins nested names ({\"a\":{\"b\":1}} becomes {\"a.b\":1}); _ suits SQL columns"`
}

func (c *flattenConfig) build(_ Side, pre string) (func(*state) (bool, error), []error) {
	if c.Delimiter == "" {
		return nil, []error{config.Invalid(pre+"DELIMITER", "", "must not be empty")}
	}
	return flattenStep(c.Delimiter), nil
}

var deletesNames = config.Enum[Deletes]{
	{Value: DeletesDrop, Name: "drop"}, {Value: DeletesRewrite, Name: "rewrite"}, {Value: DeletesTombstone, Name: "tombstone"},
}

func (d Deletes) String() string { return deletesNames.Name(d) }

// UnmarshalText parses "drop", "rewrite" or "tombstone".
func (d *Deletes) UnmarshalText(b []byte) error { return deletesNames.Parse(d, b) }

type unwrapConfig struct {
	Deletes      Deletes  `env:"DELETES" envDefault:"drop" desc:"a delete event is dropped, rewritten (the old row with DELETED_FIELD true, every other row false) or a tombstone (empty payload, the row's key)"`
	OpField      string   `env:"OP_FIELD" desc:"field of the row that gets the operation (INSERT, UPDATE, DELETE, READ; Debezium's c, u, d, r)"`
	OpAttribute  string   `env:"OP_ATTRIBUTE" envDefault:"op" emptyDisables:"true" desc:"attribute that gets the operation; empty: none"`
	DeletedField string   `env:"DELETED_FIELD" envDefault:"__deleted" desc:"with DELETES=rewrite, the bool field that marks a deleted row"`
	AddFields    []string `env:"ADD_FIELDS" envSeparator:"," desc:"event fields copied into the row: path (named __ + its last name: source.lsn → __lsn) or path:name"`
}

func (c *unwrapConfig) build(_ Side, pre string) (func(*state) (bool, error), []error) {
	u := &unwrapper{deletes: c.Deletes, opField: c.OpField, opAttribute: c.OpAttribute, deletedField: c.DeletedField}
	var errs []error
	for _, spec := range c.AddFields {
		a, err := parseAdded(strings.TrimSpace(spec))
		if err != nil {
			errs = append(errs, config.Invalid(pre+"ADD_FIELDS", spec, err.Error()))
			continue
		}
		u.add = append(u.add, a)
	}
	if c.Deletes == DeletesRewrite && c.DeletedField == "" {
		errs = append(errs, config.Invalid(pre+"DELETED_FIELD", "", "DELETES=rewrite needs a field name"))
	}
	return u.apply, errs
}
