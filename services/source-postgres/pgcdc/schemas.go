package pgcdc

import (
	"context"
	"fmt"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pglogrepl"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// With SCHEMA_TYPE every event carries its table's schema, derived from the catalog (tableSchema,
// or tableAvroSchema with the events encoded in Avro): the runtime registers it under the table
// topic's subject and stamps the events with its version. A RELATION message that shows a changed
// table (a DDL change) derives it again: events after the change carry the new version.

// derived is a table's schema as its events carry it.
type derived struct {
	s    *schema.Schema
	cols []catalogColumn
	avro avro.Schema // SCHEMA_TYPE=avro: what the events are encoded with
}

// schema returns d's schema (nil for none).
func (d *derived) schema() *schema.Schema {
	if d == nil {
		return nil
	}
	return d.s
}

// record returns the record of a JSON event of d's table: with Avro, the event encoded, or marked
// invalid (dead-lettered as JSON) when it has no Avro form.
func (d *derived) record(r record) record {
	r.Schema = d.schema()
	if d == nil || d.avro == nil {
		return r
	}
	b, err := avroEvent(d.avro, d.cols, r.Payload)
	if err != nil {
		r.Invalid = fmt.Errorf("the event has no Avro form under the table's schema: %w", err)
		return r
	}
	r.Payload = b
	return r
}

// schemaFor returns t's schema as the columns in rel (nil: the catalog's) describe them, derived
// again only when they changed; nil without SCHEMA_TYPE.
func (s *Source) schemaFor(ctx context.Context, t Table, rel *pglogrepl.RelationMessage) (*derived, error) {
	if s.cfg.SchemaType == schema.None {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.adminMu.Lock()
	cols, err := readColumns(ctx, s.admin, t)
	s.adminMu.Unlock()
	if err != nil {
		return nil, classify(err, fmt.Sprintf("read the columns of %s for its schema", t))
	}
	if rel != nil {
		cols = relationColumns(rel, cols)
	}
	d := &derived{s: tableSchema(s.cfg.Database, t, cols), cols: cols}
	if s.cfg.SchemaType == schema.Avro {
		d.s = tableAvroSchema(t, cols)
		v, err := d.s.Compile()
		if err != nil {
			return nil, runtime.Fatal(fmt.Errorf("table %s: its Avro schema: %w", t, err))
		}
		d.avro = v.Avro()
	}
	s.schemasMu.Lock()
	defer s.schemasMu.Unlock()
	if prev := s.schemas[t]; prev != nil && prev.s.Fingerprint() == d.s.Fingerprint() {
		return prev, nil // the same value: the runtime knows its version
	}
	if s.schemas[t] != nil {
		s.log.Info("table changed: its events carry a new schema version from here", "table", t.String())
	}
	s.schemas[t] = d
	return d, nil
}

// contentType is the content-type attribute of the events.
func (c *Config) contentType() string {
	if c.SchemaType == schema.Avro {
		return "application/avro"
	}
	return "application/json"
}

// markerSchema is the schema of BEGIN and COMMIT events (TX_MARKERS).
var markerSchema = &schema.Schema{Type: schema.JSONSchema, Text: []byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema",` +
	`"title":"transaction marker (source-postgres)","type":"object","required":["op","source"],` +
	`"properties":{"op":{"enum":["BEGIN","COMMIT"]},"source":{"type":"object","required":["db","lsn","txid","commit_time","snapshot"],` +
	`"properties":{"db":{"type":"string"},"lsn":{"type":"string","pattern":"^[0-9A-F]+/[0-9A-F]+$"},"txid":{"type":["integer","null"]},` +
	`"commit_time":{"type":["string","null"]},"snapshot":{"type":"boolean"}}}}}`)}

// markers returns the marker schema when events carry schemas.
func (s *Source) markers() *schema.Schema {
	if s.cfg.SchemaType == schema.None {
		return nil
	}
	return markerSchema
}
