package pgcdc_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

// waitUntil polls cond (a query returning one boolean) until it holds; the bound is
// runtimetest.Timeout, a limit on the wait, not a timing assertion.
func (p *pg) waitUntil(what, sql string, args ...any) {
	p.t.Helper()
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		var ok bool
		p.queryRow(&ok, sql, args...)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %v for %s", runtimetest.Timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasRead(t *testing.T, ms []*danube.Message, table string) bool {
	for _, e := range events(t, ms) {
		if e.Op == "READ" && e.Table == table {
			return true
		}
	}
	return false
}

// TestTableAddedToWhitelistIsSnapshotted: a table added to TABLE_WHITELIST after the slot exists is
// read as READ events on the next start, with no gap against the stream — including the row of a
// transaction that began before the publication gained the table and committed after, and rows
// written while the snapshot runs; a crash mid-way resumes the snapshot instead of starting over,
// and the changes of the tables captured before, made while the connector was down, arrive too.
func TestTableAddedToWhitelistIsSnapshotted(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE a (id int PRIMARY KEY, v text)")
	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := p.config(runtimetest.SourceConfig(b, "cdc", topic), "a")
	cfg.BatchSize, cfg.MaxInFlight = 100, 100

	// First life: only a.
	first, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	r := runtimetest.StartSource(t, &cfg.SourceConfig, first, true)
	p.exec("INSERT INTO a SELECT g, 'first' FROM generate_series(1, 10) g")
	col.WaitFor(t, "a's first rows", atLeast(10))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}

	// While it is down: b appears with rows, a changes, and a transaction on b stays open.
	const n = 1000
	p.exec("CREATE TABLE b (id int PRIMARY KEY, v text)")
	p.exec("INSERT INTO b SELECT g, 'pre' FROM generate_series(1, $1::int) g", n)
	p.exec("INSERT INTO a SELECT g, 'down' FROM generate_series(11, 20) g")
	ctx := context.Background()
	open, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO b VALUES ($1, 'long')", n+1); err != nil {
		t.Fatal(err)
	}
	var xid string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}

	// Second life with a and b: it crashes after a few chunks of b are acked. Once the publication
	// has b, the open transaction commits and more rows are written while the snapshot runs.
	cfg.Tables = []string{"a", "b"}
	second, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	r = runtimetest.StartSource(t, &cfg.SourceConfig, &crashAfter{SourceConnector: second, n: 3}, false)
	// The transaction commits once the connector waits for it, or (were it not to) once b's
	// snapshot has begun without it: either way after the publication gained b, whose stream
	// leaves out the row written before.
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		var waited bool
		p.queryRow(&waited, "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND transactionid::text = $1", xid)
		if waited || hasRead(t, col.Messages(), "b") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connector neither waited for the open transaction nor read b")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p.exec("INSERT INTO b SELECT g, 'during' FROM generate_series($1::int, $1::int + 49) g", n+2)
	p.exec("UPDATE b SET v = 'changed' WHERE id = 1")
	if err := r.Wait(); err == nil {
		t.Fatal("second life did not crash")
	}
	var lastKey string
	p.queryRow(&lastKey, "SELECT coalesce(last_key, '') FROM danube_cdc_snapshot WHERE slot_name = $1 AND table_name = 'public.b'", cfg.Slot)
	var confirmed []string
	if err := json.Unmarshal([]byte(lastKey), &confirmed); err != nil || len(confirmed) != 1 {
		t.Fatalf("b's snapshot progress after the crash: %q (%v)", lastKey, err)
	}
	upTo, _ := strconv.Atoi(confirmed[0])
	if upTo >= n {
		t.Fatalf("b's snapshot finished (up to %d) before the crash; the test needs it mid-way", upTo)
	}

	// Third life: resumes b's snapshot, then streams.
	third, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	r = runtimetest.StartSource(t, &cfg.SourceConfig, third, true)
	p.exec("INSERT INTO b VALUES ($1, 'after')", n+100)
	p.exec("INSERT INTO a VALUES (21, 'after')")
	type row struct {
		table string
		id    int
	}
	last := map[row]event{}
	reads := map[int]int{}
	col.WaitFor(t, "every row of a and b", func(ms []*danube.Message) bool {
		clear(last)
		clear(reads)
		for _, e := range events(t, stored(ms)) {
			id, _ := e.After["id"].(json.Number).Int64()
			last[row{e.Table, int(id)}] = e
			if e.Table == "b" && e.Op == "READ" {
				reads[int(id)]++
			}
		}
		return len(last) == 21+n+1+50+1
	})
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= n; id++ {
		if reads[id] == 0 {
			t.Fatalf("b's row %d has no READ event", id)
		}
		if id <= upTo && reads[id] != 1 {
			t.Fatalf("b's row %d (acked up to %d before the crash) was read %d times", id, upTo, reads[id])
		}
	}
	if e := last[row{"b", 1}]; e.After["v"] != "changed" {
		t.Fatalf("b's row 1 ends as %+v, want v=changed", e)
	}
	if e := last[row{"b", n + 1}]; e.After["v"] != "long" {
		t.Fatalf("the open transaction's row ends as %+v", e)
	}
	for id := 11; id <= 20; id++ {
		if e := last[row{"a", id}]; e.Op != "INSERT" || e.After["v"] != "down" {
			t.Fatalf("a's row %d, written while the connector was down, arrived as %+v", id, e)
		}
	}
	p.waitUntil("the temporary slots gone", "SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name LIKE $1 || '_add_%'", cfg.Slot)
}
