package sourcepostgres

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// privatePG is a PostgreSQL server of the test's own, for what the shared one cannot do: password
// authentication (the shared server trusts every login) and server settings such as
// max_slot_wal_keep_size. Its superuser is postgres with password "secret", its database postgres.
type privatePG struct {
	host, port string
	dsn        string
}

// startPrivatePG runs initdb and pg_ctl (as the postgres user when the test runs as root, as
// tools/itservers/itservers.sh does) with the extra server settings; stopped and removed at cleanup.
// Without PostgreSQL's server binaries the test is skipped, or fails under CI_REQUIRE_INTEGRATION=1.
func startPrivatePG(t *testing.T, settings ...string) *privatePG {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		msg := "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin"
		if os.Getenv("CI_REQUIRE_INTEGRATION") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var asPostgres []string
	var owner *user.User
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		owner, asPostgres = u, []string{"runuser", "-u", "postgres", "--"}
	}
	dir, err := os.MkdirTemp("", "source-postgres-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	data, pw := filepath.Join(dir, "data"), filepath.Join(dir, "pw")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		argv := slices.Concat(asPostgres, []string{filepath.Join(bin, name)}, args)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(data, "log"))
			t.Fatalf("%s: %v\n%s\n%s", strings.Join(argv, " "), err, out, log)
		}
	}
	addr := harness.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	run("initdb", "-D", data, "-U", "postgres", "-A", "scram-sha-256", "--pwfile", pw, "-E", "UTF8", "--no-sync", "--wal-segsize=1")
	opts := "-c listen_addresses=" + host + " -p " + port + " -k " + data + " -c wal_level=logical -c fsync=off"
	for _, s := range settings {
		opts += " -c " + s
	}
	run("pg_ctl", "-D", data, "-l", filepath.Join(data, "log"), "-w", "-t", "120", "-o", opts, "start")
	t.Cleanup(func() { run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop") })
	return &privatePG{host: host, port: port, dsn: "postgres://postgres:secret@" + addr + "/postgres?sslmode=disable"}
}

func pgBinDir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// connectorEnv is the connector's environment for the PostgreSQL at host:port.
func connectorEnv(brokerURL, topic, host, port, db, user, password string) map[string]string {
	return map[string]string{
		"DANUBE_SERVICE_URL": brokerURL, "DANUBE_TOPIC": topic, "CONNECTOR_NAME": "cdc",
		"PG_HOST": host, "PG_PORT": port, "PG_DATABASE": db, "PG_USER": user, "PG_PASSWORD": password,
		"PG_SSLMODE": "disable", "SLOT_NAME": "cdc_slot", "PUBLICATION_NAME": "pub", "TABLE_WHITELIST": "rows",
		"LOG_LEVEL": "info", "LOG_FORMAT": "text", "RETRY_BACKOFF_MS": "20", "RETRY_MAX_BACKOFF_MS": "200",
		"POLL_INTERVAL_MS": "20", "HEARTBEAT_INTERVAL_MS": "200",
	}
}

// exitOf waits for the connector to exit by itself (within runtimetest.Timeout, a bound on the
// wait, not a timing assertion) and returns its exit error and log (quotes in values unescaped).
func exitOf(t *testing.T, c *harness.Connector) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	err := c.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("%s did not exit within %v:\n%s", c, runtimetest.Timeout, c.Logs())
	}
	return strings.ReplaceAll(c.Logs(), `\"`, `"`), err
}

func exitCode(err error) int {
	var e *harness.ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return 0
	}
	return -1
}

