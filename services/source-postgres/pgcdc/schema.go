package pgcdc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/internal/pgjson"
)

// catalogColumn is a column of a table as the catalog describes it: what a table's schema is
// derived from.
type catalogColumn struct {
	name     string
	oid      uint32 // pg_attribute.atttypid
	typmod   int32
	notNull  bool
	pk       int    // position in the primary key (1-based); 0: not part of it
	typeName string // format_type(oid, typmod), "numeric(10,2)"; "" when unknown
}

// readColumns reads the live columns of t in attnum order.
func readColumns(ctx context.Context, conn *pgx.Conn, t Table) ([]catalogColumn, error) {
	rows, err := conn.Query(ctx, `
		SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, format_type(a.atttypid, a.atttypmod),
			coalesce((SELECT k.n FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
				WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum), 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
		ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return nil, classify(err, "read the columns of table "+t.String())
	}
	var cols []catalogColumn
	for rows.Next() {
		var c catalogColumn
		if err := rows.Scan(&c.name, &c.oid, &c.typmod, &c.notNull, &c.typeName, &c.pk); err != nil {
			rows.Close()
			return nil, classify(err, "read the columns of table "+t.String())
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err, "read the columns of table "+t.String())
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s: no such table, or it has no columns", t)
	}
	return cols, nil
}

// relationColumns returns the columns of a RELATION message, which are what the stream's events of
// the relation hold, completed from the catalog (read later, so possibly after further DDL): a
// column the catalog lacks or types differently is nullable, outside the key, its type unnamed.
func relationColumns(m *pglogrepl.RelationMessage, cat []catalogColumn) []catalogColumn {
	out := make([]catalogColumn, len(m.Columns))
	for i, rc := range m.Columns {
		out[i] = catalogColumn{name: rc.Name, oid: rc.DataType, typmod: rc.TypeModifier}
		for _, c := range cat {
			if c.name == rc.Name && c.oid == rc.DataType && c.typmod == rc.TypeModifier {
				out[i] = c
			}
		}
	}
	return out
}

// firstNormalOID is where user-defined type OIDs start (FirstNormalObjectId).
const firstNormalOID = 16384

// arrayElems maps the array types pgjson writes as JSON arrays to their element types (pgjson's
// arrays table; arrays of other types are strings).
var arrayElems = map[uint32]uint32{
	1000: pgjson.Bool, 1001: pgjson.Bytea, 1016: pgjson.Int8, 1005: pgjson.Int2, 1007: pgjson.Int4,
	1028: pgjson.OID, 199: pgjson.JSON, 1021: pgjson.Float4, 1022: pgjson.Float8, 1182: pgjson.Date,
	1115: pgjson.Timestamp, 1185: pgjson.Timestamptz, 1231: pgjson.Numeric, 3807: pgjson.JSONB,
	1009: 25, 1015: 1043, 1014: 1042, 2951: 2950, 1183: 1083, 1187: 1186,
}

// colType is how pgjson writes the values of a type: their JSON Schema (null aside) and Avro type.
type colType struct {
	json  map[string]any
	avro  any  // a primitive type's name, or an array schema
	fixed bool // fixed width: never TOASTed, so never left out of "after"
}

func jsonType(t string) map[string]any { return map[string]any{"type": t} }

// typeOf returns the form pgjson gives values of type oid. User-defined types (enums, domains,
// extensions) are any JSON: the stream names a domain by its own OID, which pgjson writes as a
// string, while the snapshot names its base type.
func typeOf(oid uint32) colType {
	switch oid {
	case pgjson.Int2, pgjson.Int4:
		return colType{jsonType("integer"), "int", true}
	case pgjson.Int8, pgjson.OID:
		return colType{jsonType("integer"), "long", true}
	case pgjson.Float4, pgjson.Float8:
		avroType := "double"
		if oid == pgjson.Float4 {
			avroType = "float"
		}
		return colType{map[string]any{"anyOf": []any{jsonType("number"), map[string]any{"enum": []string{"NaN", "Infinity", "-Infinity"}}}}, avroType, true}
	case pgjson.Bool:
		return colType{jsonType("boolean"), "boolean", true}
	case pgjson.JSON, pgjson.JSONB:
		return colType{map[string]any{}, "string", false} // Avro: the JSON text
	case pgjson.Bytea:
		return colType{map[string]any{"type": "string", "contentEncoding": "base64"}, "bytes", false}
	case pgjson.Timestamp, pgjson.Timestamptz:
		// ISO 8601; RFC 3339 but for years beyond 0000-9999 and the infinities (see the README)
		return colType{map[string]any{"type": "string", "format": "date-time"}, "string", true}
	case 2950: // uuid
		return colType{map[string]any{"type": "string", "format": "uuid"}, "string", true}
	case pgjson.Date, 1083, 1266, 1186, 790, 18, 19: // date, time, timetz, interval, money, "char", name
		return colType{jsonType("string"), "string", true}
	}
	if elem, ok := arrayElems[oid]; ok {
		et := typeOf(elem)
		items := map[string]any{} // elements of JSON type: anything
		if len(et.json) > 0 {
			// deeper dimensions are arrays of the same, not checked further
			items = map[string]any{"anyOf": []any{nullable(et.json), jsonType("array")}}
		}
		return colType{map[string]any{"type": "array", "items": items}, map[string]any{"type": "array", "items": []any{"null", et.avro}}, false}
	}
	if oid < firstNormalOID {
		return colType{jsonType("string"), "string", false} // pgjson writes every other type as its text
	}
	return colType{map[string]any{}, "string", false}
}

// nullable makes s (a fresh JSON Schema of typeOf) admit null too.
func nullable(s map[string]any) map[string]any {
	switch t := s["type"].(type) {
	case string:
		s["type"] = []string{t, "null"}
	case nil:
		if alts, ok := s["anyOf"].([]any); ok {
			s["anyOf"] = append(alts, jsonType("null"))
		} // else {}: null is JSON already
	}
	return s
}

// primaryKey returns the primary key's columns, in key order.
func primaryKey(cols []catalogColumn) []catalogColumn {
	var key []catalogColumn
	for n := 1; ; n++ {
		i := slices.IndexFunc(cols, func(c catalogColumn) bool { return c.pk == n })
		if i < 0 {
			return key
		}
		key = append(key, cols[i])
	}
}

// keyRules say that "after", when not null, holds the primary key: a column of fixed width
// always, one that can be TOASTed unless the event names it unchanged ("unchanged_toast"), as an
// UPDATE of another column leaves an out-of-line key value.
func keyRules(key []catalogColumn) (always []string, unlessToast []any) {
	for _, c := range key {
		if typeOf(c.oid).fixed {
			always = append(always, c.name)
			continue
		}
		unlessToast = append(unlessToast, map[string]any{
			"if":   map[string]any{"required": []string{"unchanged_toast"}, "properties": map[string]any{"unchanged_toast": map[string]any{"contains": map[string]any{"const": c.name}}}},
			"else": map[string]any{"properties": map[string]any{"after": map[string]any{"anyOf": []any{jsonType("null"), map[string]any{"required": []string{c.name}}}}}},
		})
	}
	return always, unlessToast
}

// rowProperties are the JSON Schemas of the columns, by name.
func rowProperties(cols []catalogColumn) map[string]any {
	props := make(map[string]any, len(cols))
	for _, c := range cols {
		s := typeOf(c.oid).json
		if !c.notNull {
			s = nullable(s)
		}
		if c.typeName != "" {
			s["x-pg-type"] = c.typeName
		}
		props[c.name] = s
	}
	return props
}

// tableSchema is the JSON Schema (draft 2020-12) of t's change events in db, from its columns. The
// text depends on nothing but the arguments (encoding/json sorts object keys), so the same table
// gives the same text and only a DDL change a new one. The row ($defs/row) types each column as
// pgjson writes it; a NOT NULL column is never null, and the primary key is required in "after"
// ("before" holds only the key unless REPLICA IDENTITY FULL). Unknown properties are allowed: the
// events of a column added before the new schema is registered still validate.
func tableSchema(db string, t Table, cols []catalogColumn) *schema.Schema {
	key := primaryKey(cols)
	always, unlessToast := keyRules(key)
	after := map[string]any{"$ref": "#/$defs/row"}
	if len(always) > 0 {
		after["required"] = always
	}
	null := jsonType("null")
	doc := map[string]any{
		"$schema":  "https://json-schema.org/draft/2020-12/schema",
		"title":    fmt.Sprintf("change event of table %s in database %s (source-postgres)", t, db),
		"type":     "object",
		"required": []string{"op", "schema", "table", "before", "after", "source"},
		"properties": map[string]any{
			"op":              map[string]any{"enum": []string{OpInsert, OpUpdate, OpDelete, OpTruncate, OpRead}},
			"schema":          map[string]any{"const": t.Schema},
			"table":           map[string]any{"const": t.Name},
			"before":          map[string]any{"anyOf": []any{map[string]any{"$ref": "#/$defs/row"}, null}},
			"after":           map[string]any{"anyOf": []any{after, null}},
			"unchanged_toast": map[string]any{"type": "array", "items": jsonType("string")},
			"source": map[string]any{
				"type":     "object",
				"required": []string{"db", "lsn", "txid", "commit_time", "snapshot"},
				"properties": map[string]any{
					"db":          map[string]any{"const": db},
					"lsn":         map[string]any{"type": "string", "pattern": "^[0-9A-F]+/[0-9A-F]+$"},
					"txid":        map[string]any{"type": []string{"integer", "null"}},
					"commit_time": map[string]any{"type": []string{"string", "null"}, "format": "date-time"},
					"snapshot":    jsonType("boolean"),
				},
			},
		},
		"$defs": map[string]any{"row": map[string]any{"type": "object", "properties": rowProperties(cols)}},
	}
	if len(key) > 0 {
		names := make([]string, len(key))
		for i, c := range key {
			names[i] = c.name
		}
		doc["x-primary-key"] = names
	}
	if len(unlessToast) > 0 {
		doc["allOf"] = unlessToast
	}
	text, err := json.Marshal(doc)
	if err != nil {
		panic(err) // maps of strings: cannot fail
	}
	return &schema.Schema{Type: schema.JSONSchema, Text: text}
}

// avroName makes s a valid Avro name ([A-Za-z_][A-Za-z0-9_]*): other characters become '_'.
func avroName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// avroFields returns the Avro field names of cols: the column names made valid, then unique.
func avroFields(cols []catalogColumn) []string {
	used := map[string]bool{}
	names := make([]string, len(cols))
	for i, c := range cols {
		n := avroName(c.name)
		for k := 2; used[n]; k++ {
			n = avroName(c.name) + "_" + strconv.Itoa(k)
		}
		used[n] = true
		names[i] = n
	}
	return names
}

// avroNullable tells whether a column's Avro field admits null: in "before" all do (it holds the
// key only), in "after" all but the NOT NULL columns of fixed width (never left out as unchanged
// TOAST).
func avroNullable(c catalogColumn, before bool) bool {
	return before || !c.notNull || !typeOf(c.oid).fixed
}

// avroRow is the Avro record of a row: before or after.
func avroRow(name string, cols []catalogColumn, before bool) map[string]any {
	fields := make([]any, len(cols))
	for i, n := range avroFields(cols) {
		c := cols[i]
		f := map[string]any{"name": n, "type": typeOf(c.oid).avro}
		if avroNullable(c, before) {
			f["type"], f["default"] = []any{"null", f["type"]}, nil
		}
		if n != c.name {
			f["x-pg-name"] = c.name
		}
		if c.typeName != "" {
			f["x-pg-type"] = c.typeName
		}
		fields[i] = f
	}
	return map[string]any{"type": "record", "name": name, "fields": fields}
}

// tableAvroSchema is the Avro schema of t's change events, avroEvent's form of the JSON events:
// the same envelope, values typed as in JSON (numeric, timestamps and other text forms as
// strings, json and jsonb as their JSON text, bytea as bytes, NaN and infinite floats as such);
// a field missing from a row (unchanged TOAST, a column outside the key in "before") is null. Its
// records are named in the namespace postgres.<schema>.<table>, column names made valid Avro
// names (the original in "x-pg-name" when it differs).
func tableAvroSchema(t Table, cols []catalogColumn) *schema.Schema {
	opt := func(s any) any { return []any{"null", s} }
	field := func(name string, typ any) map[string]any { return map[string]any{"name": name, "type": typ} }
	src := map[string]any{"type": "record", "name": "Source", "fields": []any{
		field("db", "string"), field("lsn", "string"), field("txid", opt("long")), field("commit_time", opt("string")), field("snapshot", "boolean"),
	}}
	doc := map[string]any{
		"type": "record", "name": "Event", "namespace": "postgres." + avroName(t.Schema) + "." + avroName(t.Name),
		"fields": []any{
			field("op", map[string]any{"type": "enum", "name": "Op", "symbols": []string{OpInsert, OpUpdate, OpDelete, OpTruncate, OpRead}}),
			field("schema", "string"),
			field("table", "string"),
			field("before", opt(avroRow("Before", cols, true))),
			field("after", opt(avroRow("After", cols, false))),
			map[string]any{"name": "unchanged_toast", "type": map[string]any{"type": "array", "items": "string"}, "default": []any{}},
			field("source", src),
		},
	}
	if key := primaryKey(cols); len(key) > 0 { // a sink creating a table orders it by the key
		names := make([]string, len(key))
		for i, c := range key {
			names[i] = c.name
		}
		doc["x-primary-key"] = names
	}
	text, err := json.Marshal(doc)
	if err != nil {
		panic(err) // maps of strings: cannot fail
	}
	return &schema.Schema{Type: schema.Avro, Text: text}
}

// avroEvent turns a JSON event of the table (the encoder's) into Avro binary in s, the parsed
// tableAvroSchema of cols.
func avroEvent(s avro.Schema, cols []catalogColumn, event []byte) ([]byte, error) {
	var ev struct {
		Op, Schema, Table string
		Before, After     json.RawMessage
		Toast             []string `json:"unchanged_toast"`
		Source            struct {
			DB, LSN    string
			TxID       *int64
			CommitTime *string `json:"commit_time"`
			Snapshot   bool
		}
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, errors.New("not a record schema")
	}
	before, err := avroRowValue(rec.Namespace()+".Before", ev.Before, cols, true)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	after, err := avroRowValue(rec.Namespace()+".After", ev.After, cols, false)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	src := map[string]any{"db": ev.Source.DB, "lsn": ev.Source.LSN, "txid": union("long", ev.Source.TxID),
		"commit_time": union("string", ev.Source.CommitTime), "snapshot": ev.Source.Snapshot}
	if ev.Toast == nil {
		ev.Toast = []string{}
	}
	return avro.Marshal(s, map[string]any{"op": ev.Op, "schema": ev.Schema, "table": ev.Table,
		"before": before, "after": after, "unchanged_toast": ev.Toast, "source": src})
}

// union is v as a value of an Avro union (null when v is a nil pointer): hamba's map form.
func union[T any](branch string, v *T) map[string]any {
	if v == nil {
		return nil
	}
	return map[string]any{branch: *v}
}

// avroRowValue is a JSON row (raw, possibly null) as the value of the union ["null", record name].
func avroRowValue(name string, raw json.RawMessage, cols []catalogColumn, before bool) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var row map[string]json.RawMessage
	if err := json.Unmarshal(raw, &row); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(cols))
	for i, n := range avroFields(cols) {
		c := cols[i]
		v, ok := row[c.name]
		isNull := !ok || string(v) == "null"
		switch {
		case isNull && avroNullable(c, before):
			out[n] = map[string]any(nil)
		case isNull:
			return nil, fmt.Errorf("column %q: NOT NULL, yet missing or null", c.name)
		default:
			val, err := avroValue(c.oid, v)
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", c.name, err)
			}
			if avroNullable(c, before) {
				val = map[string]any{avroBranch(typeOf(c.oid).avro): val}
			}
			out[n] = val
		}
	}
	return map[string]any{name: out}, nil
}

// avroBranch names an Avro type of typeOf as a union branch.
func avroBranch(t any) string {
	if s, ok := t.(string); ok {
		return s
	}
	return "array"
}

// avroValue is the JSON value raw of a column of type oid (not null) as its Avro value.
func avroValue(oid uint32, raw json.RawMessage) (any, error) {
	switch oid {
	case pgjson.Int2, pgjson.Int4:
		v, err := strconv.ParseInt(string(raw), 10, 32)
		return int32(v), err
	case pgjson.Int8, pgjson.OID:
		return strconv.ParseInt(string(raw), 10, 64)
	case pgjson.Float4, pgjson.Float8:
		f, err := avroFloat(raw)
		if oid == pgjson.Float4 {
			return float32(f), err
		}
		return f, err
	case pgjson.Bool:
		var b bool
		err := json.Unmarshal(raw, &b)
		return b, err
	case pgjson.JSON, pgjson.JSONB:
		return string(raw), nil
	case pgjson.Bytea:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(s)
	}
	if elem, ok := arrayElems[oid]; ok {
		return avroArray(elem, raw)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw) // not a string (a domain's base type in the snapshot): its JSON text
	}
	return s, nil
}

func avroFloat(raw json.RawMessage) (float64, error) {
	switch string(raw) {
	case `"NaN"`:
		return math.NaN(), nil
	case `"Infinity"`:
		return math.Inf(1), nil
	case `"-Infinity"`:
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(string(raw), 64)
}

// avroArray is a JSON array of elements of type elem as an Avro array of ["null", elem]; Avro
// has no place for the inner arrays of a multi-dimensional array: an error (but for json[] and
// jsonb[], whose elements are JSON text, arrays included).
func avroArray(elem uint32, raw json.RawMessage) ([]any, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	branch := avroBranch(typeOf(elem).avro)
	out := make([]any, len(items))
	for i, it := range items {
		if string(it) == "null" {
			out[i] = map[string]any(nil)
			continue
		}
		if len(it) > 0 && it[0] == '[' && elem != pgjson.JSON && elem != pgjson.JSONB {
			return nil, errors.New("a multi-dimensional array has no Avro form")
		}
		v, err := avroValue(elem, it)
		if err != nil {
			return nil, err
		}
		out[i] = map[string]any{branch: v}
	}
	return out, nil
}
