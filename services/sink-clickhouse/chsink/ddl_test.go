package chsink

import (
	"context"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/hamba/avro/v2"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	registry "github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

var (
	oldServer = ddlCaps{}                                    // 18.16: no DateTime64, no ADD COLUMN IF NOT EXISTS
	newServer = ddlCaps{dateTime64: true, ifNotExists: true} // 20.1 and later
)

// pgEvents is a JSON Schema of change events shaped as source-postgres derives them: the row in
// $defs/row, "after" referring to it with the key required, x-primary-key at the top.
const pgEvents = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
 "required":["op","after"],"x-primary-key":["tenant","id"],
 "properties":{"op":{"enum":["c","u","d"]},"before":{"anyOf":[{"$ref":"#/$defs/row"},{"type":"null"}]},
  "after":{"anyOf":[{"$ref":"#/$defs/row","required":["tenant","id"]},{"type":"null"}]},
  "source":{"type":"object"}},
 "$defs":{"row":{"type":"object","properties":{
  "tenant":{"type":"string"},
  "id":{"type":"integer","x-pg-type":"bigint"},
  "name":{"type":["string","null"]},
  "price":{"anyOf":[{"type":"number"},{"enum":["NaN","Infinity","-Infinity"]}]},
  "at":{"type":["string","null"],"format":"date-time"},
  "day":{"type":"string","format":"date"},
  "tags":{"type":["array","null"],"items":{"anyOf":[{"type":["integer","null"]},{"type":"array"}]}},
  "ints":{"type":"array","items":{"type":"integer"}},
  "doc":{},
  "flag":{"type":"boolean"}}}}}`

func TestCreateStatementFromJSONSchema(t *testing.T) {
	plain := `{"type":"object","required":["id","qty","kind","ok"],"properties":{
	 "id":{"type":"integer"},"qty":{"type":"integer","default":1},"kind":{"type":"string","default":"a'b"},
	 "ok":{"type":"boolean","default":true},"n":{"type":["integer","number"]},"any":{"type":["string","integer"]},
	 "obj":{"type":"object","properties":{"x":{"type":"integer"}}},"ref":{"$ref":"#/$defs/money"}},
	 "$defs":{"money":{"type":"number"}}}`
	for _, tc := range []struct {
		name, schema string
		caps         ddlCaps
		orderBy      []string
		engine       string
		want         string
	}{{
		name: "change events, old server", schema: pgEvents, caps: oldServer, engine: "MergeTree",
		want: "CREATE TABLE IF NOT EXISTS `db`.`t` (`tenant` String, `id` Int64, `name` Nullable(String), `price` Nullable(Float64), " +
			"`at` Nullable(String), `day` Nullable(Date), `tags` Array(Nullable(String)), `ints` Array(Int64), `doc` Nullable(String), " +
			"`flag` Nullable(UInt8)) ENGINE = MergeTree ORDER BY (`tenant`, `id`)",
	}, {
		name: "change events, new server, CH_ORDER_BY", schema: pgEvents, caps: newServer, orderBy: []string{" name", "id"},
		engine: "ReplacingMergeTree(id)",
		want: "CREATE TABLE IF NOT EXISTS `db`.`t` (`tenant` String, `id` Int64, `name` String, `price` Nullable(Float64), " +
			"`at` Nullable(DateTime64(3)), `day` Nullable(Date), `tags` Array(Nullable(String)), `ints` Array(Int64), `doc` Nullable(String), " +
			"`flag` Nullable(UInt8)) ENGINE = ReplacingMergeTree(id) ORDER BY (`name`, `id`)",
	}, {
		name: "plain object, no key", schema: plain, caps: oldServer, engine: "MergeTree",
		want: "CREATE TABLE IF NOT EXISTS `db`.`t` (`id` Int64, `qty` Int64 DEFAULT 1, `kind` String DEFAULT 'a\\'b', `ok` UInt8 DEFAULT 1, " +
			"`n` Nullable(Float64), `any` Nullable(String), `obj` Nullable(String), `ref` Nullable(Float64)) ENGINE = MergeTree ORDER BY tuple()",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := jsonRows([]byte(tc.schema), tc.caps)
			if err != nil {
				t.Fatal(err)
			}
			got, err := createStatement("`db`.`t`", r, tc.orderBy, tc.engine)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// avroOrder has a field of every kind the mapping knows.
const avroOrder = `{"type":"record","name":"Order","x-primary-key":["id"],"fields":[
 {"name":"id","type":"long"},{"name":"n","type":"int"},{"name":"score","type":"double"},{"name":"ratio","type":"float"},
 {"name":"ok","type":"boolean"},{"name":"item","type":"string"},{"name":"raw","type":"bytes"},
 {"name":"note","type":["null","string"],"default":null},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"at6","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"huge","type":{"type":"bytes","logicalType":"decimal","precision":60,"scale":2}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"maybe","type":["null",{"type":"array","items":["null","long"]}]},
 {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
 {"name":"meta","type":{"type":"map","values":"long"}},
 {"name":"addr","type":{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"}]}},
 {"name":"either","type":["null","string","long"]},
 {"name":"qty","type":"int","default":7},{"name":"label","type":"string","default":"x'y"}]}`

func compileAvro(t *testing.T, text string) avro.Schema {
	t.Helper()
	v, err := (&registry.Schema{Type: registry.Avro, Text: []byte(text)}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	return v.Avro()
}

func TestCreateStatementFromAvro(t *testing.T) {
	r, err := avroRows(compileAvro(t, avroOrder), oldServer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := createStatement("`db`.`t`", r, nil, "MergeTree")
	if err != nil {
		t.Fatal(err)
	}
	want := "CREATE TABLE IF NOT EXISTS `db`.`t` (`id` Int64, `n` Int32, `score` Float64, `ratio` Float32, `ok` UInt8, `item` String, " +
		"`raw` String, `note` Nullable(String), `at` String, `at6` Nullable(String), `day` Date, `tm` String, `price` Decimal(10, 2), " +
		"`huge` String, `tags` Array(String), `maybe` Array(Nullable(Int64)), `kind` String, `meta` String, `addr` String, " +
		"`either` Nullable(String), `qty` Int32 DEFAULT 7, `label` String DEFAULT 'x\\'y') ENGINE = MergeTree ORDER BY (`id`)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r, err = avroRows(compileAvro(t, avroOrder), newServer)
	if err != nil {
		t.Fatal(err)
	}
	if at, at6 := r.fields[8].column(false, false), r.fields[9].column(false, false); at != "DateTime64(3)" || at6 != "Nullable(DateTime64(6))" {
		t.Errorf("timestamps on a server with DateTime64: %s, %s", at, at6)
	}
}

// TestAvroChangeEventRows: the rows of an Avro change event (source-postgres's shape) are "after".
func TestAvroChangeEventRows(t *testing.T) {
	r, err := avroRows(compileAvro(t, `{"type":"record","name":"Event","fields":[
	 {"name":"op","type":{"type":"enum","name":"Op","symbols":["c","u","d"]}},
	 {"name":"before","type":["null",{"type":"record","name":"Before","fields":[{"name":"id","type":["null","long"]}]}]},
	 {"name":"after","type":["null",{"type":"record","name":"After","fields":[{"name":"id","type":"long"},{"name":"v","type":["null","string"],"default":null}]}]}]}`), oldServer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := createStatement("t", r, []string{"id"}, "MergeTree")
	if want := "CREATE TABLE IF NOT EXISTS t (`id` Int64, `v` Nullable(String)) ENGINE = MergeTree ORDER BY (`id`)"; err != nil || got != want {
		t.Errorf("got %s (%v), want %s", got, err, want)
	}
}

func TestAddColumnStatement(t *testing.T) {
	for _, tc := range []struct {
		f    schemaField
		caps ddlCaps
		want string
	}{
		{schemaField{name: "coupon", typ: "String", nullable: true}, oldServer, "ALTER TABLE t ADD COLUMN `coupon` Nullable(String)"},
		{schemaField{name: "qty", typ: "Int64"}, newServer, "ALTER TABLE t ADD COLUMN IF NOT EXISTS `qty` Nullable(Int64)"}, // required without a default
		{schemaField{name: "gift", typ: "UInt8", def: "0"}, oldServer, "ALTER TABLE t ADD COLUMN `gift` UInt8 DEFAULT 0"},
		{schemaField{name: "tags", typ: "Array(String)", nullable: true, bare: true}, oldServer, "ALTER TABLE t ADD COLUMN `tags` Array(String)"},
	} {
		if got := addStatement("t", tc.f, tc.caps); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
	}
}

func TestSchemasWithoutRows(t *testing.T) {
	for _, text := range []string{`[]`, `{"type":"object"}`, `{"type":"string"}`, `{"$ref":"#/nowhere"}`, `{"type":"object","properties":`} {
		if _, err := jsonRows([]byte(text), oldServer); err == nil {
			t.Errorf("%s: no error", text)
		}
	}
	if _, err := avroRows(compileAvro(t, `{"type":"array","items":"long"}`), oldServer); err == nil || !strings.Contains(err.Error(), "not a record") {
		t.Errorf("Avro array: %v", err)
	}
	r, err := jsonRows([]byte(pgEvents), oldServer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createStatement("t", r, []string{"nope"}, "MergeTree"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("ORDER BY a column that is not a field: %v", err)
	}
}

// TestAvroIntoCreatedThenAlteredTable: Avro records (SCHEMA_DECODE) into a table the sink creates
// from their schema; then a new schema version adds fields, and its records land in the columns
// the sink adds for them, the earlier rows holding NULL or the field's default.
func TestAvroIntoCreatedThenAlteredTable(t *testing.T) {
	ep := harness.ClickHouse(t)
	cfg := loadConfig(t, ep, "orders", "CH_CREATE_TABLE=true", "CH_ALTER_TABLE=true", "CH_ORDER_BY=id")
	br := runtimetest.StartBroker(t)
	topic, table := "/default/orders", ep.Database+".orders"
	const v1 = `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},
	 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
	 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"tags","type":{"type":"array","items":"string"}},
	 {"name":"note","type":["null","string"],"default":null}`
	prod, version1 := schemaProducer(t, br, topic, danube.SchemaAvro, v1+`]}`)
	sc := runtimetest.SinkConfig(br, "orders", topic)
	sc.SchemaDecode, sc.BatchSize = true, 4
	var logs runtimetest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	runtimetest.StartSink(t, sc, newSink(t, cfg, sc, runtime.WithLogger(log)), runtime.WithLogger(log))

	at := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	for id := int64(1); id <= 3; id++ {
		sendAvro(t, prod, v1+`]}`, version1, map[string]any{"id": id, "item": "book", "price": big.NewRat(1234+id, 100), "at": at,
			"tags": []string{"a", "b"}, "note": map[string]any{"string": "n"}})
	}
	conn := reader(t, ep)
	row := "concat(toString(id), '|', item, '|', toString(price), '|', at, '|', arrayStringConcat(tags, ','), '|', ifNull(note, 'NULL')"
	waitRows(t, conn, "SELECT "+row+") FROM "+table+" ORDER BY id",
		"1|book|12.35|2026-01-02T03:04:05.678Z|a,b|n", "2|book|12.36|2026-01-02T03:04:05.678Z|a,b|n", "3|book|12.37|2026-01-02T03:04:05.678Z|a,b|n")
	wantColumns(t, conn, ep.Database, "orders", "id Int64", "item String", "price Decimal(10, 2)", "at String", "tags Array(String)", "note Nullable(String)")

	v2 := v1 + `,{"name":"coupon","type":["null","string"],"default":null},{"name":"gift","type":"boolean","default":false}]}`
	reg2, err := runtimetest.Client(t, br).SchemaRegistry().Register(context.Background(), "default-orders", danube.SchemaAvro, []byte(v2), nil)
	if err != nil || reg2.Version != version1+1 {
		t.Fatalf("register version 2: %+v, %v", reg2, err)
	}
	// another replica got there first with one of the columns: this server (18.16) has no ADD
	// COLUMN IF NOT EXISTS, so the sink's ADD fails, and it finds the column there
	exec(t, ep, "ALTER TABLE "+table+" ADD COLUMN coupon Nullable(String)")
	for id := int64(4); id <= 5; id++ {
		sendAvro(t, prod, v2, reg2.Version, map[string]any{"id": id, "item": "pen", "price": big.NewRat(100, 1), "at": at, "tags": []string{},
			"note": nil, "coupon": map[string]any{"string": "SAVE"}, "gift": true})
	}
	waitRows(t, conn, "SELECT "+row+", '|', ifNull(coupon, 'NULL'), '|', toString(gift)) FROM "+table+" ORDER BY id",
		"1|book|12.35|2026-01-02T03:04:05.678Z|a,b|n|NULL|0", "2|book|12.36|2026-01-02T03:04:05.678Z|a,b|n|NULL|0",
		"3|book|12.37|2026-01-02T03:04:05.678Z|a,b|n|NULL|0", "4|pen|100.00|2026-01-02T03:04:05.678Z||NULL|SAVE|1",
		"5|pen|100.00|2026-01-02T03:04:05.678Z||NULL|SAVE|1")
	wantColumns(t, conn, ep.Database, "orders", "id Int64", "item String", "price Decimal(10, 2)", "at String", "tags Array(String)",
		"note Nullable(String)", "coupon Nullable(String)", "gift UInt8")
	if l := logs.String(); !strings.Contains(l, "ADD COLUMN `gift` UInt8 DEFAULT 0") || strings.Contains(l, "ADD COLUMN `coupon`") {
		t.Errorf("want gift added by the sink, coupon found added:\n%s", l)
	}
}

// TestCreateTableFromJSONSchema: JSON records into a table created from their JSON Schema,
// ordered by its x-primary-key; a second sink on the same table (a replica) creates nothing.
func TestCreateTableFromJSONSchema(t *testing.T) {
	ep := harness.ClickHouse(t)
	cfg := loadConfig(t, ep, "rows", "CH_CREATE_TABLE=true", "CH_TABLE_ENGINE=ReplacingMergeTree")
	br := runtimetest.StartBroker(t)
	topic := "/default/rows"
	text := `{"type":"object","x-primary-key":["id"],"required":["id"],"properties":{"id":{"type":"integer"},
	 "name":{"type":["string","null"]},"at":{"type":"string","format":"date-time"},"score":{"type":"number"}}}`
	prod, _ := schemaProducer(t, br, topic, danube.SchemaJSON, text)
	sc := runtimetest.SinkConfig(br, "rows", topic)
	sc.SchemaDecode = true // the runtime reads schemas only to decode or validate
	runtimetest.StartSink(t, sc, newSink(t, cfg, sc))
	for _, p := range []string{`{"id":2,"name":"b","at":"2026-01-02T03:04:05Z","score":1.5}`, `{"id":1,"name":null}`} {
		if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	conn := reader(t, ep)
	waitRows(t, conn, "SELECT concat(toString(id), '|', ifNull(name, 'NULL'), '|', ifNull(at, 'NULL'), '|', ifNull(toString(score), 'NULL')) FROM "+ep.Database+".rows ORDER BY id",
		"1|NULL|NULL|NULL", "2|b|2026-01-02T03:04:05Z|1.5")
	wantColumns(t, conn, ep.Database, "rows", "id Int64", "name Nullable(String)", "at Nullable(String)", "score Nullable(Float64)")
	engine := queryStrings(t, conn, "SELECT engine_full FROM system.tables WHERE database = '"+ep.Database+"' AND name = 'rows'")
	if len(engine) != 1 || !strings.HasPrefix(engine[0], "ReplacingMergeTree ORDER BY id") {
		t.Errorf("engine %q", engine)
	}

	// a replica starting now finds the table and inserts into it
	s := initialized(t, cfg)
	if s.schema == nil || len(s.schema.cols) != 4 {
		t.Fatalf("replica's schema: %+v", s.schema)
	}
}

// TestCreateTableFailures: the statement the server refuses, and records without a schema, stop
// the sink with an error that says why.
func TestCreateTableFailures(t *testing.T) {
	ep := harness.ClickHouse(t)
	br := runtimetest.StartBroker(t)
	text := `{"type":"object","properties":{"id":{"type":"integer"}}}`
	for _, tc := range []struct {
		name, env, schema, want string
	}{
		{"engine", "CH_TABLE_ENGINE=NoSuchEngine", text, "ClickHouse refused the statement (check CH_TABLE_ENGINE and CH_ORDER_BY): clickhouse " +
			strings.Split(ep.NativeAddr, " ")[0] + ": CREATE TABLE IF NOT EXISTS `" + ep.Database + "`.`engine` (`id` Nullable(Int64)) ENGINE = NoSuchEngine ORDER BY tuple()"},
		{"order", "CH_ORDER_BY=nope", text, `ORDER BY column "nope" is not a field of the schema's rows`},
		{"noschema", "CH_ORDER_BY=id", "", "carries no schema to create it from (CH_CREATE_TABLE)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, ep, tc.name, "CH_CREATE_TABLE=true", tc.env)
			topic := "/default/" + tc.name
			var prod *danube.Producer
			if tc.schema != "" {
				prod, _ = schemaProducer(t, br, topic, danube.SchemaJSON, tc.schema)
			} else {
				runtimetest.CreateTopic(t, br, topic)
			}
			sc := runtimetest.SinkConfig(br, tc.name, topic)
			sc.SchemaDecode = true
			r := runtimetest.StartSink(t, sc, newSink(t, cfg, sc))
			if prod != nil {
				if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: []byte(`{"id":1}`)}); err != nil {
					t.Fatal(err)
				}
			} else {
				runtimetest.Produce(t, br, topic, runtimetest.Payloads(`{"id":1}`)...)
			}
			err := waitStopped(t, r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("stopped with %v\nwant it to say %s", err, tc.want)
			}
		})
	}
}

