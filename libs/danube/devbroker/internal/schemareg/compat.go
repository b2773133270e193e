package schemareg

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// Compatible returns why newDef may not follow oldDef under mode ("none",
// "backward", "forward" or "full"); nil means compatible. The rules are
// danube-schema's: full reports the backward problems first, and only those.
func Compatible(oldType, newType, mode string, oldDef, newDef []byte) []string {
	if mode == "none" {
		return nil
	}
	if oldType != newType {
		return []string{"Schema types must match (cannot change from Avro to JSON, etc.)"}
	}
	var backward, forward func(old, newer []byte) []string
	switch newType {
	case "json_schema":
		backward, forward = jsonBackward, jsonForward
	case "avro":
		backward, forward = avroBackward, avroForward
	default: // primitives, and protobuf which the development broker does not inspect
		return nil
	}
	switch mode {
	case "backward":
		return backward(oldDef, newDef)
	case "forward":
		return forward(oldDef, newDef)
	default:
		if errs := backward(oldDef, newDef); len(errs) > 0 {
			return errs
		}
		return forward(oldDef, newDef)
	}
}

type jsonDoc struct {
	props    map[string]any
	required []string
}

func parseJSONSchema(b []byte) (jsonDoc, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return jsonDoc{}, err
	}
	d := jsonDoc{}
	d.props, _ = raw["properties"].(map[string]any)
	if req, ok := raw["required"].([]any); ok {
		for _, f := range req {
			if s, ok := f.(string); ok {
				d.required = append(d.required, s)
			}
		}
	}
	return d, nil
}

func (d jsonDoc) has(f string) bool { _, ok := d.props[f]; return ok }

func (d jsonDoc) requires(f string) bool {
	for _, r := range d.required {
		if r == f {
			return true
		}
	}
	return false
}

// typeChanges lists shared properties whose "type" differs (both must declare one).
func typeChanges(old, newer jsonDoc) []string {
	var names []string
	for name := range old.props {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		np, ok := newer.props[name]
		if !ok {
			continue
		}
		ot, ok1 := typeOf(old.props[name])
		nt, ok2 := typeOf(np)
		if ok1 && ok2 && !reflect.DeepEqual(ot, nt) {
			out = append(out, name)
		}
	}
	return out
}

func typeOf(prop any) (any, bool) {
	m, ok := prop.(map[string]any)
	if !ok {
		return nil, false
	}
	t, ok := m["type"]
	return t, ok
}

func jsonBackward(oldDef, newDef []byte) []string {
	old, err1 := parseJSONSchema(oldDef)
	newer, err2 := parseJSONSchema(newDef)
	if err1 != nil || err2 != nil {
		return []string{fmt.Sprintf("Failed to parse JSON schema: %v", firstErr(err1, err2))}
	}
	var errs []string
	for _, f := range old.required {
		if !newer.has(f) {
			errs = append(errs, fmt.Sprintf("Backward incompatible: removed required field '%s'", f))
		}
	}
	for _, f := range newer.required {
		if old.has(f) && !old.requires(f) {
			errs = append(errs, fmt.Sprintf("Backward incompatible: made optional field '%s' required", f))
		}
	}
	for _, f := range typeChanges(old, newer) {
		errs = append(errs, fmt.Sprintf("Backward incompatible: changed type of field '%s'", f))
	}
	return errs
}

