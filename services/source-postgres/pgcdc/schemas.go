package pgcdc

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// With SCHEMA_TYPE=json_schema every event carries its table's schema, derived from the catalog
// (tableSchema): the runtime registers it under the table topic's subject and stamps the events
// with its version. A RELATION message that shows a changed table (a DDL change) derives it again:
// events after the change carry the new version.

// schemaFor returns t's schema as the columns in rel (nil: the catalog's) describe them, derived
// again only when they changed; nil without SCHEMA_TYPE.
func (s *Source) schemaFor(ctx context.Context, t Table, rel *pglogrepl.RelationMessage) (*schema.Schema, error) {
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
	sc := tableSchema(s.cfg.Database, t, cols)
	s.schemasMu.Lock()
	defer s.schemasMu.Unlock()
	if prev := s.schemas[t]; prev != nil && prev.Fingerprint() == sc.Fingerprint() {
		return prev, nil // the same value: the runtime knows its version
	}
	if s.schemas[t] != nil {
		s.log.Info("table changed: its events carry a new schema version from here", "table", t.String())
	}
	s.schemas[t] = sc
	return sc, nil
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
