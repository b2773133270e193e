package sourcepostgres

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/schema"
)

// TestSchemaPerTableAndVersionOnDDL is issue 25's source-postgres acceptance run: with
// SCHEMA_TYPE=json_schema (events as JSON) or avro (events encoded in Avro) the binary registers a
// subject for the table's topic, every message carries its schema id and version and validates
// against (decodes with) that version, and an ALTER TABLE … ADD COLUMN mid-stream registers
// version 2, which the events after it carry.
func TestSchemaPerTableAndVersionOnDDL(t *testing.T) {
	for _, typ := range []schema.Type{schema.JSONSchema, schema.Avro} {
		t.Run(typ.String(), func(t *testing.T) { schemaRun(t, typ) })
	}
}

func schemaRun(t *testing.T, typ schema.Type) {
	pg := harness.Postgres(t)
	exec1(t, pg.DSN, "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2))")
	exec1(t, pg.DSN, "INSERT INTO items VALUES (1, 'pen', 1.50)")

	b := runtimetest.StartBroker(t)
	const topic = "/default/pg-public-items"
	runtimetest.CreateTopic(t, b, topic)
	rows := runtimetest.Collect(t, b, topic, "reader")
	env := chainEnv(t, pg, b.URL(), "/default/cdc-dlq")
	for _, k := range []string{"TRANSFORMS", "TRANSFORM_MASK_PII_TYPE", "TRANSFORM_MASK_PII_FIELDS", "TRANSFORM_MASK_PII_MODE",
		"TRANSFORM_MASK_PII_HASH_KEY_FILE", "TRANSFORM_ONLY_EU_TYPE", "TRANSFORM_ONLY_EU_EXPR"} {
		delete(env, k)
	}
	env["TABLE_WHITELIST"], env["CONNECTOR_NAME"], env["SCHEMA_TYPE"] = "items", "cdc-schemas", typ.String()
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: env})
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs())
	}
	exec1(t, pg.DSN, "INSERT INTO items VALUES (2, 'ink', 3.00)")
	rows.WaitFor(t, "the snapshot row and the insert", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	exec1(t, pg.DSN, "ALTER TABLE items ADD COLUMN color text")
	exec1(t, pg.DSN, "INSERT INTO items VALUES (3, 'cap', 0.20, 'red')")
	exec1(t, pg.DSN, "UPDATE items SET color = 'blue' WHERE id = 1")
	got := rows.WaitFor(t, "the events after the ALTER", func(ms []*danube.Message) bool { return len(ms) >= 4 })
	stop(t, c)

	reg := runtimetest.Client(t, b).SchemaRegistry()
	latest, err := reg.Latest(context.Background(), "default-pg-public-items")
	if err != nil || latest.Version != 2 || latest.CreatedBy != "cdc-schemas" {
		t.Fatalf("subject default-pg-public-items: %+v, %v; want version 2 registered by the connector", latest, err)
	}
	wantVersions := []uint32{1, 1, 2, 2}
	for i, m := range got {
		if m.SchemaID == nil || *m.SchemaID != latest.ID || m.SchemaVersion == nil || *m.SchemaVersion != wantVersions[i] {
			t.Fatalf("message %d %s: schema %v/%v, want id %d version %d", i, m.Payload, m.SchemaID, m.SchemaVersion, latest.ID, wantVersions[i])
		}
		s, err := reg.Get(context.Background(), *m.SchemaID, *m.SchemaVersion)
		if err != nil {
			t.Fatal(err)
		}
		v, err := (&schema.Schema{Type: typ, Text: s.Definition}).Compile()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(m.Payload); err != nil {
			t.Fatalf("message %d %s does not validate against version %d: %v", i, m.Payload, *m.SchemaVersion, err)
		}
	}
	if want := map[schema.Type]string{schema.JSONSchema: "application/json", schema.Avro: "application/avro"}[typ]; got[0].Attributes["content-type"] != want {
		t.Fatalf("content-type %q, want %q", got[0].Attributes["content-type"], want)
	}
	if typ == schema.Avro {
		if !strings.Contains(string(latest.Definition), `"color"`) {
			t.Fatalf("version 2 %s: want the color column", latest.Definition)
		}
		return
	}
	var v2 struct {
		Defs struct {
			Row struct {
				Properties map[string]json.RawMessage
			}
		} `json:"$defs"`
		Key []string `json:"x-primary-key"`
	}
	if err := json.Unmarshal(latest.Definition, &v2); err != nil || v2.Defs.Row.Properties["color"] == nil || len(v2.Key) != 1 || v2.Key[0] != "id" {
		t.Fatalf("version 2 %s (%v): want the color column and the key id", latest.Definition, err)
	}
}
