package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/source"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// SourceSchemas is a source's SCHEMA_* settings: the schema its records follow, registered in
// Danube's schema registry, so that every message carries its schema id and version.
type SourceSchemas struct {
	SchemaType          schema.Type   `env:"SCHEMA_TYPE" envDefault:"none" desc:"none, json_schema or avro: the schema language of the records; with one, each is checked against its schema and every message carries the schema's id and version"`
	SchemaSubject       string        `env:"SCHEMA_SUBJECT" envDefault:"{topic}" desc:"registry subject of a topic's schema; {topic} is the topic without its leading / and with - for / (/default/orders: default-orders)"`
	SchemaFile          string        `env:"SCHEMA_FILE" desc:"file holding the schema of the records that bring none (registered at start); without it such records follow the subject's latest version in the registry"`
	SchemaCompatibility Compatibility `env:"SCHEMA_COMPATIBILITY" envDefault:"keep" desc:"compatibility mode set on the subjects the source registers: keep (the registry's: backward unless set), none, backward, forward or full"`
	SchemaValidate      bool          `env:"SCHEMA_VALIDATE" envDefault:"true" desc:"check each record against its schema before publishing; one that does not match goes to DLQ_TOPIC with the reason (or stops the source), so that the broker's validation never refuses a stream"`

	file *schema.Schema // SCHEMA_FILE's, read by Validate
}

// Compatibility is SCHEMA_COMPATIBILITY: the registry's name of a mode, or "keep".
type Compatibility string

var compatibilities = config.Enum[Compatibility]{
	{Value: "keep", Name: "keep"}, {Value: "none", Name: "none"}, {Value: "backward", Name: "backward"},
	{Value: "forward", Name: "forward"}, {Value: "full", Name: "full"},
}

// UnmarshalText parses keep, none, backward, forward or full.
func (c *Compatibility) UnmarshalText(b []byte) error { return compatibilities.Parse(c, b) }

// Validate implements config.Validator: SCHEMA_FILE is read and compiled at start.
func (c *SourceSchemas) Validate() error {
	var errs []error
	if c.SchemaFile != "" {
		if c.SchemaType == schema.None {
			errs = append(errs, config.Invalid("SCHEMA_FILE", c.SchemaFile, "set, but SCHEMA_TYPE is none"))
		} else if _, err := c.readFile(); err != nil {
			errs = append(errs, config.Invalid("SCHEMA_FILE", c.SchemaFile, err.Error()))
		}
	}
	if c.SchemaType != schema.None && strings.TrimSpace(strings.ReplaceAll(c.SchemaSubject, "{topic}", "x")) == "" {
		errs = append(errs, config.Invalid("SCHEMA_SUBJECT", c.SchemaSubject, "must not be empty"))
	}
	return errors.Join(errs...)
}

// readFile reads and compiles SCHEMA_FILE once.
func (c *SourceSchemas) readFile() (*schema.Schema, error) {
	if c.file != nil || c.SchemaFile == "" {
		return c.file, nil
	}
	text, err := os.ReadFile(c.SchemaFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	s := &schema.Schema{Type: c.SchemaType, Text: text}
	if _, err := s.Compile(); err != nil {
		return nil, err
	}
	c.file = s
	return s, nil
}

// Subject returns the subject of topic's schema.
func (c *SourceSchemas) Subject(topic string) string {
	name := strings.ReplaceAll(strings.TrimPrefix(topic, "/"), "/", "-")
	return strings.ReplaceAll(c.SchemaSubject, "{topic}", name)
}

// engine returns what the source engine is told of the settings; nil without a schema.
func (c *SourceSchemas) engine() (*source.Schemas, error) {
	if c.SchemaType == schema.None {
		return nil, nil
	}
	file, err := c.readFile()
	if err != nil {
		return nil, fmt.Errorf("runtime: SCHEMA_FILE=%q: %w", c.SchemaFile, err)
	}
	s := &source.Schemas{Type: c.SchemaType, Subject: c.Subject, File: file, Validate: c.SchemaValidate}
	if c.SchemaCompatibility != "keep" {
		s.Compat = string(c.SchemaCompatibility)
	}
	return s, nil
}

// SinkSchemas is a sink's SCHEMA_* settings: what it does with messages that carry a schema id
// and version (read from Danube's registry, cached; SinkRecord.Schema).
type SinkSchemas struct {
	SchemaDecode   bool `env:"SCHEMA_DECODE" envDefault:"true" desc:"hand an Avro message (its schema is Avro) to the connector as JSON: unions as their value, bytes as base64, timestamps as RFC 3339, decimals exact"`
	SchemaValidate bool `env:"SCHEMA_VALIDATE" envDefault:"false" desc:"check each message that carries a schema against it; one that does not match is invalid data (DLQ_TOPIC)"`
}

// sinkSchemas reads the schemas of a sink's messages.
type sinkSchemas struct {
	cache            *schema.Cache
	decode, validate bool
}

// reader returns the sink's schema reader; nil when there is nothing to do with schemas.
func (c *SinkSchemas) reader(cl *danube.Client) *sinkSchemas {
	if !c.SchemaDecode && !c.SchemaValidate {
		return nil
	}
	return &sinkSchemas{cache: schema.NewCache(cl.SchemaRegistry()), decode: c.SchemaDecode, validate: c.SchemaValidate}
}

// read reads rec's schema and returns the message the connector gets: an Avro payload decoded,
// a payload checked. retry: the registry could not be reached, the record waits.
func (s *sinkSchemas) read(ctx context.Context, rec *SinkRecord) (m *danube.Message, retry bool, err error) {
	m = rec.Message
	if m.SchemaID == nil || m.SchemaVersion == nil {
		return m, false, nil
	}
	reg, err := s.cache.Get(ctx, *m.SchemaID, *m.SchemaVersion)
	switch code := status.Code(err); {
	case err == nil:
	case code == grpccodes.NotFound || errors.Is(err, schema.ErrUnusable):
		return nil, false, fmt.Errorf("message %s: schema id %d version %d: %w", m.ID(), *m.SchemaID, *m.SchemaVersion, err)
	default:
		return nil, true, Retryable(fmt.Errorf("message %s: read its schema: %w", m.ID(), err))
	}
	rec.schema = reg
	switch {
	case reg.Type == schema.Avro && s.decode:
		j, err := reg.Validator().AvroToJSON(m.Payload)
		if err != nil {
			return nil, false, fmt.Errorf("message %s: schema subject %q version %d: %w", m.ID(), reg.Subject, reg.Version, err)
		}
		return rec.changed(m, j, m.Attributes, m.Key), false, nil
	case s.validate:
		if err := reg.Validator().Validate(m.Payload); err != nil {
			return nil, false, fmt.Errorf("message %s: schema subject %q version %d: %w", m.ID(), reg.Subject, reg.Version, err)
		}
	}
	return m, false, nil
}
