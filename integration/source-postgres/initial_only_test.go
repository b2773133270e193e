package sourcepostgres

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// runToExit runs the connector (process or image) with SNAPSHOT_MODE=initial_only until it exits
// by itself (within runtimetest.Timeout, a bound on the wait); it returns the log and the exit
// error (nil for status 0).
func runToExit(t *testing.T, pg harness.PostgresEndpoint, brokerURL, topic string) (string, error) {
	t.Helper()
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: map[string]string{
		"DANUBE_SERVICE_URL": brokerURL, "DANUBE_TOPIC": topic, "CONNECTOR_NAME": "cdc-once",
		"PG_HOST": u.Hostname(), "PG_PORT": u.Port(), "PG_DATABASE": pg.Database, "PG_USER": u.User.Username(),
		"PG_PASSWORD": pw, "PG_SSLMODE": "disable", "SLOT_NAME": pg.Database, "PUBLICATION_NAME": "pub",
		"TABLE_WHITELIST": "rows,more", "SNAPSHOT_MODE": "initial_only", "BATCH_SIZE": "200",
		"LOG_LEVEL": "info", "LOG_FORMAT": "text",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	err = c.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("%s (SNAPSHOT_MODE=initial_only) did not exit within %v:\n%s", c, runtimetest.Timeout, c.Logs())
	}
	return c.Logs(), err
}

// TestInitialOnlyExitsOnceSnapshotAcked: SNAPSHOT_MODE=initial_only publishes every row as a READ
// event, exits 0 saying so once Danube acked them, and leaves no replication slot or publication
// behind; run again, it finds the snapshot complete and exits 0 at once.
func TestInitialOnlyExitsOnceSnapshotAcked(t *testing.T) {
	pg := harness.Postgres(t)
	const n = 3000
	exec1(t, pg.DSN, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	exec1(t, pg.DSN, "INSERT INTO rows SELECT g, 'x' FROM generate_series(1, $1::int) g", n)
	exec1(t, pg.DSN, "CREATE TABLE more (k text PRIMARY KEY)")
	exec1(t, pg.DSN, "INSERT INTO more VALUES ('a'), ('b')")

	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")

	log, exit := runToExit(t, pg, b.URL(), topic)
	if exit != nil || !strings.Contains(log, "source finished: every record acknowledged by Danube and committed") {
		t.Fatalf("exit: %v, log:\n%s", exit, log)
	}
	keys := func(ms []*danube.Message) map[string]bool {
		out := map[string]bool{}
		for _, m := range ms {
			out[m.Key] = true
		}
		return out
	}
	got := col.WaitFor(t, "every row", func(ms []*danube.Message) bool { return len(keys(ms)) == n+2 })
	for _, m := range got {
		if m.Attributes["op"] != "READ" {
			t.Fatalf("event %s is not a READ", m.Payload)
		}
	}

	var slots, pubs int
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()), (SELECT count(*) FROM pg_publication)").Scan(&slots, &pubs); err != nil {
		t.Fatal(err)
	}
	if slots != 0 || pubs != 0 {
		t.Fatalf("initial_only left %d replication slots and %d publications", slots, pubs)
	}

	log, exit = runToExit(t, pg, b.URL(), topic)
	if exit != nil || !strings.Contains(log, "every table's snapshot is already complete") {
		t.Fatalf("second run: exit: %v, log:\n%s", exit, log)
	}
}
