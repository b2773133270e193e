package chsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/hamba/avro/v2"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	registry "github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// CH_CREATE_TABLE and CH_ALTER_TABLE: the table follows the schemas the records carry. A schema
// describes rows: a JSON Schema object's properties, or an Avro record's fields; for a change
// event (an object with "op" and "after", as source-postgres writes) the rows are "after", as
// TRANSFORMS=unwrap makes them.

// ddlState is what the sink remembers of the table's DDL.
type ddlState struct {
	caps *ddlCaps
	done map[versionKey]bool // schema versions whose fields the table has
}

type versionKey struct {
	id      uint64
	version uint32
}

// ddlCaps is what the server's DDL allows.
type ddlCaps struct {
	dateTime64  bool // the DateTime64 type (ClickHouse 20.1 and later)
	ifNotExists bool // ALTER TABLE … ADD COLUMN IF NOT EXISTS (19.1 and later)
}

// schemaField is a field of a schema's rows as a column.
type schemaField struct {
	name     string
	typ      string // ClickHouse type, without Nullable
	nullable bool   // the value may be null or absent
	bare     bool   // typ cannot be inside Nullable (Array): null takes the column default
	def      string // a required field's default, as a ClickHouse literal; "" for none
}

// column is f's type in a column definition: non-Nullable in the ORDER BY key (ClickHouse refuses
// Nullable key columns) and, when added to a table that has rows, Nullable unless the schema
// gives a default for the rows written before.
func (f schemaField) column(key, adding bool) string {
	switch {
	case f.def != "":
		return f.typ + " DEFAULT " + f.def
	case key || f.bare || !f.nullable && !adding:
		return f.typ
	}
	return "Nullable(" + f.typ + ")"
}

// rowSchema is what a schema says of its rows.
type rowSchema struct {
	fields []schemaField // in the schema's order
	key    []string      // x-primary-key
}

