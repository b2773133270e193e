package danube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/danube-messaging/danube-connect-go/proto/schemapb"
)

// SchemaType is the broker's name for a schema language.
type SchemaType string

// Schema types the broker accepts.
const (
	SchemaBytes    SchemaType = "bytes"
	SchemaString   SchemaType = "string"
	SchemaNumber   SchemaType = "number"
	SchemaAvro     SchemaType = "avro"
	SchemaJSON     SchemaType = "json_schema"
	SchemaProtobuf SchemaType = "protobuf"
)

// Schema is one version of a registered subject.
type Schema struct {
	ID                uint64 // identifies the subject, not the version
	Version           uint32
	Subject           string
	Type              SchemaType
	Definition        []byte // the schema text as registered (unwrapped from the broker's envelope); nil for bytes/string/number
	Description       string
	CreatedAt         time.Time
	CreatedBy         string
	Tags              []string
	Fingerprint       string
	CompatibilityMode string
}

// SchemaVersion summarises one version of a subject.
type SchemaVersion struct {
	Version     uint32
	SchemaID    uint64
	CreatedAt   time.Time
	CreatedBy   string
	Description string
	Fingerprint string
}

// RegisteredSchema is the registry's answer to a registration.
type RegisteredSchema struct {
	ID          uint64
	Version     uint32
	New         bool // false when an identical schema was already registered
	Fingerprint string
}

// Compatibility is the registry's verdict on a candidate schema.
type Compatibility struct {
	Compatible bool
	Errors     []string
}

// SchemaRegistry talks to the broker's schema registry (served on the client
// port).
type SchemaRegistry struct{ c *Client }

// SchemaRegistry returns the schema registry client of c.
func (c *Client) SchemaRegistry() *SchemaRegistry { return &SchemaRegistry{c: c} }

// RegisterOptions carry a registration's optional metadata.
type RegisterOptions struct {
	Description string
	CreatedBy   string
	Tags        []string
}

func (r *SchemaRegistry) client() (schemapb.SchemaRegistryClient, error) {
	cc, err := r.c.conn(r.c.service)
	if err != nil {
		return nil, err
	}
	return schemapb.NewSchemaRegistryClient(cc), nil
}

// Register registers definition under subject. Registering an identical
// schema again returns the existing version with New false.
func (r *SchemaRegistry) Register(ctx context.Context, subject string, typ SchemaType, definition []byte, o *RegisterOptions) (RegisteredSchema, error) {
	if subject == "" {
		return RegisteredSchema{}, errors.New("danube: register schema: subject is required")
	}
	if typ == "" {
		return RegisteredSchema{}, fmt.Errorf("danube: register schema %q: type is required", subject)
	}
	req := &schemapb.RegisterSchemaRequest{Subject: subject, SchemaType: string(typ), SchemaDefinition: definition}
	if o != nil {
		req.Description, req.CreatedBy, req.Tags = o.Description, o.CreatedBy, o.Tags
	}
	var resp *schemapb.RegisterSchemaResponse
	err := r.c.retry(ctx, "RegisterSchema", subject, func() error {
		cl, err := r.client()
		if err != nil {
			return err
		}
		resp, err = cl.RegisterSchema(ctx, req)
		return err
	})
	if err != nil {
		return RegisteredSchema{}, fmt.Errorf("danube: register schema %q: %w", subject, err)
	}
	return RegisteredSchema{ID: resp.GetSchemaId(), Version: resp.GetVersion(), New: resp.GetIsNewVersion(), Fingerprint: resp.GetFingerprint()}, nil
}

// SetCompatibility sets subject's compatibility mode: "none", "backward" (the registry's
// default), "forward" or "full". The subject must exist.
func (r *SchemaRegistry) SetCompatibility(ctx context.Context, subject, mode string) error {
	err := r.c.retry(ctx, "SetCompatibilityMode", subject, func() error {
		cl, err := r.client()
		if err != nil {
			return err
		}
		_, err = cl.SetCompatibilityMode(ctx, &schemapb.SetCompatibilityModeRequest{Subject: subject, CompatibilityMode: mode})
		return err
	})
	if err != nil {
		return fmt.Errorf("danube: set compatibility of schema %q to %s: %w", subject, mode, err)
	}
	return nil
}