// sendAvro sends rec encoded with the Avro schema text, stamped with version.
func sendAvro(t *testing.T, prod *danube.Producer, text string, version uint32, rec map[string]any) {
	t.Helper()
	p, err := avro.Marshal(compileAvro(t, text), rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: p, SchemaVersion: version}); err != nil {
		t.Fatal(err)
	}
}

// schemaProducer registers text under topic's subject and returns a producer stamping it, and
// the version registered.
func schemaProducer(t *testing.T, br runtimetest.Broker, topic string, typ danube.SchemaType, text string) (*danube.Producer, uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	cl := runtimetest.Client(t, br)
	subject := strings.ReplaceAll(strings.TrimPrefix(topic, "/"), "/", "-")
	reg, err := cl.SchemaRegistry().Register(ctx, subject, typ, []byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := cl.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: subject, Dispatch: danube.Reliable, Schema: &danube.SchemaRef{Subject: subject}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	return prod, reg.Version
}

// waitStopped waits for the sink to stop by itself and returns why.
func waitStopped(t *testing.T, r *runtimetest.Running) error {
	t.Helper()
	for deadline := time.Now().Add(runtimetest.Timeout); !r.Done(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sink did not stop")
		}
	}
	err := r.Wait()
	if runtime.ClassOf(err) != runtime.ClassFatal {
		t.Errorf("%v: class %v, want fatal", err, runtime.ClassOf(err))
	}
	return err
}