func jsonForward(oldDef, newDef []byte) []string {
	old, err1 := parseJSONSchema(oldDef)
	newer, err2 := parseJSONSchema(newDef)
	if err1 != nil || err2 != nil {
		return []string{fmt.Sprintf("Failed to parse JSON schema: %v", firstErr(err1, err2))}
	}
	var errs []string
	for _, f := range newer.required {
		if !old.has(f) {
			errs = append(errs, fmt.Sprintf("Forward incompatible: added new required field '%s'", f))
		}
	}
	for _, f := range typeChanges(old, newer) {
		errs = append(errs, fmt.Sprintf("Forward incompatible: changed type of field '%s'", f))
	}
	return errs
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// avro is a parsed Avro schema, enough for schema-resolution checks.
type avro struct {
	kind     string // primitive name, "record", "enum", "fixed", "array", "map", "union" or a named reference
	name     string
	fields   []avroField
	items    *avro
	variants []avro
	raw      any
}

type avroField struct {
	name       string
	schema     avro
	hasDefault bool
}

func parseAvro(v any) (avro, error) {
	switch t := v.(type) {
	case string:
		return avro{kind: t, raw: t}, nil
	case []any:
		u := avro{kind: "union", raw: t}
		for _, x := range t {
			a, err := parseAvro(x)
			if err != nil {
				return avro{}, err
			}
			u.variants = append(u.variants, a)
		}
		return u, nil
	case map[string]any:
		typ, _ := t["type"].(string)
		a := avro{kind: typ, raw: t}
		a.name, _ = t["name"].(string)
		switch typ {
		case "record", "error":
			a.kind = "record"
			fs, _ := t["fields"].([]any)
			for _, f := range fs {
				fm, ok := f.(map[string]any)
				if !ok {
					return avro{}, fmt.Errorf("record %s: field is not an object", a.name)
				}
				fs, err := parseAvro(fm["type"])
				if err != nil {
					return avro{}, err
				}
				name, _ := fm["name"].(string)
				_, hasDefault := fm["default"]
				a.fields = append(a.fields, avroField{name: name, schema: fs, hasDefault: hasDefault})
			}
		case "array":
			it, err := parseAvro(t["items"])
			if err != nil {
				return avro{}, err
			}
			a.items = &it
		case "map":
			it, err := parseAvro(t["values"])
			if err != nil {
				return avro{}, err
			}
			a.items = &it
		case "":
			// {"type": {...}} nests a schema.
			if inner, ok := t["type"]; ok {
				return parseAvro(inner)
			}
			return avro{}, fmt.Errorf("avro schema object without a type")
		}
		return a, nil
	}
	return avro{}, fmt.Errorf("unsupported avro schema %v", v)
}

var avroPromotions = map[[2]string]bool{
	{"long", "int"}: true, {"double", "float"}: true, {"double", "long"}: true,
	{"double", "int"}: true, {"string", "bytes"}: true, {"bytes", "string"}: true,
}

// avroReads reports whether data written with writer can be read with reader.
func avroReads(reader, writer avro) bool {
	if reflect.DeepEqual(reader.raw, writer.raw) {
		return true
	}
	if reader.kind == "union" || writer.kind == "union" {
		return true
	}
	if avroPromotions[[2]string{reader.kind, writer.kind}] {
		return true
	}
	switch {
	case reader.kind == "record" && writer.kind == "record":
		if reader.name != writer.name {
			return false
		}
		for _, rf := range reader.fields {
			found := false
			for _, wf := range writer.fields {
				if wf.name == rf.name {
					found = true
					break
				}
			}
			if found {
				continue
			}
			ok := rf.hasDefault
			if rf.schema.kind == "union" {
				ok = false
				for _, v := range rf.schema.variants {
					if v.kind == "null" {
						ok = true
					}
				}
			}
			if !ok {
				return false
			}
		}
		return true
	case (reader.kind == "array" && writer.kind == "array") || (reader.kind == "map" && writer.kind == "map"):
		return avroReads(*reader.items, *writer.items)
	}
	return reader.kind == writer.kind && reader.kind != "record" && reader.items == nil && len(reader.variants) == 0 && reader.name == writer.name
}

func parseAvroDef(b []byte) (avro, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return avro{}, err
	}
	return parseAvro(v)
}

func avroBackward(oldDef, newDef []byte) []string {
	old, err1 := parseAvroDef(oldDef)
	newer, err2 := parseAvroDef(newDef)
	if err := firstErr(err1, err2); err != nil {
		return []string{fmt.Sprintf("Backward incompatible: %v", err)}
	}
	if !avroReads(newer, old) {
		return []string{"Reader schema cannot read data written with writer schema"}
	}
	return nil
}

func avroForward(oldDef, newDef []byte) []string {
	old, err1 := parseAvroDef(oldDef)
	newer, err2 := parseAvroDef(newDef)
	if err := firstErr(err1, err2); err != nil {
		return []string{fmt.Sprintf("Forward incompatible: %v", err)}
	}
	if !avroReads(old, newer) {
		return []string{"Old schema cannot read data written with new schema"}
	}
	return nil
}