// Latest returns the newest version of subject.
func (r *SchemaRegistry) Latest(ctx context.Context, subject string) (*Schema, error) {
	var resp *schemapb.GetSchemaResponse
	err := r.c.retry(ctx, "GetLatestSchema", subject, func() error {
		cl, err := r.client()
		if err != nil {
			return err
		}
		resp, err = cl.GetLatestSchema(ctx, &schemapb.GetLatestSchemaRequest{Subject: subject})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("danube: latest schema of subject %q: %w", subject, err)
	}
	return schemaFromProto(resp), nil
}

// Get returns version of the subject identified by schemaID; version 0 means
// the latest.
func (r *SchemaRegistry) Get(ctx context.Context, schemaID uint64, version uint32) (*Schema, error) {
	req := &schemapb.GetSchemaRequest{SchemaId: schemaID}
	if version > 0 {
		req.Version = &version
	}
	var resp *schemapb.GetSchemaResponse
	err := r.c.retry(ctx, "GetSchema", "", func() error {
		cl, err := r.client()
		if err != nil {
			return err
		}
		resp, err = cl.GetSchema(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("danube: schema id %d version %d: %w", schemaID, version, err)
	}
	return schemaFromProto(resp), nil
}

// Versions lists every version of subject.
func (r *SchemaRegistry) Versions(ctx context.Context, subject string) ([]SchemaVersion, error) {
	var resp *schemapb.ListVersionsResponse
	err := r.c.retry(ctx, "ListVersions", subject, func() error {
		cl, err := r.client()
		if err != nil {
			return err
		}
		resp, err = cl.ListVersions(ctx, &schemapb.ListVersionsRequest{Subject: subject})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("danube: versions of subject %q: %w", subject, err)
	}
	out := make([]SchemaVersion, 0, len(resp.GetVersions()))
	for _, v := range resp.GetVersions() {
		out = append(out, SchemaVersion{
			Version: v.GetVersion(), SchemaID: v.GetSchemaId(), CreatedAt: unixTime(v.GetCreatedAt()),
			CreatedBy: v.GetCreatedBy(), Description: v.GetDescription(), Fingerprint: v.GetFingerprint(),
		})
	}
	return out, nil
}

// CheckCompatibility asks whether definition could be registered under
// subject. mode overrides the subject's compatibility mode ("none",
// "backward", "forward", "full"); "" keeps it.
func (r *SchemaRegistry) CheckCompatibility(ctx context.Context, subject string, typ SchemaType, definition []byte, mode string) (Compatibility, error) {
	req := &schemapb.CheckCompatibilityRequest{Subject: subject, NewSchemaDefinition: definition, SchemaType: string(typ)}
	if mode != "" {
		req.CompatibilityMode = &mode
	}
	var resp *schemapb.CheckCompatibilityResponse
	err := r.c.retry(ctx, "CheckCompatibility", subject, func() error {
		cl, err := r.client()
		if err != nil {
			return err
		}
		resp, err = cl.CheckCompatibility(ctx, req)
		return err
	})
	if err != nil {
		return Compatibility{}, fmt.Errorf("danube: check compatibility for subject %q: %w", subject, err)
	}
	return Compatibility{Compatible: resp.GetIsCompatible(), Errors: resp.GetErrors()}, nil
}

// unixTime converts the registry's created_at (seconds since the epoch).
func unixTime(sec uint64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(int64(sec), 0).UTC()
}

func schemaFromProto(p *schemapb.GetSchemaResponse) *Schema {
	return &Schema{
		ID: p.GetSchemaId(), Version: p.GetVersion(), Subject: p.GetSubject(), Type: SchemaType(p.GetSchemaType()),
		Definition: UnwrapSchemaDefinition(p.GetSchemaDefinition()), Description: p.GetDescription(),
		CreatedAt: unixTime(p.GetCreatedAt()), CreatedBy: p.GetCreatedBy(), Tags: p.GetTags(),
		Fingerprint: p.GetFingerprint(), CompatibilityMode: p.GetCompatibilityMode(),
	}
}

// UnwrapSchemaDefinition extracts the registered schema text from the JSON
// envelope the broker returns in GetSchemaResponse.schema_definition
// ({"JsonSchema":{"raw_schema":…}}, {"Avro":{"raw_schema":…}},
// {"Protobuf":{"raw_proto":…}}, or "Bytes"/"String"/"Number", which yield
// nil). Input that is not such an envelope is returned unchanged.
func UnwrapSchemaDefinition(def []byte) []byte {
	trimmed := bytes.TrimSpace(def)
	if len(trimmed) == 0 {
		return def
	}
	switch trimmed[0] {
	case '"':
		var s string
		if json.Unmarshal(trimmed, &s) == nil {
			switch s {
			case "Bytes", "String", "Number":
				return nil
			}
		}
		return def
	case '{':
		var env map[string]json.RawMessage
		if json.Unmarshal(trimmed, &env) != nil || len(env) != 1 {
			return def
		}
		for kind, inner := range env {
			var body struct {
				RawSchema *string `json:"raw_schema"`
				RawProto  *string `json:"raw_proto"`
			}
			if json.Unmarshal(inner, &body) != nil {
				return def
			}
			switch {
			case (kind == "JsonSchema" || kind == "Avro") && body.RawSchema != nil:
				return []byte(*body.RawSchema)
			case kind == "Protobuf" && body.RawProto != nil:
				return []byte(*body.RawProto)
			}
		}
	}
	return def
}

// resolveSchema picks the (schema id, version) a producer stamps on its
// messages, as the official clients do: latest, a pinned version (which must
// exist), or latest checked against a minimum.
func resolveSchema(ctx context.Context, c *Client, ref SchemaRef) (uint64, uint32, error) {
	r := c.SchemaRegistry()
	latest, err := r.Latest(ctx, ref.Subject)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case ref.Version > 0:
		if ref.Version > latest.Version {
			return 0, 0, fmt.Errorf("schema subject %q: pinned version %d > latest %d", ref.Subject, ref.Version, latest.Version)
		}
		if ref.Version == latest.Version {
			return latest.ID, latest.Version, nil
		}
		s, err := r.Get(ctx, latest.ID, ref.Version)
		if err != nil {
			return 0, 0, err
		}
		return s.ID, s.Version, nil
	case ref.MinVersion > 0 && latest.Version < ref.MinVersion:
		return 0, 0, fmt.Errorf("schema subject %q: latest version %d < minimum %d", ref.Subject, latest.Version, ref.MinVersion)
	}
	return latest.ID, latest.Version, nil
}