func (r rowSchema) has(name string) bool {
	for _, f := range r.fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// rowsOf reads the rows of a registered schema.
func rowsOf(reg *registry.Registered, caps ddlCaps) (rowSchema, error) {
	if reg.Type == registry.Avro {
		return avroRows(reg.Validator().Avro(), caps)
	}
	return jsonRows(reg.Text, caps)
}

// createStatement creates table for r, ordered by orderBy (CH_ORDER_BY) or else r's key.
func createStatement(table string, r rowSchema, orderBy []string, engine string) (string, error) {
	key := r.key
	if len(orderBy) > 0 {
		key = make([]string, len(orderBy))
		for i, k := range orderBy {
			key[i] = strings.TrimSpace(k)
		}
	}
	inKey := map[string]bool{}
	quoted := make([]string, len(key))
	for i, k := range key {
		if !r.has(k) {
			return "", fmt.Errorf("ORDER BY column %q is not a field of the schema's rows", k)
		}
		inKey[k], quoted[i] = true, quote(k)
	}
	cols := make([]string, len(r.fields))
	for i, f := range r.fields {
		cols[i] = quote(f.name) + " " + f.column(inKey[f.name], false)
	}
	order := "tuple()"
	if len(key) > 0 {
		order = "(" + strings.Join(quoted, ", ") + ")"
	}
	return "CREATE TABLE IF NOT EXISTS " + table + " (" + strings.Join(cols, ", ") + ") ENGINE = " + strings.TrimSpace(engine) + " ORDER BY " + order, nil
}

// addStatement adds f's column to table.
func addStatement(table string, f schemaField, caps ddlCaps) string {
	ifNotExists := ""
	if caps.ifNotExists {
		ifNotExists = "IF NOT EXISTS "
	}
	return "ALTER TABLE " + table + " ADD COLUMN " + ifNotExists + quote(f.name) + " " + f.column(false, true)
}

// applySchemas makes the table follow the schemas of recs: created from the first one when it
// does not exist (CH_CREATE_TABLE), given a column for each new field (CH_ALTER_TABLE).
func (s *Sink) applySchemas(ctx context.Context, recs []*runtime.SinkRecord) error {
	if s.schema == nil {
		if err := s.createTable(ctx, recs); err != nil {
			return err
		}
	}
	if !s.cfg.AlterTable {
		return nil
	}
	var last *registry.Registered
	for _, r := range recs {
		reg := r.Schema()
		if reg == nil || reg == last {
			continue
		}
		last = reg
		if err := s.addColumns(ctx, reg); err != nil {
			return err
		}
	}
	return nil
}

// createTable creates CH_TABLE from the schema of the first record of recs that carries one,
// then reads what the sink needs to know about it. Another replica may have created it first,
// from another version: CH_ALTER_TABLE then adds what this version has more.
func (s *Sink) createTable(ctx context.Context, recs []*runtime.SinkRecord) error {
	var reg *registry.Registered
	for _, r := range recs {
		if reg = r.Schema(); reg != nil {
			break
		}
	}
	if reg == nil {
		return runtime.Fatal(fmt.Errorf("table %s does not exist and message %s carries no schema to create it from (CH_CREATE_TABLE): create the table, or publish with a schema", s.table(), recs[0].MessageID()))
	}
	caps, err := s.ddlCaps(ctx)
	if err != nil {
		return err
	}
	stmt, err := s.createStatementOf(reg, caps)
	if err != nil {
		return runtime.Fatal(fmt.Errorf("create table %s from schema subject %q version %d: %w", s.table(), reg.Subject, reg.Version, err))
	}
	if err := s.exec(ctx, stmt); err != nil {
		return err
	}
	s.log.Info("created the table from a schema", "table", s.table(), "subject", reg.Subject, "version", reg.Version, "statement", stmt)
	srv, err := probeServer(ctx, s.connection(), s.cfg.Database, s.cfg.Table)
	if err != nil {
		return s.classify(fmt.Errorf("clickhouse %s: %w", s.cfg.addr(), err))
	}
	s.srv = srv
	if err := s.refreshSchema(ctx); err != nil {
		return err
	}
	guarantee, why := s.srv.guarantee()
	s.log.Info("inserting into the new table", "table", s.table(), "engine", s.srv.engine, "guarantee", guarantee, "why", why)
	return nil
}

func (s *Sink) createStatementOf(reg *registry.Registered, caps ddlCaps) (string, error) {
	r, err := rowsOf(reg, caps)
	if err != nil {
		return "", err
	}
	return createStatement(s.table(), r, s.cfg.OrderBy, s.cfg.TableEngine)
}

// addColumns adds a column for each field of reg the table lacks, once per schema version.
func (s *Sink) addColumns(ctx context.Context, reg *registry.Registered) error {
	if s.ddl.done[versionKey{reg.ID, reg.Version}] {
		return nil
	}
	caps, err := s.ddlCaps(ctx)
	if err != nil {
		return err
	}
	r, err := rowsOf(reg, caps)
	if err != nil { // the records may still fit the table's columns: insert them as they are
		s.log.Warn("CH_ALTER_TABLE: cannot read the rows of a schema; no column added for it", "subject", reg.Subject, "version", reg.Version, "error", err)
		s.doneWith(reg)
		return nil
	}
	var added []string
	for _, f := range r.fields {
		if _, ok := s.schema.byName[f.name]; ok {
			continue
		}
		stmt := addStatement(s.table(), f, caps)
		if err := s.exec(ctx, stmt); err != nil {
			// another replica may have added it: servers without IF NOT EXISTS then refuse the ADD
			if rerr := s.refreshSchema(ctx); rerr != nil || !s.hasColumn(f.name) {
				return err
			}
			continue
		}
		added = append(added, stmt)
	}
	if len(added) > 0 {
		s.log.Info("added columns for a new schema version", "table", s.table(), "subject", reg.Subject, "version", reg.Version, "statements", added)
		if err := s.refreshSchema(ctx); err != nil {
			return err
		}
	}
	s.doneWith(reg)
	return nil
}

func (s *Sink) hasColumn(name string) bool {
	_, ok := s.schema.byName[name]
	return ok
}

func (s *Sink) doneWith(reg *registry.Registered) {
	if s.ddl.done == nil {
		s.ddl.done = map[versionKey]bool{}
	}
	s.ddl.done[versionKey{reg.ID, reg.Version}] = true
}

func (s *Sink) connection() clickhouse.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.conn
}

// ddlCaps asks the server, once, what its DDL allows.
func (s *Sink) ddlCaps(ctx context.Context) (ddlCaps, error) {
	if s.ddl.caps != nil {
		return *s.ddl.caps, nil
	}
	var n uint64
	q := "SELECT count() FROM system.data_type_families WHERE name = 'DateTime64'"
	if err := s.connection().QueryRow(ctx, q).Scan(&n); err != nil {
		return ddlCaps{}, s.classify(fmt.Errorf("clickhouse %s: %s: %w", s.cfg.addr(), q, err))
	}
	major, _, _ := strings.Cut(s.srv.version, ".")
	v, _ := strconv.Atoi(major)
	s.ddl.caps = &ddlCaps{dateTime64: n > 0, ifNotExists: v >= 19}
	return *s.ddl.caps, nil
}