// waitRows waits until query returns want.
func waitRows(t *testing.T, conn clickhouse.Conn, query string, want ...string) {
	t.Helper()
	var got []string
	var err error
	for deadline := time.Now().Add(runtimetest.Timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, err = tryStrings(conn, query); err == nil && strings.Join(got, "\n") == strings.Join(want, "\n") {
			return
		}
	}
	t.Fatalf("%s:\ngot  %q (%v)\nwant %q", query, got, err, want)
}

// tryStrings reads one column of text per row; the table may not exist yet.
func tryStrings(conn clickhouse.Conn, query string) ([]string, error) {
	rows, err := conn.Query(context.Background(), query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// wantColumns checks the table's columns as "name type", in order.
func wantColumns(t *testing.T, conn clickhouse.Conn, database, table string, want ...string) {
	t.Helper()
	got := queryStrings(t, conn, "SELECT concat(name, ' ', type) FROM system.columns WHERE database = '"+database+"' AND table = '"+table+"'")
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("columns %q, want %q", got, want)
	}
}

func TestDDLSettingsRefused(t *testing.T) {
	for _, env := range []string{"CH_ORDER_BY=id,,at", "CH_TABLE_ENGINE=MergeTree; DROP TABLE x", "CH_TABLE_ENGINE= "} {
		var cfg Config
		err := config.Load(&cfg, []string{"DANUBE_SERVICE_URL=http://danube:6650", "DANUBE_TOPIC=/default/t", "SUBSCRIPTION_NAME=s",
			"CONNECTOR_NAME=c", "CH_HOST=ch", "CH_TABLE=t", env})
		if name, _, _ := strings.Cut(env, "="); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", env, err)
		}
	}
}