func queryRow(t *testing.T, dsn string, dst any, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql, args...).Scan(dst); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// readyz returns the status and body of the connector's /readyz.
func readyz(t *testing.T, c *harness.Connector) (int, string) {
	t.Helper()
	code, body, err := c.Readiness(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// TestWaitsForPostgreSQL: started while nothing listens at its PostgreSQL address (a compose stack
// starting the connector before its database), the connector keeps running, says why it is not
// ready on /readyz and in its log, and streams once PostgreSQL is reachable.
func TestWaitsForPostgreSQL(t *testing.T) {
	pg := harness.Postgres(t)
	exec1(t, pg.DSN, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := harness.StartProxy(t, u.Host)
	proxy.Down() // connection refused until Up
	host, port, _ := net.SplitHostPort(proxy.Addr())

	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	pw, _ := u.User.Password()
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres",
		Env: connectorEnv(b.URL(), topic, host, port, pg.Database, u.User.Username(), pw)})

	// Waiting: not ready, saying why, in /readyz and in the log, and still running.
	deadline := time.Now().Add(runtimetest.Timeout)
	for !strings.Contains(c.Logs(), "external system not reachable yet; waiting") ||
		strings.Count(c.Logs(), "connection refused") < 2 { // a second attempt: it waits, it does not give up
		if !c.Running() {
			log, err := exitOf(t, c)
			t.Fatalf("the connector exited (%v) while PostgreSQL was unreachable:\n%s", err, log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retried connection in the log after %v:\n%s", runtimetest.Timeout, c.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := readyz(t, c); code != http.StatusServiceUnavailable || !strings.Contains(body, "cdc/external: ") || !strings.Contains(body, "connect to PostgreSQL "+host+":"+port) ||
		!strings.Contains(body, "connection refused") {
		t.Fatalf("/readyz while PostgreSQL is unreachable: %d %q", code, body)
	}

	exec1(t, pg.DSN, "INSERT INTO rows VALUES (1, 'before')") // in the snapshot
	proxy.Up(t)
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs())
	}
	exec1(t, pg.DSN, "INSERT INTO rows VALUES (2, 'after')") // streamed
	col.WaitFor(t, "both rows", func(ms []*danube.Message) bool { return ids(ms)[1] && ids(ms)[2] })
	stop(t, c)
}

// TestUnfixableByWaitingStopsAtOnce: a wrong password and a missing database stop the connector
// at start (exit 1) with an error naming what to check, instead of waiting for PostgreSQL.
func TestUnfixableByWaitingStopsAtOnce(t *testing.T) {
	pg := startPrivatePG(t)
	b := runtimetest.StartBroker(t)
	for _, c := range []struct {
		name, db, password string
		want               []string
	}{
		{"wrong password", "postgres", "Wr0ng-pa55word", []string{`password authentication failed for user "postgres" (SQLSTATE 28P01)`, "check PG_USER and PG_PASSWORD"}},
		{"missing database", "nosuch", "secret", []string{`database "nosuch" does not exist (SQLSTATE 3D000)`, "check PG_DATABASE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres",
				Env: connectorEnv(b.URL(), "/default/cdc", pg.host, pg.port, c.db, "postgres", c.password)})
			log, err := exitOf(t, conn)
			if exitCode(err) != 1 || strings.Contains(log, "not reachable yet") {
				t.Fatalf("exit %v, want status 1 without waiting; log:\n%s", err, log)
			}
			for _, w := range c.want {
				if !strings.Contains(log, w) {
					t.Fatalf("log lacks %q:\n%s", w, log)
				}
			}
			if strings.Contains(log, "Wr0ng-pa55word") {
				t.Fatalf("the password is in the log:\n%s", log)
			}
		})
	}
}

// TestLostSlotSaysWhatToDo: a slot PostgreSQL invalidated (it retained more WAL than
// max_slot_wal_keep_size while the connector was stopped) stops the connector with what happened
// and what to do; doing it (drop the slot, start again) takes a new snapshot and streams again.
func TestLostSlotSaysWhatToDo(t *testing.T) {
	pg := startPrivatePG(t, "max_slot_wal_keep_size=1MB")
	exec1(t, pg.dsn, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	exec1(t, pg.dsn, "INSERT INTO rows VALUES (1, 'first')")
	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	env := connectorEnv(b.URL(), topic, pg.host, pg.port, "postgres", "postgres", "secret")

	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: env})
	exec1(t, pg.dsn, "INSERT INTO rows VALUES (2, 'streamed')")
	col.WaitFor(t, "rows 1 and 2", func(ms []*danube.Message) bool { return ids(ms)[1] && ids(ms)[2] })
	stop(t, c)

	loseSlot(t, pg.dsn, 10, "while away") // while the connector is away

	c = harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: env})
	log, err := exitOf(t, c)
	if exitCode(err) != 1 {
		t.Fatalf("exit %v, want 1; log:\n%s", err, log)
	}
	for _, w := range []string{
		`replication slot "cdc_slot" is lost: PostgreSQL invalidated it because it retained more WAL than max_slot_wal_keep_size = 1MB allows`,
		`drop the slot (SELECT pg_drop_replication_slot('cdc_slot')) and start the connector again`,
	} {
		if !strings.Contains(log, w) {
			t.Fatalf("log lacks %q:\n%s", w, log)
		}
	}
	if strings.Contains(log, "max_replication_slots") {
		t.Fatalf("the unrelated wal_level / max_replication_slots hint is back:\n%s", log)
	}

	exec1(t, pg.dsn, "SELECT pg_drop_replication_slot('cdc_slot')")
	c = harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: env})
	exec1(t, pg.dsn, "INSERT INTO rows VALUES (3, 'after the new slot')")
	col.WaitFor(t, "a new snapshot, then the stream", func(ms []*danube.Message) bool {
		seen := ids(ms)
		return seen[13] && seen[3]
	})
	stop(t, c)
}