// refusedCodes are server errors a DDL statement gets for what it says (syntax, a type, an engine
// or its arguments, a column): repeating it will not help.
var refusedCodes = map[int32]bool{8: true, 10: true, 15: true, 16: true, 36: true, 42: true, 43: true, 44: true, 47: true, 48: true, 50: true, 53: true, 56: true, 62: true, 115: true}

// exec runs a DDL statement. Its error names it: Fatal when the user may not change the table or
// the server refuses the statement, Disconnected for a lost connection (the runtime reconnects
// and repeats the batch), Retryable otherwise.
func (s *Sink) exec(ctx context.Context, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InsertTimeout.D())
	defer cancel()
	err := s.connection().Exec(ctx, stmt)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("clickhouse %s: %s: %w", s.cfg.addr(), stmt, err)
	var ex *clickhouse.Exception
	switch {
	case !errors.As(err, &ex):
		return s.classify(err)
	case ex.Code == 164 || ex.Code == 291 || ex.Code == 497: // READONLY, DATABASE_ACCESS_DENIED, ACCESS_DENIED
		return runtime.Fatal(fmt.Errorf("user %q may not change %s: grant it CREATE TABLE and ALTER ADD COLUMN, or create the table yourself and leave CH_CREATE_TABLE and CH_ALTER_TABLE off: %w", s.cfg.User, s.table(), err))
	case refusedCodes[ex.Code]:
		return runtime.Fatal(fmt.Errorf("ClickHouse refused the statement (check CH_TABLE_ENGINE and CH_ORDER_BY): %w", err))
	}
	return s.classify(err)
}

// jobj is a JSON object that keeps the order of its keys: the table's columns follow the order
// of the schema's properties.
type jobj struct {
	keys []string
	m    map[string]any
}

// decodeJSON decodes the next value of dec: objects as *jobj, numbers as json.Number.
func decodeJSON(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &jobj{m: map[string]any{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeJSON(dec)
			if err != nil {
				return nil, err
			}
			name, _ := k.(string)
			if _, dup := o.m[name]; !dup {
				o.keys = append(o.keys, name)
			}
			o.m[name] = v
		}
		_, err = dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decodeJSON(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err = dec.Token()
		return a, err
	}
	return tok, nil
}

// refDepth bounds the $ref and anyOf chains followed (a schema may refer to itself).
const refDepth = 32

// jsonSchema reads a JSON Schema document's rows.
type jsonSchema struct {
	root *jobj
	caps ddlCaps
}

// jsonRows reads the rows of a JSON Schema: the properties of the object it describes.
func jsonRows(text []byte, caps ddlCaps) (rowSchema, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	v, err := decodeJSON(dec)
	if err != nil {
		return rowSchema{}, fmt.Errorf("JSON Schema: %w", err)
	}
	root, ok := v.(*jobj)
	if !ok {
		return rowSchema{}, errors.New("the JSON Schema is not an object")
	}
	js := jsonSchema{root: root, caps: caps}
	required := map[string]bool{}
	row := js.object(root, required)
	if props, ok := root.m["properties"].(*jobj); ok && props.m["op"] != nil && props.m["after"] != nil {
		clear(required)
		row = js.object(props.m["after"], required) // a change event: its rows are "after"
	}
	props, _ := row.m["properties"].(*jobj)
	if props == nil || len(props.keys) == 0 {
		return rowSchema{}, errors.New("the JSON Schema's rows have no properties")
	}
	r := rowSchema{key: strs(root.m["x-primary-key"])}
	for _, name := range props.keys {
		typ, null, bare := js.typeOf(props.m[name], 0)
		f := schemaField{name: name, typ: typ, nullable: null || !required[name], bare: bare}
		if p, ok := props.m[name].(*jobj); ok && !f.nullable {
			f.def = defaultLiteral(typ, p.m["default"])
		}
		r.fields = append(r.fields, f)
	}
	return r, nil
}

// object follows n's $ref and its single non-null anyOf/oneOf branch to the object it describes,
// gathering the required properties on the way; an empty object when there is none.
func (js jsonSchema) object(n any, required map[string]bool) *jobj {
	for range refDepth {
		o, ok := n.(*jobj)
		if !ok {
			break
		}
		for _, name := range strs(o.m["required"]) {
			required[name] = true
		}
		if ref, ok := o.m["$ref"].(string); ok {
			n = js.pointer(ref)
			continue
		}
		if alts := nonNull(branches(o)); len(alts) == 1 {
			n = alts[0]
			continue
		}
		return o
	}
	return &jobj{m: map[string]any{}}
}

// pointer resolves a reference within the document ("#/$defs/row"); nil for another.
func (js jsonSchema) pointer(ref string) any {
	path, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil
	}
	var n any = js.root
	for _, tok := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if tok == "" {
			continue
		}
		o, ok := n.(*jobj)
		if !ok {
			return nil
		}
		n = o.m[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
	}
	return n
}

