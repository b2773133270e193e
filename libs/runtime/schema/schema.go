// Package schema is what the runtime knows of Danube's schema registry: the schema languages a
// connector's data may follow (JSON Schema, Avro), checking a payload against a schema before it
// is published, and a cache of the registry's schemas for sinks, which see each message's schema
// id and version.
package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// Type is a schema language (SCHEMA_TYPE).
type Type uint8

// Schema languages.
const (
	None       Type = iota // no schema: messages carry none (the default)
	JSONSchema             // JSON Schema (draft 2020-12 unless the schema says otherwise); payloads are JSON
	Avro                   // Apache Avro; payloads are Avro binary
)

var typeNames = config.Enum[Type]{{Value: None, Name: "none"}, {Value: JSONSchema, Name: "json_schema"}, {Value: Avro, Name: "avro"}}

func (t Type) String() string { return typeNames.Name(t) }

// UnmarshalText parses "none", "json_schema" or "avro".
func (t *Type) UnmarshalText(b []byte) error { return typeNames.Parse(t, b) }

// Danube returns the registry's name of t.
func (t Type) Danube() danube.SchemaType {
	switch t {
	case JSONSchema:
		return danube.SchemaJSON
	case Avro:
		return danube.SchemaAvro
	}
	return ""
}

// typeOf returns the Type of a registry schema type; false for the types connectors do not
// produce (bytes, string, number, protobuf).
func typeOf(t danube.SchemaType) (Type, bool) {
	switch t {
	case danube.SchemaJSON:
		return JSONSchema, true
	case danube.SchemaAvro:
		return Avro, true
	}
	return None, false
}

// Schema is a schema a connector's records follow: a source attaches one to its records
// (SourceRecord.Schema; one value shared by the records of a table, a new value when the table
// changes), the runtime registers it under the destination topic's subject.
type Schema struct {
	Type Type
	Text []byte // the definition: a JSON Schema document, or an Avro schema in JSON
}

// Fingerprint identifies s's text, to tell a changed schema from the same one again.
func (s *Schema) Fingerprint() string {
	sum := sha256.Sum256(s.Text)
	return hex.EncodeToString(sum[:])
}

// Compile checks s and returns its validator.
func (s *Schema) Compile() (*Validator, error) {
	switch s.Type {
	case JSONSchema:
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s.Text))
		if err != nil {
			return nil, fmt.Errorf("JSON Schema is not JSON: %w", err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("schema.json", doc); err != nil {
			return nil, err
		}
		js, err := c.Compile("schema.json")
		if err != nil {
			return nil, fmt.Errorf("invalid JSON Schema: %w", err)
		}
		return &Validator{json: js}, nil
	case Avro:
		as, err := avro.ParseBytes(s.Text)
		if err != nil {
			return nil, fmt.Errorf("invalid Avro schema: %w", err)
		}
		return &Validator{avro: as}, nil
	}
	return nil, fmt.Errorf("schema type %s has no validator", s.Type)
}

// Validator checks payloads against one schema. It is safe for concurrent use.
type Validator struct {
	json *jsonschema.Schema
	avro avro.Schema
}

// Avro returns the Avro schema (nil for JSON Schema).
func (v *Validator) Avro() avro.Schema { return v.avro }

// Validate reports why payload does not follow the schema (nil: it does).
func (v *Validator) Validate(payload []byte) error {
	if v.avro != nil {
		_, err := v.decodeAvro(payload)
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := v.json.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return errors.New(describe(ve))
		}
		return err
	}
	return nil
}

// decodeAvro decodes payload, which must be exactly one value of the schema: avro.Unmarshal
// takes a payload cut short for one padded with zeros, and ignores what follows the value.
func (v *Validator) decodeAvro(payload []byte) (any, error) {
	r := avro.NewReader(nil, 0).Reset(payload)
	var out any
	r.ReadVal(v.avro, &out)
	if r.Error != nil {
		return nil, fmt.Errorf("not Avro of the schema: %w", r.Error)
	}
	if r.Peek(); r.Error == nil {
		return nil, errors.New("not Avro of the schema: bytes follow the value")
	}
	return out, nil
}

// describe says where and why a document fails its JSON Schema, in one line.
func describe(ve *jsonschema.ValidationError) string {
	leaves := ve.BasicOutput().Errors
	var msgs []string
	for _, e := range leaves {
		if e.Error == nil {
			continue
		}
		msg, _ := json.Marshal(e.Error)
		where := e.InstanceLocation
		if where == "" {
			where = "/"
		}
		msgs = append(msgs, fmt.Sprintf("at %s: %s", where, bytes.Trim(msg, `"`)))
	}
	if len(msgs) == 0 {
		return ve.Error()
	}
	slices.Sort(msgs) // the validator's order varies from run to run: a reason must not
	msgs = slices.Compact(msgs)
	if len(msgs) > 5 {
		msgs = append(msgs[:5], fmt.Sprintf("and %d more", len(msgs)-5))
	}
	return "does not match the schema: " + strings.Join(msgs, "; ")
}