// TestReplicationSurvivesStuckPublishes: while Danube is down, publishes stall and the connector
// stops reading the replication stream (MAX_IN_FLIGHT reached), so it answers none of PostgreSQL's
// keepalives; its standby status updates keep the walsender from ending the connection at
// wal_sender_timeout (2 s here, for an outage four times as long), even with the default
// HEARTBEAT_INTERVAL_MS (10 s), which the connector shortens to half the timeout, saying so. The
// same replication connection streams everything once Danube is back.
func TestReplicationSurvivesStuckPublishes(t *testing.T) {
	pg := startPrivatePG(t, "wal_sender_timeout=2s")
	exec1(t, pg.dsn, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	env := connectorEnv(b.URL(), topic, pg.host, pg.port, "postgres", "postgres", "secret")
	env["MAX_IN_FLIGHT"], env["BATCH_SIZE"] = "10", "10"
	delete(env, "HEARTBEAT_INTERVAL_MS")
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: env})
	exec1(t, pg.dsn, "INSERT INTO rows VALUES (0, 'before')")
	col.WaitFor(t, "row 0", func(ms []*danube.Message) bool { return ids(ms)[0] })
	var pid int
	queryRow(t, pg.dsn, &pid, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'cdc_slot'")

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	exec1(t, pg.dsn, "INSERT INTO rows SELECT g, 'during' FROM generate_series(1, 500) g")
	time.Sleep(8 * time.Second) // the outage: publishes stuck, the stream unread
	if !c.Running() {
		log, err := exitOf(t, c)
		t.Fatalf("the connector exited during the outage (%v):\n%s", err, log)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	col.WaitFor(t, "every row", func(ms []*danube.Message) bool { return len(ids(ms)) == 501 })
	var after int
	queryRow(t, pg.dsn, &after, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'cdc_slot'")
	if after != pid {
		t.Fatalf("the replication connection was replaced during the outage (walsender %d, now %d):\n%s", pid, after, c.Logs())
	}
	stop(t, c)
	if log := c.Logs(); !strings.Contains(log, "HEARTBEAT_INTERVAL_MS is too long for the server's wal_sender_timeout") {
		t.Fatalf("no warning about HEARTBEAT_INTERVAL_MS:\n%s", log)
	}
}

// TestSlotLostDuringSnapshot: the slot is invalidated while the initial snapshot runs (a long
// snapshot retains WAL from the slot's creation on; here Danube is down meanwhile). Streaming cannot
// start after the snapshot: the connector stops with what happened and what to do, and PostgreSQL's
// DETAIL.
func TestSlotLostDuringSnapshot(t *testing.T) {
	pg := startPrivatePG(t, "max_slot_wal_keep_size=1MB")
	const n = 20000
	exec1(t, pg.dsn, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	exec1(t, pg.dsn, "INSERT INTO rows SELECT g, 'x' FROM generate_series(1, $1::int) g", n)
	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	env := connectorEnv(b.URL(), topic, pg.host, pg.port, "postgres", "postgres", "secret")
	env["MAX_IN_FLIGHT"], env["BATCH_SIZE"] = "10", "10"
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: env})
	col.WaitFor(t, "the start of the snapshot", func(ms []*danube.Message) bool { return len(ms) >= 10 })
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(ids(col.Messages())) == n {
		t.Fatal("the snapshot finished before Danube stopped; the test needs it mid-way")
	}
	loseSlot(t, pg.dsn, n+1, "during the snapshot")
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	log, err := exitOf(t, c)
	if exitCode(err) != 1 {
		t.Fatalf("exit %v, want 1; log:\n%s", err, log)
	}
	for _, w := range []string{
		`replication slot "cdc_slot" is lost: PostgreSQL invalidated it because it retained more WAL than max_slot_wal_keep_size = 1MB allows`,
		"DETAIL: This slot has been invalidated because it exceeded the maximum reserved size.",
	} {
		if !strings.Contains(log, w) {
			t.Fatalf("log lacks %q:\n%s", w, log)
		}
	}
}

// loseSlot writes more WAL than max_slot_wal_keep_size (four rows from id, each followed by a
// switch that ends a 1 MB segment) and a checkpoint, so that PostgreSQL invalidates cdc_slot.
func loseSlot(t *testing.T, dsn string, id int, body string) {
	t.Helper()
	for i := range 4 {
		exec1(t, dsn, "INSERT INTO rows VALUES ($1, $2)", id+i, body)
		exec1(t, dsn, "SELECT pg_switch_wal()")
	}
	exec1(t, dsn, "CHECKPOINT")
	var status string
	queryRow(t, dsn, &status, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'cdc_slot'")
	if status != "lost" {
		t.Fatalf("the test could not make the slot lost: wal_status %q", status)
	}
}
