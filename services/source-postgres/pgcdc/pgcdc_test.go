package pgcdc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

func TestMain(m *testing.M) {
	// A bound on waits for outcomes, not a timing assertion: the shared CI machine can be slow,
	// and the race detector slows the connector several times over.
	runtimetest.Timeout = 2 * time.Minute
	goleak.VerifyTestMain(m)
}

// pg is a test database with helpers.
type pg struct {
	harness.PostgresEndpoint
	t testing.TB
}

func newPG(t testing.TB) *pg {
	return &pg{PostgresEndpoint: harness.Postgres(t), t: t}
}

// exec runs statements in the test database.
func (p *pg) exec(sql string, args ...any) {
	p.t.Helper()
	p.with(sql, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	})
}

// queryRow scans one row into dst.
func (p *pg) queryRow(dst any, sql string, args ...any) {
	p.t.Helper()
	p.with(sql, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, sql, args...).Scan(dst)
	})
}

// with runs f on a fresh connection to the test database, failing the test on error.
func (p *pg) with(sql string, f func(context.Context, *pgx.Conn) error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := f(ctx, conn); err != nil {
		p.t.Fatalf("%s: %v", sql, err)
	}
}

// config returns the connector's config for the test database, around the runtime part.
func (p *pg) config(rc *runtime.SourceConfig, tables ...string) *pgcdc.Config {
	u, err := url.Parse(p.DSN)
	if err != nil {
		p.t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	pw, _ := u.User.Password()
	return &pgcdc.Config{
		SourceConfig: *rc, Host: u.Hostname(), Port: port, Database: p.Database, User: u.User.Username(),
		Password: config.NewSecret(pw), SSLMode: "disable", Slot: p.Database, Publication: "pub_" + p.Database,
		Tables: tables, SnapshotMode: pgcdc.SnapshotInitial, SnapshotState: "public.danube_cdc_snapshot",
		Heartbeat: config.Millis(100 * time.Millisecond),
	}
}

// dropSlot waits until the slot is released, then drops it.
func (p *pg) dropSlot() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var active *bool
		err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", p.Database).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return
		}
		if err != nil {
			p.t.Fatal(err)
		}
		if !*active {
			if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", p.Database); err != nil {
				p.t.Fatal(err)
			}
			return
		}
		select {
		case <-ctx.Done():
			p.t.Fatal("slot still active")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// afterOnly publishes only the event's "after" object: the conformance suite compares payloads
// exactly, and the envelope carries LSNs and times no test can predict. It also holds back the
// keepalive checkpoints that come before the first change (other databases on the shared server
// move the WAL): the suite's crash case fails the first Commit and expects it to follow the data.
type afterOnly struct {
	runtime.SourceConnector[pgcdc.LSN]
	data bool
}

func (a *afterOnly) Poll(ctx context.Context) ([]runtime.SourceRecord[pgcdc.LSN], error) {
	recs, err := a.SourceConnector.Poll(ctx)
	out := recs[:0]
	for i := range recs {
		if recs[i].IsCheckpoint() {
			if a.data {
				out = append(out, recs[i])
			}
			continue
		}
		a.data = true
		out = append(out, recs[i])
		var ev struct{ After json.RawMessage }
		if json.Unmarshal(recs[i].Payload, &ev) == nil {
			out[len(out)-1].Payload = ev.After
		}
	}
	return out, err
}

func (a *afterOnly) Reconnect(ctx context.Context) error {
	return a.SourceConnector.(runtime.Reconnector).Reconnect(ctx)
}

func TestSourceSuite(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL)")
	runtimetest.SourceSuite[pgcdc.LSN]{
		New: func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector[pgcdc.LSN] {
			pc := p.config(cfg, "items")
			pc.SnapshotMode = pgcdc.SnapshotNever // the snapshot has tests of its own
			c, err := pgcdc.New(pc, runtime.Resources{})
			if err != nil {
				t.Fatal(err)
			}
			return &afterOnly{SourceConnector: c}
		},
		Emit: func(t *testing.T, payloads ...[]byte) {
			for _, pl := range payloads {
				var row struct {
					ID   int
					Body string
				}
				if err := json.Unmarshal(pl, &row); err != nil {
					t.Fatal(err)
				}
				p.exec("INSERT INTO items (id, body) VALUES ($1, $2)", row.ID, row.Body)
			}
		},
		Reset: func(t *testing.T) {
			p.dropSlot()
			p.exec("TRUNCATE items")
			p.exec("DROP TABLE IF EXISTS danube_cdc_snapshot")
		},
		Payload: func(i int) []byte { return fmt.Appendf(nil, `{"id":%d,"body":"row-%d"}`, i, i) },
		Key:     strconv.Itoa,
	}.Run(t)
}

