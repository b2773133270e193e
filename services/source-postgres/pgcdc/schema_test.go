package pgcdc

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/internal/pgjson"
)

// TestTypeOfFollowsPgjson: for every built-in type, the schema says array exactly where pgjson
// writes an array, and string where pgjson writes the text as a string.
func TestTypeOfFollowsPgjson(t *testing.T) {
	for oid := uint32(1); oid < firstNormalOID; oid++ {
		ct := typeOf(oid)
		arr, _ := pgjson.Append(nil, oid, []byte("{}"))
		if (string(arr) == "[]") != (ct.json["type"] == "array") {
			t.Errorf("oid %d: pgjson writes {} as %s, schema %v", oid, arr, ct.json)
		}
		str, err := pgjson.Append(nil, oid, []byte("x"))
		isString := err == nil && string(str) == `"x"`
		if isString != (ct.json["type"] == "string" && oid != pgjson.Bytea) {
			t.Errorf("oid %d: pgjson writes x as %s (%v), schema %v", oid, str, err, ct.json)
		}
	}
}

func testColumns() []catalogColumn {
	return []catalogColumn{
		{name: "tenant", oid: 25, typmod: -1, notNull: true, pk: 1, typeName: "text"},
		{name: "id", oid: pgjson.Int8, typmod: -1, notNull: true, pk: 2, typeName: "bigint"},
		{name: "amount", oid: pgjson.Numeric, typmod: 655366, typeName: "numeric(10,2)"},
		{name: "tags", oid: 1009, typmod: -1, typeName: "text[]"},
	}
}

// TestTableSchemaIsDeterministic: the same columns give byte-identical text, a new column another.
func TestTableSchemaIsDeterministic(t *testing.T) {
	tb := Table{"public", "orders"}
	a := tableSchema("shop", tb, testColumns())
	for range 10 {
		if b := tableSchema("shop", tb, testColumns()); !bytes.Equal(a.Text, b.Text) {
			t.Fatalf("texts differ:\n%s\n%s", a.Text, b.Text)
		}
	}
	added := append(testColumns(), catalogColumn{name: "note", oid: 25, typmod: -1, typeName: "text"})
	if b := tableSchema("shop", tb, added); bytes.Equal(a.Text, b.Text) {
		t.Fatal("an added column gives the same text")
	}
	var doc struct {
		PK []string `json:"x-primary-key"`
	}
	if err := json.Unmarshal(a.Text, &doc); err != nil || !slices.Equal(doc.PK, []string{"tenant", "id"}) {
		t.Fatalf("x-primary-key %v (%v) in %s", doc.PK, err, a.Text)
	}
	if _, err := a.Compile(); err != nil {
		t.Fatal(err)
	}
}

// TestTableSchemaRejects: the schema holds the types, the NOT NULLs and the key.
func TestTableSchemaRejects(t *testing.T) {
	v, err := tableSchema("shop", Table{"public", "orders"}, testColumns()).Compile()
	if err != nil {
		t.Fatal(err)
	}
	src := `"source":{"db":"shop","lsn":"0/16B3748","txid":7,"commit_time":"2024-02-29T11:14:15Z","snapshot":false}`
	ok := `{"op":"INSERT","schema":"public","table":"orders","before":null,"after":{"tenant":"eu","id":1,"amount":null,"tags":["a",null]},` + src + `}`
	if err := v.Validate([]byte(ok)); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	for name, after := range map[string]string{
		"id as string":       `{"tenant":"eu","id":"1"}`,
		"NOT NULL as null":   `{"tenant":null,"id":1}`,
		"key missing":        `{"tenant":"eu"}`,
		"text key missing":   `{"id":1}`,
		"numeric as number":  `{"tenant":"eu","id":1,"amount":1.5}`,
		"array of integers":  `{"tenant":"eu","id":1,"tags":[1]}`,
		"after not a object": `"x"`,
	} {
		ev := `{"op":"INSERT","schema":"public","table":"orders","before":null,"after":` + after + `,` + src + `}`
		if err := v.Validate([]byte(ev)); err == nil {
			t.Errorf("%s: %s validates", name, ev)
		}
	}
	toasted := `{"op":"UPDATE","schema":"public","table":"orders","before":{"tenant":"eu","id":1},"after":{"id":1},"unchanged_toast":["tenant"],` + src + `}`
	if err := v.Validate([]byte(toasted)); err != nil {
		t.Errorf("a key left out as unchanged TOAST: %v", err)
	}
	if err := v.Validate([]byte(strings.Replace(ok, `"orders"`, `"other"`, 1))); err == nil {
		t.Error("an event of another table validates")
	}
}

