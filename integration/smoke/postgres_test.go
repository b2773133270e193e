package smoke

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPostgresLogicalReplication creates a publication and a logical slot,
// inserts one row and streams it with pgoutput (proto_version 2), as the
// Postgres CDC source will.
func TestPostgresLogicalReplication(t *testing.T) {
	ep := harness.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := pgx.Connect(ctx, ep.DSN)
	if err != nil {
		t.Fatalf("connect %s: %v", ep.Source, err)
	}
	defer conn.Close(context.Background())
	var version, walLevel string
	if err := conn.QueryRow(ctx, "SELECT version(), current_setting('wal_level')").Scan(&version, &walLevel); err != nil {
		t.Fatal(err)
	}
	t.Logf("server: %s (%s)", version, ep.Source)
	if walLevel != "logical" {
		t.Fatalf("wal_level = %q, want logical", walLevel)
	}

	slot := ep.Database + "_slot"
	mustExec(ctx, t, conn, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	mustExec(ctx, t, conn, "CREATE PUBLICATION smoke_pub FOR TABLE items")
	defer mustExec(context.Background(), t, conn, "DROP TABLE items")
	defer mustExec(context.Background(), t, conn, "DROP PUBLICATION smoke_pub")

	repl, err := pgconn.Connect(ctx, ep.ReplicationDSN)
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	defer repl.Close(context.Background())
	created, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication})
	if err != nil {
		t.Fatalf("create slot %s: %v", slot, err)
	}
	start, err := pglogrepl.ParseLSN(created.ConsistentPoint)
	if err != nil {
		t.Fatalf("consistent point %q: %v", created.ConsistentPoint, err)
	}
	if err := pglogrepl.StartReplication(ctx, repl, slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '2'", "publication_names 'smoke_pub'"},
	}); err != nil {
		t.Fatalf("start replication: %v", err)
	}

	mustExec(ctx, t, conn, "INSERT INTO items (id, name) VALUES (1, 'hello')")

	var got []string // message kinds in stream order
	var row []string
	var last pglogrepl.LSN
	for done := false; !done; {
		msg, err := repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive (got %v so far): %v", got, err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			t.Fatalf("unexpected %T from the replication stream", msg)
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				t.Fatal(err)
			}
			if ka.ReplyRequested {
				confirm(ctx, t, repl, last)
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				t.Fatal(err)
			}
			m, err := pglogrepl.ParseV2(xld.WALData, false)
			if err != nil {
				t.Fatalf("parse pgoutput message: %v", err)
			}
			last = xld.WALStart + pglogrepl.LSN(len(xld.WALData))
			switch m := m.(type) {
			case *pglogrepl.BeginMessage:
				got = append(got, "begin")
			case *pglogrepl.RelationMessageV2:
				got = append(got, "relation "+m.Namespace+"."+m.RelationName)
			case *pglogrepl.InsertMessageV2:
				got = append(got, "insert")
				for _, c := range m.Tuple.Columns {
					row = append(row, string(c.Data))
				}
			case *pglogrepl.CommitMessage:
				got = append(got, "commit")
				done = true
			default:
				t.Fatalf("unexpected pgoutput message %T", m)
			}
		}
	}
	confirm(ctx, t, repl, last)

	want := []string{"begin", "relation public.items", "insert", "commit"}
	if !slices.Equal(got, want) {
		t.Errorf("stream = %q, want %q", got, want)
	}
	if !slices.Equal(row, []string{"1", "hello"}) {
		t.Errorf("inserted row = %q, want [1 hello]", row)
	}

	// Leave copy mode and drop the slot on the same connection, so that
	// no walsender keeps it active.
	if _, err := pglogrepl.SendStandbyCopyDone(ctx, repl); err != nil {
		t.Fatalf("end replication: %v", err)
	}
	if err := pglogrepl.DropReplicationSlot(ctx, repl, slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
		t.Fatalf("drop slot %s: %v", slot, err)
	}
	var left int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("slot %s still exists after drop", slot)
	}
}

func confirm(ctx context.Context, t *testing.T, repl *pgconn.PgConn, lsn pglogrepl.LSN) {
	t.Helper()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("standby status update at %s: %v", lsn, err)
	}
}

func mustExec(ctx context.Context, t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
