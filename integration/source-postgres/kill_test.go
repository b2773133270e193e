// Package sourcepostgres runs the built source-postgres binary (or its image,
// IT_SOURCE_POSTGRES_IMAGE) against real PostgreSQL and the development broker, and kills it with
// SIGKILL mid-stream and mid-snapshot: after a restart every row is in Danube.
package sourcepostgres

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func TestMain(m *testing.M) {
	// A bound on waits for outcomes, not a timing assertion: the shared CI machine can be slow,
	// and the race detector slows the connector several times over.
	runtimetest.Timeout = 2 * time.Minute
	// Terminates any container the tests started, then runs goleak. With IT_SOURCE_POSTGRES_IMAGE
	// set the connector runs as that container image instead of the binary.
	harness.Main(m)
}

func exec1(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// start runs the connector (process or container) for the test database; killed at cleanup.
func start(t *testing.T, pg harness.PostgresEndpoint, brokerURL, topic string) *harness.Connector {
	t.Helper()
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: map[string]string{
		"DANUBE_SERVICE_URL": brokerURL, "DANUBE_TOPIC": topic, "CONNECTOR_NAME": "cdc",
		"PG_HOST": u.Hostname(), "PG_PORT": u.Port(), "PG_DATABASE": pg.Database, "PG_USER": u.User.Username(),
		"PG_PASSWORD": pw, "PG_SSLMODE": "disable", "SLOT_NAME": pg.Database, "PUBLICATION_NAME": "pub",
		"TABLE_WHITELIST": "rows", "BATCH_SIZE": "200", "METRICS_ADDR": "", "LOG_LEVEL": "warn", "RETRY_BACKOFF_MS": "20",
		"RETRY_MAX_BACKOFF_MS": "200", "POLL_INTERVAL_MS": "20", "HEARTBEAT_INTERVAL_MS": "200",
	}})
}

func kill(t *testing.T, c *harness.Connector) {
	t.Helper()
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
}

// ids returns the distinct row ids received.
func ids(ms []*danube.Message) map[int]bool {
	out := map[int]bool{}
	for _, m := range ms {
		var ev struct{ After struct{ ID int } }
		if json.Unmarshal(m.Payload, &ev) == nil {
			out[ev.After.ID] = true
		}
	}
	return out
}

func stop(t *testing.T, c *harness.Connector) {
	t.Helper()
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// TestKillMidSnapshotAndMidStream: SIGKILL while the snapshot runs, restart, SIGKILL while rows
// stream, restart: every row arrives.
func TestKillMidSnapshotAndMidStream(t *testing.T) {
	pg := harness.Postgres(t)
	const pre, streamed = 8000, 2000
	exec1(t, pg.DSN, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	exec1(t, pg.DSN, "INSERT INTO rows SELECT g, repeat('x', 100) FROM generate_series(1, $1::int) g", pre)

	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")

	cmd := start(t, pg, b.URL(), topic)
	col.WaitFor(t, "part of the snapshot", func(ms []*danube.Message) bool { return len(ms) >= 1000 })
	kill(t, cmd)
	if n := len(ids(col.Messages())); n >= pre {
		t.Fatalf("the snapshot finished (%d rows) before the kill; the test needs it mid-way", n)
	}

	cmd = start(t, pg, b.URL(), topic)
	col.WaitFor(t, "the whole snapshot", func(ms []*danube.Message) bool { return len(ids(ms)) >= pre })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := pre + 1; i <= pre+streamed; i += 10 {
			exec1(t, pg.DSN, "INSERT INTO rows SELECT g, 'new' FROM generate_series($1::int, $1::int + 9) g", i)
		}
	}()
	col.WaitFor(t, "part of the stream", func(ms []*danube.Message) bool { return len(ids(ms)) >= pre+streamed/4 })
	kill(t, cmd)
	<-done

	cmd = start(t, pg, b.URL(), topic)
	got := col.WaitFor(t, "every row", func(ms []*danube.Message) bool { return len(ids(ms)) == pre+streamed })
	stop(t, cmd)
	seen := ids(got)
	for i := 1; i <= pre+streamed; i++ {
		if !seen[i] {
			t.Fatalf("row %s missing", strconv.Itoa(i))
		}
	}
}