// start runs the connector for tables against a fresh broker and collects its topic.
func start(t *testing.T, p *pg, mutate func(*pgcdc.Config), tables ...string) (*runtimetest.Running, *runtimetest.Collector, *devbroker.Broker) {
	t.Helper()
	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := p.config(runtimetest.SourceConfig(b, "cdc", topic), tables...)
	if mutate != nil {
		mutate(cfg)
	}
	conn, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	return runtimetest.StartSource(t, &cfg.SourceConfig, conn, true), col, b
}

type event struct {
	Op, Schema, Table string
	Before, After     map[string]any
	Toast             []string `json:"unchanged_toast"`
	Source            struct {
		DB         string
		LSN        string
		TxID       *uint32
		CommitTime *string `json:"commit_time"`
		Snapshot   bool
	}
}

func events(t *testing.T, ms []*danube.Message) []event {
	t.Helper()
	var out []event
	for _, m := range ms {
		var e event
		d := json.NewDecoder(bytes.NewReader(m.Payload))
		d.UseNumber()
		if err := d.Decode(&e); err != nil {
			t.Fatalf("payload %s: %v", m.Payload, err)
		}
		out = append(out, e)
	}
	return out
}

// stored drops redeliveries (a consumer on a loaded machine may see a message again after the ack
// timeout): each message as the topic stores it, once.
func stored(ms []*danube.Message) []*danube.Message {
	type id struct {
		topic  string
		offset uint64
	}
	seen := map[id]bool{}
	var out []*danube.Message
	for _, m := range ms {
		if k := (id{m.Topic, m.Offset}); !seen[k] {
			seen[k] = true
			out = append(out, m)
		}
	}
	return out
}

func atLeast(n int) func([]*danube.Message) bool {
	return func(ms []*danube.Message) bool { return len(ms) >= n }
}