// typeOf returns the ClickHouse type of the values n admits (without Nullable), whether null is
// one, and whether the type cannot be inside Nullable. What has no single type is String: the
// sink stores any JSON value there as its text.
func (js jsonSchema) typeOf(n any, depth int) (typ string, null, bare bool) {
	o, ok := n.(*jobj)
	if !ok || depth > refDepth {
		return "String", true, false // true, false or nothing: any value
	}
	if ref, ok := o.m["$ref"].(string); ok {
		return js.typeOf(js.pointer(ref), depth+1)
	}
	if alts := branches(o); alts != nil {
		return js.union(alts, depth)
	}
	types := strs(o.m["type"])
	if t, ok := o.m["type"].(string); ok {
		types = []string{t}
	}
	var named []string
	for _, t := range types {
		if t == "null" {
			null = true
		} else {
			named = append(named, t)
		}
	}
	switch {
	case len(named) == 0:
		return "String", null || len(types) == 0 && admitsNull(o), false
	case len(named) == 2 && (named[0] == "integer" && named[1] == "number" || named[0] == "number" && named[1] == "integer"):
		return "Float64", null, false
	case len(named) > 1:
		return "String", null, false
	}
	switch named[0] {
	case "integer":
		return "Int64", null, false
	case "number":
		return "Float64", null, false
	case "boolean":
		return "UInt8", null, false
	case "array":
		return array(js.typeOf(o.m["items"], depth+1)), null, true
	case "string":
		return js.stringType(o.m["format"]), null, false
	}
	return "String", null, false // object: its JSON text
}

// union types the branches of anyOf or oneOf: null ones make it nullable; the strings "NaN",
// "Infinity" and "-Infinity" (as source-postgres writes them) go with a number.
func (js jsonSchema) union(alts []any, depth int) (typ string, null, bare bool) {
	var types []string
	for _, b := range alts {
		t, n, bb := js.typeOf(b, depth+1)
		null = null || n
		if !isNull(b) && !isNaNs(b) && !slices.Contains(types, t) {
			types, bare = append(types, t), bb
		}
	}
	switch {
	case len(types) == 1:
		return types[0], null, bare
	case len(types) == 2 && slices.Contains(types, "Int64") && slices.Contains(types, "Float64"):
		return "Float64", null, false
	}
	return "String", null, false
}

func (js jsonSchema) stringType(format any) string {
	switch format {
	case "date-time":
		if js.caps.dateTime64 {
			return "DateTime64(3)"
		}
	case "date":
		return "Date"
	}
	return "String"
}

// array is Array of an element type.
func array(elem string, null, bare bool) string {
	if null && !bare {
		elem = "Nullable(" + elem + ")"
	}
	return "Array(" + elem + ")"
}

// branches returns o's anyOf or oneOf; nil without.
func branches(o *jobj) []any {
	if a, ok := o.m["anyOf"].([]any); ok {
		return a
	}
	a, _ := o.m["oneOf"].([]any)
	return a
}

func nonNull(alts []any) []any {
	var out []any
	for _, b := range alts {
		if !isNull(b) {
			out = append(out, b)
		}
	}
	return out
}

func isNull(n any) bool {
	o, ok := n.(*jobj)
	return ok && o.m["type"] == "null"
}

// isNaNs reports whether n is an enum of "NaN", "Infinity" and "-Infinity": the non-numbers
// source-postgres writes for float columns.
func isNaNs(n any) bool {
	o, ok := n.(*jobj)
	if !ok {
		return false
	}
	vals, ok := o.m["enum"].([]any)
	for _, v := range vals {
		if v != "NaN" && v != "Infinity" && v != "-Infinity" {
			return false
		}
	}
	return ok && len(vals) > 0
}

// admitsNull reports whether an untyped schema admits null: unless enum or const say otherwise.
func admitsNull(o *jobj) bool {
	if c, ok := o.m["const"]; ok {
		return c == nil
	}
	if vals, ok := o.m["enum"].([]any); ok {
		for _, v := range vals {
			if v == nil {
				return true
			}
		}
		return false
	}
	return true
}

