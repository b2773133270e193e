package pgcdc_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

// TestLargeAndAbortedTransactions: a transaction far larger than logical_decoding_work_mem (set to
// its 64kB minimum for the connector's sessions only, through PGOPTIONS: the server spills it to
// disk and sends it after its commit) arrives whole and before the transaction committed after it;
// an equally large aborted transaction never shows.
func TestLargeAndAbortedTransactions(t *testing.T) {
	t.Setenv("PGOPTIONS", "-c logical_decoding_work_mem=64kB")
	p := newPG(t)
	p.exec("CREATE TABLE big (id int PRIMARY KEY, v text)")
	r, col, _ := start(t, p, func(c *pgcdc.Config) {
		c.SnapshotMode = pgcdc.SnapshotNever
		c.PublishOrder = runtime.OrderStrict // the topic holds the events in commit order
		c.BatchSize, c.MaxInFlight = 1000, 1000
	}, "big")
	const n = 10000
	p.exec("INSERT INTO big SELECT g, repeat('x', 300) FROM generate_series(1, $1::int) g", n)
	p.exec(`DO $$ BEGIN
		INSERT INTO big SELECT g, repeat('y', 300) FROM generate_series(100001, 100000 + 10000) g;
		RAISE EXCEPTION 'abort';
	EXCEPTION WHEN raise_exception THEN NULL; END $$`) // the subtransaction aborts, its parent commits nothing
	p.with("aborted", func(ctx context.Context, conn *pgx.Conn) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO big SELECT g, repeat('z', 300) FROM generate_series(200001, 200000 + $1::int) g", n); err != nil {
			return err
		}
		return tx.Rollback(ctx)
	})
	p.exec("INSERT INTO big VALUES (0, 'last')")
	col.WaitFor(t, "the large transaction and the last one", atLeast(n+1))
	p.waitUntil("the slot to report a spilled transaction", "SELECT spill_txns > 0 FROM pg_stat_replication_slots WHERE slot_name = $1", p.Database)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	ms := col.Messages()
	if len(ms) != n+1 {
		t.Fatalf("received %d events, want %d", len(ms), n+1)
	}
	for i, m := range ms {
		var ev struct{ After struct{ ID int } }
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		want := i + 1
		if i == n {
			want = 0
		}
		if ev.After.ID != want {
			t.Fatalf("event %d is row %d, want %d (commit order; nothing of the aborted transactions)", i, ev.After.ID, want)
		}
	}
}