// TestRelationColumns: the RELATION message's columns, completed from the catalog where it agrees.
func TestRelationColumns(t *testing.T) {
	m := &pglogrepl.RelationMessage{Columns: []*pglogrepl.RelationMessageColumn{
		{Name: "tenant", DataType: 25, TypeModifier: -1}, {Name: "id", DataType: pgjson.Int4, TypeModifier: -1}, {Name: "gone", DataType: 25, TypeModifier: -1},
	}}
	got := relationColumns(m, testColumns())
	want := []catalogColumn{
		testColumns()[0],
		{name: "id", oid: pgjson.Int4, typmod: -1}, // the catalog has another type
		{name: "gone", oid: 25, typmod: -1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// schemaTestDDL creates a table of many types; "dropped" leaves a dropped column behind.
const schemaTestDDL = `
	CREATE TYPE mood AS ENUM ('sad', 'happy');
	CREATE DOMAIN posint AS int CHECK (VALUE > 0);
	CREATE TABLE typed (
		tenant text NOT NULL, id bigint NOT NULL, i2 smallint, i4 int NOT NULL DEFAULT 0, b bool, n numeric(30,10),
		f8 float8, f4 real, dropped int, t text, vc varchar(20), ts timestamp, tstz timestamptz, d date, tm time,
		iv interval, by bytea, j json, jb jsonb, arr int[], tarr text[], marr int[][], farr float8[], tsarr timestamptz[],
		u uuid, uarr uuid[], m mood, p posint, inet inet, mon money, body text, PRIMARY KEY (tenant, id));
	ALTER TABLE typed DROP COLUMN dropped;
	ALTER TABLE typed ALTER COLUMN body SET STORAGE EXTERNAL, ALTER COLUMN tenant SET STORAGE EXTERNAL;
	CREATE TABLE full_rows (k text PRIMARY KEY, v int, w jsonb NOT NULL);
	ALTER TABLE full_rows REPLICA IDENTITY FULL;`

const schemaTestRows = `
	INSERT INTO typed (tenant, id) VALUES ('eu', 1);
	INSERT INTO typed VALUES ('eu', 9007199254740993, -2, 42, true, 12345678901234567890.0123456789, 'NaN', '-Infinity',
		'quote " é', 'v', '2024-02-29 13:14:15.123456', 'infinity', '0044-03-15 BC', '13:14:15', '1 day 2 hours',
		'\x00ff10', '{"a": [1, 2]}', '"just a string"', '{1,NULL,3}', '{"x y",NULL}', '{{1,2},{3,NULL}}', '{1.5,NaN}',
		'{"2024-02-29 13:14:15+02",NULL}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
		'happy', 7, '10.0.0.1/8', 12.5, repeat('abcdefghij', 400));
	INSERT INTO typed (tenant, id) VALUES (repeat('t', 2100), 4);
	INSERT INTO full_rows VALUES ('x', NULL, 'null');`

// schemaTestChanges: an UPDATE leaving the TOASTed body unchanged, one leaving the TOASTed key
// unchanged, a key change, a DELETE, FULL identity changes, a TRUNCATE: 9 events.
const schemaTestChanges = `
	UPDATE typed SET i2 = 3 WHERE id = 9007199254740993;
	UPDATE typed SET i2 = 4 WHERE id = 4;
	UPDATE typed SET id = 2, n = NULL WHERE id = 1;
	DELETE FROM typed WHERE id = 2;
	INSERT INTO full_rows VALUES ('y', 1, '[1]');
	UPDATE full_rows SET v = 2, w = '{}' WHERE k = 'y';
	DELETE FROM full_rows WHERE k = 'x';
	TRUNCATE full_rows;
	INSERT INTO typed (tenant, id, p) VALUES ('us', 3, 1);`

// TestSchemaValidatesConnectorEvents: events the connector produces from a real PostgreSQL (the
// snapshot's, then the stream's) validate against the schemas derived from the catalog.
func TestSchemaValidatesConnectorEvents(t *testing.T) {
	ep := harness.Postgres(t)
	pgExec(t, ep.DSN, schemaTestDDL+schemaTestRows)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, ep.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	validators := map[string]*schema.Validator{}
	columns := map[string][]catalogColumn{}
	for _, name := range []string{"typed", "full_rows"} {
		tb := Table{"public", name}
		cols, err := readColumns(ctx, conn, tb)
		if err != nil {
			t.Fatal(err)
		}
		columns[name] = cols
		if validators[name], err = tableSchema(ep.Database, tb, cols).Compile(); err != nil {
			t.Fatal(err)
		}
	}
	checkTypedColumns(t, columns["typed"])

	evs := connectorEvents(t, ctx, ep, 4, func() { pgExec(t, ep.DSN, schemaTestChanges) }, 9)
	ops := map[string]int{}
	for _, ev := range evs {
		var e struct{ Op, Table string }
		if err := json.Unmarshal(ev, &e); err != nil {
			t.Fatal(err)
		}
		ops[e.Op]++
		if err := validators[e.Table].Validate(ev); err != nil {
			t.Errorf("event %s: %v", ev, err)
		}
	}
	if !bytes.Contains(evs[4], []byte(`"unchanged_toast":["body"]`)) || !bytes.Contains(evs[5], []byte(`"unchanged_toast":["tenant"]`)) {
		t.Errorf("want UPDATEs with body, then tenant unchanged, got %s, %s", evs[4], evs[5])
	}
	checkAvroEvents(t, columns, evs)
	if want := map[string]int{OpRead: 4, OpUpdate: 4, OpDelete: 2, OpInsert: 2, OpTruncate: 1}; !maps.Equal(ops, want) {
		t.Errorf("ops %v, want %v", ops, want)
	}
}

// checkTypedColumns: attnum order without the dropped column, the key's positions, NOT NULL, names.
func checkTypedColumns(t *testing.T, cols []catalogColumn) {
	t.Helper()
	var names []string
	for _, c := range cols {
		names = append(names, c.name)
	}
	want := "tenant id i2 i4 b n f8 f4 t vc ts tstz d tm iv by j jb arr tarr marr farr tsarr u uarr m p inet mon body"
	if strings.Join(names, " ") != want {
		t.Fatalf("columns %v", names)
	}
	if c := cols[0]; c.pk != 1 || !c.notNull || c.oid != 25 {
		t.Errorf("tenant: %+v", c)
	}
	if c := cols[1]; c.pk != 2 || !c.notNull || c.oid != pgjson.Int8 {
		t.Errorf("id: %+v", c)
	}
	if c := cols[3]; c.pk != 0 || !c.notNull {
		t.Errorf("i4: %+v", c)
	}
	if c := cols[5]; c.notNull || c.typeName != "numeric(30,10)" || c.oid != pgjson.Numeric {
		t.Errorf("n: %+v", c)
	}
}

func pgExec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// connectorEvents runs the connector on typed and full_rows: it collects the snapshot's events
// (reads of them), then runs change and collects changes events of the stream.
func connectorEvents(t *testing.T, ctx context.Context, ep harness.PostgresEndpoint, reads int, change func(), changes int) [][]byte {
	t.Helper()
	u, err := url.Parse(ep.DSN)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	cfg := &Config{
		SourceConfig: runtime.SourceConfig{BatchSize: 100}, Host: u.Hostname(), Port: port, Database: ep.Database,
		User: u.User.Username(), SSLMode: "disable", Slot: ep.Database, Publication: "pub_" + ep.Database,
		Tables: []string{"typed", "full_rows"}, SnapshotMode: SnapshotInitial, SnapshotState: "public.danube_cdc_snapshot",
		Heartbeat: config.Millis(time.Second),
	}
	s := newSource(cfg, runtime.Resources{})
	if err := s.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	var evs [][]byte
	poll := func(until func() bool) {
		for !until() {
			recs, err := s.Poll(ctx)
			if err != nil || ctx.Err() != nil {
				t.Fatalf("poll: %v (%v) after %d events", err, ctx.Err(), len(evs))
			}
			for _, r := range recs {
				if !r.IsCheckpoint() {
					evs = append(evs, r.Payload)
				}
			}
		}
	}
	poll(func() bool { return len(evs) >= reads && s.phase == phaseStream })
	change()
	poll(func() bool { return len(evs) >= reads+changes })
	return evs
}

// checkAvroEvents: each event's Avro form follows the table's Avro schema, but for a
// multi-dimensional array, which has none.
func checkAvroEvents(t *testing.T, columns map[string][]catalogColumn, evs [][]byte) {
	t.Helper()
	for _, ev := range evs {
		var e struct{ Table string }
		if err := json.Unmarshal(ev, &e); err != nil {
			t.Fatal(err)
		}
		sc := tableAvroSchema(Table{"public", e.Table}, columns[e.Table])
		v, err := sc.Compile()
		if err != nil {
			t.Fatal(err)
		}
		bin, err := avroEvent(v.Avro(), columns[e.Table], ev)
		if bytes.Contains(ev, []byte(`"marr":[[`)) {
			if err == nil || !strings.Contains(err.Error(), "multi-dimensional") {
				t.Errorf("2-D array: got %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("event %s: %v", ev, err)
			continue
		}
		if err := v.Validate(bin); err != nil {
			t.Errorf("event %s: Avro %v", ev, err)
		}
	}
}

// avroTestEvent is an UPDATE of testColumns plus a float, a bytea and a column whose name is no
// Avro name.
const avroTestEvent = `{"op":"UPDATE","schema":"public","table":"orders","before":{"tenant":"eu","id":1},` +
	`"after":{"tenant":"eu","id":1,"amount":"1.50","tags":["a",null],"f":"NaN","by":"AP8Q","1 bad-name":{"x": 1},"docs":[[1,2],null]},` +
	`"unchanged_toast":["z"],"source":{"db":"shop","lsn":"0/16B3748","txid":7,"commit_time":"2024-02-29T11:14:15Z","snapshot":false}}`

func avroTestColumns() []catalogColumn {
	return append(testColumns(), catalogColumn{name: "f", oid: pgjson.Float8, typmod: -1, notNull: true},
		catalogColumn{name: "by", oid: pgjson.Bytea, typmod: -1}, catalogColumn{name: "1 bad-name", oid: pgjson.JSONB, typmod: -1},
		catalogColumn{name: "docs", oid: 3807, typmod: -1}) // jsonb[]
}

// TestAvroEventRoundTrip: a JSON event in Avro decodes to its values.
func TestAvroEventRoundTrip(t *testing.T) {
	cols := avroTestColumns()
	sc := tableAvroSchema(Table{"public", "orders"}, cols)
	if again := tableAvroSchema(Table{"public", "orders"}, cols); !bytes.Equal(sc.Text, again.Text) {
		t.Fatal("Avro schema text differs for the same table")
	}
	v, err := sc.Compile()
	if err != nil {
		t.Fatalf("%v in %s", err, sc.Text)
	}
	bin, err := avroEvent(v.Avro(), cols, []byte(avroTestEvent))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := avro.Unmarshal(v.Avro(), bin, &out); err != nil {
		t.Fatal(err)
	}
	after := out["after"].(map[string]any)["postgres.public.orders.After"].(map[string]any)
	before := out["before"].(map[string]any)["postgres.public.orders.Before"].(map[string]any)
	src := out["source"].(map[string]any)
	if out["op"] != OpUpdate || out["table"] != "orders" || src["txid"] != int64(7) || src["lsn"] != "0/16B3748" ||
		!slices.Equal(out["unchanged_toast"].([]any), []any{"z"}) {
		t.Errorf("envelope %v", out)
	}
	if after["id"] != int64(1) || after["tenant"] != "eu" || after["amount"] != "1.50" || !math.IsNaN(after["f"].(float64)) ||
		!bytes.Equal(after["by"].([]byte), []byte{0, 0xff, 0x10}) || after["__bad_name"] != `{"x": 1}` {
		t.Errorf("after %v", after)
	}
	if tags := after["tags"].(map[string]any)["array"].([]any); !slices.Equal(tags, []any{"a", nil}) {
		t.Errorf("tags %v", tags)
	}
	if docs := after["docs"].(map[string]any)["array"].([]any); !slices.Equal(docs, []any{"[1,2]", nil}) {
		t.Errorf("docs %v", docs)
	}
	if before["id"] != int64(1) || before["amount"] != nil {
		t.Errorf("before %v", before)
	}
}

// TestAvroEventRefuses: what the Avro schema has no place for is an error, not a wrong value.
func TestAvroEventRefuses(t *testing.T) {
	cols := avroTestColumns()
	v, err := tableAvroSchema(Table{"public", "orders"}, cols).Compile()
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range map[string]string{
		"NOT NULL float missing": strings.Replace(avroTestEvent, `"f":"NaN",`, "", 1),
		"2-D array":              strings.Replace(avroTestEvent, `["a",null]`, `[["a"]]`, 1),
		"id as text":             strings.Replace(avroTestEvent, `"id":1,"amount"`, `"id":"x","amount"`, 1),
	} {
		if _, err := avroEvent(v.Avro(), cols, []byte(ev)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestAvroSchemaEvolves: a nullable column added is a new schema that reads the old data
// (BACKWARD compatible); the names stay valid and unique.
func TestAvroSchemaEvolves(t *testing.T) {
	tb := Table{"public", "orders"}
	old, err := avro.ParseBytes(tableAvroSchema(tb, testColumns()).Text)
	if err != nil {
		t.Fatal(err)
	}
	added := append(testColumns(), catalogColumn{name: "note", oid: 25, typmod: -1})
	next, err := avro.ParseBytes(tableAvroSchema(tb, added).Text)
	if err != nil {
		t.Fatal(err)
	}
	if err := avro.NewSchemaCompatibility().Compatible(next, old); err != nil {
		t.Errorf("the new schema cannot read old data: %v", err)
	}
	names := avroFields([]catalogColumn{{name: "a b"}, {name: "a_b"}, {name: "9"}, {name: ""}, {name: "é"}})
	if want := []string{"a_b", "a_b_2", "_", "__2", "__"}; !slices.Equal(names, want) {
		t.Errorf("names %v", names)
	}
}
