package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestNoEndpointSkips shows the path taken with no IT_* variable: a skip
// naming the variable when Docker is unavailable (as on machines without an
// engine), a container when it is healthy.
func TestNoEndpointSkips(t *testing.T) {
	t.Setenv(EnvRequire, "")
	t.Setenv(EnvMQTTURL, "")
	var ep MQTTEndpoint
	var skipped bool
	t.Run("mqtt", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		ep = MQTT(t)
	})
	if err := dockerHealthy(); err != nil {
		if !skipped || ep != (MQTTEndpoint{}) {
			t.Errorf("without Docker (%v): subtest skipped=%v with endpoint %+v; want it skipped", err, skipped, ep)
		}
		return
	}
	if skipped || !strings.HasPrefix(ep.URL, "tcp://") || ep.Source != "container "+MQTTImage {
		t.Errorf("with Docker: subtest skipped=%v with endpoint %+v; want a container", skipped, ep)
	}
}

// TestPostgresCleanupEndsReplication leaves a replication connection
// streaming from a slot when its test ends; the clean-up must still drop
// the slot and the database.
func TestPostgresCleanupEndsReplication(t *testing.T) {
	var ep PostgresEndpoint
	var repl *pgconn.PgConn
	var skipped bool
	t.Run("leaky", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		ep = Postgres(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		repl, err = pgconn.Connect(ctx, ep.ReplicationDSN)
		if err != nil {
			t.Fatalf("replication connection: %v", err)
		}
		slot := ep.Database + "_slot"
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication})
		if err != nil {
			t.Fatalf("create slot: %v", err)
		}
		lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, ep.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION p FOR ALL TABLES"); err != nil {
			t.Fatal(err)
		}
		if err := pglogrepl.StartReplication(ctx, repl, slot, lsn, pglogrepl.StartReplicationOptions{
			Mode: pglogrepl.LogicalReplication, PluginArgs: []string{"proto_version '2'", "publication_names 'p'"},
		}); err != nil {
			t.Fatalf("start replication: %v", err)
		}
		var active bool
		if err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active); err != nil || !active {
			t.Fatalf("slot %s active = %v, %v; want true", slot, active, err)
		}
	})
	if repl != nil {
		defer repl.Close(context.Background())
	}
	if skipped {
		t.Skip("no PostgreSQL endpoint (see the subtest's log)")
	}
	if t.Failed() {
		return
	}
	// Clean-up ran when "leaky" ended; look from the server's default database.
	admin := strings.Replace(ep.DSN, "/"+ep.Database+"?", "/postgres?", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var dbs, slots int
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_database WHERE datname = $1),
		(SELECT count(*) FROM pg_replication_slots WHERE database = $1)`, ep.Database).Scan(&dbs, &slots)
	if err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || slots != 0 {
		t.Errorf("after clean-up: %d databases and %d slots named for %s; want none", dbs, slots, ep.Database)
	}
}
