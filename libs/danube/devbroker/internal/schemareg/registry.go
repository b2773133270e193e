// Package schemareg is the development broker's schema registry model:
// subjects with one stable schema_id each, numbered versions, fingerprints,
// compatibility modes and the JSON envelope GetSchema returns. It follows the
// rules of danube-schema in broker v0.15; it has no locking of its own.
package schemareg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Registry holds every subject. Its fields are exported so the broker can
// persist it as JSON.
type Registry struct {
	NextID   uint64              `json:"next_id"`
	Subjects map[string]*Subject `json:"subjects"`
}

// Subject is a named schema history; its ID identifies the subject, not a version.
type Subject struct {
	Name     string     `json:"name"`
	ID       uint64     `json:"id"`
	Compat   string     `json:"compat"`
	Versions []*Version `json:"versions"`
}

// Version is one registered schema definition.
type Version struct {
	Version     uint32   `json:"version"`
	Type        string   `json:"type"`
	Definition  []byte   `json:"definition"`
	Fingerprint string   `json:"fingerprint"`
	Description string   `json:"description,omitempty"`
	CreatedBy   string   `json:"created_by,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	CreatedAt   uint64   `json:"created_at"`
	Deleted     bool     `json:"deleted,omitempty"`
}

// New returns an empty registry; schema ids start at 1.
func New() *Registry { return &Registry{NextID: 1, Subjects: map[string]*Subject{}} }

// Subject returns the named subject or nil.
func (r *Registry) Subject(name string) *Subject { return r.Subjects[name] }

// ByID returns the subject owning schema id, or nil.
func (r *Registry) ByID(id uint64) *Subject {
	for _, s := range r.Subjects {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Latest is the newest version that was not deleted, or nil.
func (s *Subject) Latest() *Version {
	for i := len(s.Versions) - 1; i >= 0; i-- {
		if !s.Versions[i].Deleted {
			return s.Versions[i]
		}
	}
	return nil
}

// Version returns version v unless it is unknown or deleted.
func (s *Subject) Version(v uint32) *Version {
	for _, sv := range s.Versions {
		if sv.Version == v && !sv.Deleted {
			return sv
		}
	}
	return nil
}

// NormalizeType maps wire type names and their aliases to canonical names.
func NormalizeType(t string) (string, error) {
	switch strings.ToLower(t) {
	case "bytes":
		return "bytes", nil
	case "string":
		return "string", nil
	case "number", "int", "int64", "float", "double":
		return "number", nil
	case "avro":
		return "avro", nil
	case "json_schema", "json":
		return "json_schema", nil
	case "protobuf", "proto":
		return "protobuf", nil
	}
	//nolint:staticcheck // ST1005: the text is the real broker's, which clients see verbatim
	return "", fmt.Errorf("Unknown schema type: %s", t)
}

// NormalizeCompat parses a compatibility mode, case-insensitively.
func NormalizeCompat(m string) (string, bool) {
	switch strings.ToLower(m) {
	case "none", "backward", "forward", "full":
		return strings.ToLower(m), true
	}
	return "", false
}

// ModeName is the Debug form of a mode used in the broker's error texts.
func ModeName(mode string) string {
	if mode == "" {
		return ""
	}
	return strings.ToUpper(mode[:1]) + mode[1:]
}

// Fingerprint is the type name for primitives and sha256 over canonical JSON
// (sorted keys, no insignificant whitespace) for JSON Schema and Avro.
func Fingerprint(typ string, def []byte) (string, error) {
	switch typ {
	case "bytes", "string", "number":
		return typ, nil
	case "json_schema", "avro":
		canon, err := canonicalJSON(def)
		if err != nil {
			return "", fmt.Errorf("invalid %s definition: %w", typ, err)
		}
		sum := sha256.Sum256(canon)
		return "sha256:" + hex.EncodeToString(sum[:]), nil
	default:
		sum := sha256.Sum256(def)
		return "sha256:" + hex.EncodeToString(sum[:]), nil
	}
}

func canonicalJSON(b []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after the schema")
	}
	var out bytes.Buffer
	e := json.NewEncoder(&out)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(out.Bytes(), "\n"), nil
}

// Register adds a version, or returns the existing version with the same
// fingerprint (isNew false). A new version must be compatible with the latest
// one under the subject's mode.
func (r *Registry) Register(subject, schemaType string, def []byte, description, createdBy string, tags []string, now time.Time) (s *Subject, v *Version, isNew bool, err error) {
	typ, err := NormalizeType(schemaType)
	if err != nil {
		return nil, nil, false, err
	}
	fp, err := Fingerprint(typ, def)
	if err != nil {
		return nil, nil, false, err
	}
	s = r.Subjects[subject]
	if s != nil {
		for _, sv := range s.Versions {
			if sv.Fingerprint == fp && !sv.Deleted {
				return s, sv, false, nil
			}
		}
		if l := s.Latest(); l != nil && s.Compat != "none" {
			if errs := Compatible(l.Type, typ, s.Compat, l.Definition, def); len(errs) > 0 {
				//nolint:staticcheck // ST1005: the text is the real broker's, which clients see verbatim
				return nil, nil, false, fmt.Errorf("Schema is not compatible with subject '%s' (mode: %s): %s",
					subject, ModeName(s.Compat), strings.Join(errs, "; "))
			}
		}
	} else {
		s = &Subject{Name: subject, ID: r.NextID, Compat: "backward"}
		r.NextID++
		r.Subjects[subject] = s
	}
	n := uint32(1)
	if k := len(s.Versions); k > 0 {
		n = s.Versions[k-1].Version + 1
	}
	v = &Version{
		Version:     n,
		Type:        typ,
		Definition:  append([]byte(nil), def...),
		Fingerprint: fp,
		Description: description,
		CreatedBy:   createdBy,
		Tags:        append([]string(nil), tags...),
		CreatedAt:   uint64(now.Unix()),
	}
	s.Versions = append(s.Versions, v)
	return s, v, true, nil
}

// Envelope is the serde_json form of the real broker's internal schema enum,
// which GetSchemaResponse.schema_definition carries instead of the raw bytes.
// Struct fields keep serde's declaration order.
func Envelope(v *Version) []byte {
	type rawSchema struct {
		RawSchema   string `json:"raw_schema"`
		Fingerprint string `json:"fingerprint"`
	}
	type rawProto struct {
		RawProto    string `json:"raw_proto"`
		MessageName string `json:"message_name"`
		Fingerprint string `json:"fingerprint"`
	}
	var out any
	switch v.Type {
	case "bytes":
		out = "Bytes"
	case "string":
		out = "String"
	case "number":
		out = "Number"
	case "json_schema":
		out = struct {
			JSONSchema rawSchema `json:"JsonSchema"`
		}{rawSchema{string(v.Definition), v.Fingerprint}}
	case "avro":
		out = struct {
			Avro rawSchema `json:"Avro"`
		}{rawSchema{string(v.Definition), v.Fingerprint}}
	case "protobuf":
		out = struct {
			Protobuf rawProto `json:"Protobuf"`
		}{rawProto{string(v.Definition), "DefaultMessage", v.Fingerprint}}
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(out)
	return bytes.TrimRight(b.Bytes(), "\n")
}