// TestEventsCarryTypedValues: every column type round-trips as the README documents, with the
// envelope, routing key and attributes.
func TestEventsCarryTypedValues(t *testing.T) {
	p := newPG(t)
	p.exec(`CREATE TYPE mood AS ENUM ('sad', 'happy')`)
	p.exec(`CREATE TABLE typed (
		id bigint PRIMARY KEY, i2 smallint, i4 int, b bool, n numeric(30,10), f8 float8, f4 real,
		t text, ts timestamp, tstz timestamptz, d date, by bytea, j json, jb jsonb, arr int[], tarr text[],
		u uuid, m mood, iv interval, nul text)`)
	r, col, _ := start(t, p, nil, "typed")
	p.exec(`INSERT INTO typed VALUES (9007199254740993, -2, 42, true, 12345678901234567890.0123456789, 1.5, 0.25,
		'quote " back \ tab	é', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.5+02', '2024-02-29', '\x00ff10',
		'{"a": [1, 2]}', '{"b": {"c": null}}', '{1,NULL,3}', '{"x y","z,\"w"}',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '1 day 2 hours', NULL)`)
	ms := col.WaitFor(t, "the insert", atLeast(1))
	r.Stop()
	m := ms[0]
	want := `{"id":9007199254740993,"i2":-2,"i4":42,"b":true,"n":"12345678901234567890.0123456789","f8":1.5,"f4":0.25,` +
		`"t":"quote \" back \\ tab\té","ts":"2024-02-29T13:14:15.123456Z","tstz":"2024-02-29T11:14:15.5Z","d":"2024-02-29",` +
		`"by":"AP8Q","j":{"a": [1, 2]},"jb":{"b": {"c": null}},"arr":[1,null,3],"tarr":["x y","z,\"w"],` +
		`"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","m":"happy","iv":"P1DT2H","nul":null}`
	var ev struct {
		Op, Schema, Table string
		Before            json.RawMessage
		After             json.RawMessage
		Source            map[string]any
	}
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if string(ev.After) != want {
		t.Fatalf("after:\n got %s\nwant %s", ev.After, want)
	}
	if ev.Op != "INSERT" || ev.Schema != "public" || ev.Table != "typed" || string(ev.Before) != "null" {
		t.Fatalf("envelope %s", m.Payload)
	}
	if ev.Source["db"] != p.Database || ev.Source["snapshot"] != false || ev.Source["lsn"] == "" || ev.Source["txid"] == nil || ev.Source["commit_time"] == nil {
		t.Fatalf("source %v", ev.Source)
	}
	if m.Key != "9007199254740993" || m.Attributes["table"] != "public.typed" || m.Attributes["op"] != "INSERT" || m.Attributes["content-type"] != "application/json" {
		t.Fatalf("key %q attributes %v", m.Key, m.Attributes)
	}
}

// TestChangesToastAddColumnAndReplicaIdentity: UPDATE keeps an unchanged TOAST column out of
// "after" and names it; ADD COLUMN shows in the next event without a restart; DELETE carries the
// key (default identity) or the whole old row (FULL); TRUNCATE is an event.
func TestChangesToastAddColumnAndReplicaIdentity(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE docs (id int PRIMARY KEY, title text, body text)")
	p.exec("ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL") // out of line, uncompressed
	p.exec("CREATE TABLE full_rows (k text PRIMARY KEY, v int)")
	p.exec("ALTER TABLE full_rows REPLICA IDENTITY FULL")
	big := make([]byte, 3000)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	r, col, _ := start(t, p, func(c *pgcdc.Config) { c.PublishOrder = runtime.OrderStrict }, "docs", "public.full_rows")
	p.exec("INSERT INTO docs VALUES (1, 'one', $1)", string(big))
	p.exec("UPDATE docs SET title = 'uno' WHERE id = 1")
	p.exec("ALTER TABLE docs ADD COLUMN tags text[]")
	p.exec("UPDATE docs SET tags = '{a,b}', body = 'short' WHERE id = 1")
	p.exec("DELETE FROM docs WHERE id = 1")
	p.exec("INSERT INTO full_rows VALUES ('x', 1)")
	p.exec("UPDATE full_rows SET v = 2")
	p.exec("DELETE FROM full_rows")
	p.exec("TRUNCATE docs")
	evs := events(t, col.WaitFor(t, "8 events", atLeast(8)))
	r.Stop()
	if len(evs) != 8 {
		t.Fatalf("got %d events: %+v", len(evs), evs)
	}
	check := func(i int, op string, ok bool) {
		t.Helper()
		if evs[i].Op != op || !ok {
			t.Fatalf("event %d: %+v", i, evs[i])
		}
	}
	check(0, "INSERT", evs[0].After["body"] == string(big))
	_, hasBody := evs[1].After["body"]
	check(1, "UPDATE", evs[1].After["title"] == "uno" && !hasBody && len(evs[1].Toast) == 1 && evs[1].Toast[0] == "body" && evs[1].Before == nil)
	tags, _ := evs[2].After["tags"].([]any)
	check(2, "UPDATE", len(tags) == 2 && evs[2].After["body"] == "short")
	check(3, "DELETE", evs[3].After == nil && len(evs[3].Before) == 1 && evs[3].Before["id"] == json.Number("1"))
	check(4, "INSERT", evs[4].Table == "full_rows")
	check(5, "UPDATE", evs[5].Before["v"] == json.Number("1") && evs[5].After["v"] == json.Number("2"))
	check(6, "DELETE", evs[6].Before["k"] == "x" && evs[6].Before["v"] == json.Number("2"))
	check(7, "TRUNCATE", evs[7].Table == "docs" && evs[7].Before == nil && evs[7].After == nil)
}