// strs returns the strings of a JSON array (nil for anything else).
func strs(v any) []string {
	a, _ := v.([]any)
	var out []string
	for _, e := range a {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// defaultLiteral writes a field's default as a ClickHouse literal of typ; "" for a default it does not
// write (nil, a time, an array or object, a value of another type).
func defaultLiteral(typ string, v any) string {
	switch v := v.(type) {
	case json.Number, int, int32, int64, float32, float64:
		if strings.HasPrefix(typ, "Int") || strings.HasPrefix(typ, "Float") || strings.HasPrefix(typ, "Decimal") {
			return fmt.Sprint(v)
		}
	case bool:
		if typ == "UInt8" {
			if v {
				return "1"
			}
			return "0"
		}
	case string:
		if typ == "String" {
			return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
		}
	}
	return ""
}

// avroRows reads the rows of an Avro schema: the fields of its record.
func avroRows(s avro.Schema, caps ddlCaps) (rowSchema, error) {
	root, ok := deref(s).(*avro.RecordSchema)
	if !ok {
		return rowSchema{}, fmt.Errorf("the Avro schema is a %s, not a record", s.Type())
	}
	row := root
	if op, after := avroField(root, "op"), avroField(root, "after"); op != nil && after != nil {
		typ := deref(after.Type())
		if u, ok := typ.(*avro.UnionSchema); ok && u.Nullable() {
			_, i := u.Indices()
			typ = deref(u.Types()[i])
		}
		if row, ok = typ.(*avro.RecordSchema); !ok {
			return rowSchema{}, fmt.Errorf("the change event's after is a %s, not a record", typ.Type())
		}
	}
	key, _ := root.Prop("x-primary-key").([]any)
	r := rowSchema{key: strs(key)}
	for _, af := range row.Fields() {
		typ, null, bare := avroType(af.Type(), caps, 0)
		f := schemaField{name: af.Name(), typ: typ, nullable: null, bare: bare}
		if !null && af.HasDefault() {
			f.def = defaultLiteral(typ, af.Default())
		}
		r.fields = append(r.fields, f)
	}
	return r, nil
}

func avroField(r *avro.RecordSchema, name string) *avro.Field {
	for _, f := range r.Fields() {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// deref follows a reference to a named type.
func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

// avroType is typeOf for Avro, the values as the runtime decodes them to JSON (SCHEMA_DECODE):
// bytes as base64 text, timestamps as RFC 3339 text, records and maps as objects.
func avroType(s avro.Schema, caps ddlCaps, depth int) (typ string, null, bare bool) {
	s = deref(s)
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		if t := avroLogical(ls.Logical(), caps); t != "" {
			return t, false, false
		}
	}
	switch s := s.(type) {
	case *avro.UnionSchema:
		if depth > refDepth {
			return "String", true, false
		}
		if s.Nullable() {
			_, i := s.Indices()
			t, _, b := avroType(s.Types()[i], caps, depth+1)
			return t, true, b
		}
		return "String", s.Contains(avro.Null), false
	case *avro.ArraySchema:
		if depth > refDepth {
			return "Array(String)", false, true
		}
		return array(avroType(s.Items(), caps, depth+1)), false, true
	}
	switch s.Type() {
	case avro.Int:
		return "Int32", false, false
	case avro.Long:
		return "Int64", false, false
	case avro.Float:
		return "Float32", false, false
	case avro.Double:
		return "Float64", false, false
	case avro.Boolean:
		return "UInt8", false, false
	case avro.Null:
		return "String", true, false
	}
	return "String", false, false // string, bytes, enum, fixed, record, map
}

// avroLogical maps a logical type; "" for one stored as its underlying type.
func avroLogical(l avro.LogicalSchema, caps ddlCaps) string {
	switch l.Type() {
	case avro.TimestampMillis, avro.LocalTimestampMillis, avro.TimestampMicros, avro.LocalTimestampMicros:
		if !caps.dateTime64 {
			return "String"
		}
		if l.Type() == avro.TimestampMillis || l.Type() == avro.LocalTimestampMillis {
			return "DateTime64(3)"
		}
		return "DateTime64(6)"
	case avro.Date:
		return "Date"
	case avro.TimeMillis, avro.TimeMicros:
		return "String" // the runtime's JSON: a time of day, 08:30:01.5
	case avro.Decimal:
		if d, ok := l.(*avro.DecimalLogicalSchema); ok && d.Precision() <= 38 {
			return fmt.Sprintf("Decimal(%d, %d)", d.Precision(), d.Scale())
		}
		return "String"
	case avro.UUID:
		return "String"
	}
	return ""
}