// crashAfter passes its first n Commits through, then fails fatally: the process dies with part
// of the snapshot (or stream) confirmed.
type crashAfter struct {
	runtime.SourceConnector[pgcdc.LSN]
	n int
}

func (c *crashAfter) Commit(ctx context.Context, ps []pgcdc.LSN) error {
	if c.n == 0 {
		return runtime.Fatal(runtimetest.ErrSimulatedCrash)
	}
	c.n--
	return c.SourceConnector.Commit(ctx, ps)
}

// TestSnapshotThenStreamWithoutGap: rows present at start arrive as READ events, rows written
// while the snapshot runs as changes; a crash mid-snapshot resumes from the committed progress
// instead of starting over; every row arrives.
func TestSnapshotThenStreamWithoutGap(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE big (id int PRIMARY KEY, v text)")
	const pre, during = 3000, 500
	p.exec("INSERT INTO big SELECT g, 'pre' FROM generate_series(0, $1 - 1) g", pre)

	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := p.config(runtimetest.SourceConfig(b, "cdc", topic), "big")
	cfg.BatchSize, cfg.MaxInFlight = 200, 200

	conn, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	r := runtimetest.StartSource(t, &cfg.SourceConfig, &crashAfter{SourceConnector: conn, n: 5}, false)
	p.exec("INSERT INTO big SELECT g, 'during' FROM generate_series($1::int, $1::int + $2::int - 1) g", pre, during)
	if err := r.Wait(); err == nil {
		t.Fatal("first run did not crash")
	}
	var lastKey string
	p.queryRow(&lastKey, "SELECT coalesce(last_key, '') FROM danube_cdc_snapshot WHERE slot_name = $1", cfg.Slot)
	var confirmed []string
	if err := json.Unmarshal([]byte(lastKey), &confirmed); err != nil || len(confirmed) != 1 {
		t.Fatalf("snapshot progress after the crash: %q (%v)", lastKey, err)
	}
	upTo, _ := strconv.Atoi(confirmed[0])

	conn2, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	r2 := runtimetest.StartSource(t, &cfg.SourceConfig, conn2, true)
	p.exec("INSERT INTO big VALUES ($1, 'after')", pre+during)
	seen := map[int]string{}
	reads := map[int]int{}
	col.WaitFor(t, "every row", func(ms []*danube.Message) bool {
		clear(seen)
		clear(reads)
		for _, e := range events(t, stored(ms)) {
			id, _ := e.After["id"].(json.Number).Int64()
			seen[int(id)] = e.Op
			if e.Op == "READ" {
				reads[int(id)]++
				if !e.Source.Snapshot {
					t.Fatalf("READ event without snapshot:true: %+v", e)
				}
			}
		}
		return len(seen) == pre+during+1
	})
	if err := r2.Stop(); err != nil {
		t.Fatal(err)
	}
	// Resumed, not restarted: rows up to the progress the first run confirmed are not read again.
	for id := 0; id <= upTo; id++ {
		if reads[id] != 1 {
			t.Fatalf("row %d (confirmed up to %d before the crash) was read %d times", id, upTo, reads[id])
		}
	}
	if seen[pre+during] != "INSERT" {
		t.Fatalf("row written after the snapshot arrived as %q", seen[pre+during])
	}
}

// TestTwoReplicasOneStreams: the second replica stays not ready while the first streams, and
// takes over when it stops; nothing is lost.
func TestTwoReplicasOneStreams(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE ha (id int PRIMARY KEY)")
	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	newReplica := func(name string) (*pgcdc.Config, runtime.SourceConnector[pgcdc.LSN]) {
		cfg := p.config(runtimetest.SourceConfig(b, name, topic), "ha")
		c, err := pgcdc.New(cfg, runtime.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg, c
	}
	cfgA, a := newReplica("cdc-a")
	ra := runtimetest.StartSource(t, &cfgA.SourceConfig, a, true)
	cfgB, bb := newReplica("cdc-b")
	rb := runtimetest.StartSource(t, &cfgB.SourceConfig, bb, false)
	p.exec("INSERT INTO ha SELECT generate_series(1, 10)")
	col.WaitFor(t, "10 rows", atLeast(10))
	if err := rb.Telemetry.Ready(context.Background()); err == nil {
		t.Fatal("the standby replica is ready while the first streams")
	} else if !strings.Contains(err.Error(), "standby: another replica streams slot") {
		t.Fatalf("standby not ready for the wrong reason: %v", err)
	}
	if err := ra.Stop(); err != nil {
		t.Fatal(err)
	}
	rb.WaitReady(t)
	p.exec("INSERT INTO ha SELECT generate_series(11, 20)")
	ms := col.WaitFor(t, "20 rows", func(ms []*danube.Message) bool {
		ids := map[string]bool{}
		for _, m := range ms {
			ids[m.Key] = true
		}
		return len(ids) == 20
	})
	if len(ms) != 20 {
		t.Fatalf("received %d events for 20 rows after a clean handover", len(ms))
	}
	if err := rb.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSetupErrorsNameTheFix: what only an administrator can fix stops the connector at start with
// the fix named.
func TestSetupErrorsNameTheFix(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE nokey (v text)")
	p.exec("CREATE TABLE ok (id int PRIMARY KEY)")
	b := runtimetest.StartBroker(t)
	run := func(cfg *pgcdc.Config) error {
		c, err := pgcdc.New(cfg, runtime.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RunSource(context.Background(), &cfg.SourceConfig, c)
	}
	cfg := p.config(runtimetest.SourceConfig(b, "cdc", "/default/cdc"), "nokey", "missing")
	err := run(cfg)
	for _, want := range []string{
		`table public.nokey has no primary key and no replica identity, so its UPDATEs and DELETEs cannot be captured: add a primary key, or run ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL`,
		"table public.missing (TABLE_WHITELIST) does not exist in database " + p.Database,
	} {
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, runtime.ErrFatal) {
			t.Fatalf("got %v, want a fatal error containing %q", err, want)
		}
	}

	role := p.Database + "_norepl"
	p.exec("CREATE ROLE " + role + " LOGIN")
	t.Cleanup(func() { p.exec("DROP ROLE IF EXISTS " + role) })
	cfg = p.config(runtimetest.SourceConfig(b, "cdc", "/default/cdc"), "ok")
	cfg.User, cfg.Password = role, config.Secret{}
	want := `PostgreSQL user "` + role + `" lacks the REPLICATION attribute: run ALTER ROLE "` + role + `" WITH REPLICATION`
	if err := run(cfg); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestReconnectsWhenReplicationConnectionDrops: the server ending the replication connection is a
// Disconnected error; the connector reconnects and resumes from the confirmed LSN, losing nothing.
func TestReconnectsWhenReplicationConnectionDrops(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE r (id int PRIMARY KEY)")
	r, col, _ := start(t, p, nil, "r")
	p.exec("INSERT INTO r SELECT generate_series(1, 50)")
	col.WaitFor(t, "50 rows", atLeast(50))
	p.exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active", p.Database)
	p.exec("INSERT INTO r SELECT generate_series(51, 100)")
	col.WaitFor(t, "100 distinct rows", func(ms []*danube.Message) bool {
		ids := map[string]bool{}
		for _, m := range ms {
			ids[m.Key] = true
		}
		return len(ids) == 100
	})
	r.WaitMetric(t, `connector_reconnects_total{connector="cdc"}`, 1)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
