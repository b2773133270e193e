package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func init() { register(&sourcePostgresCase{}) }

const (
	pgVariant         = "source-postgres"
	pgRecvVariant     = "pg_recvlogical"
	pgCopyVariant     = "COPY TO STDOUT (psql)"
	pgStreamSetting   = "stream: committed INSERTs (100-row transactions)"
	pgSnapshotSetting = "initial snapshot"
)

// sourcePostgresCase measures the source-postgres binary streaming committed INSERTs from a
// logical replication slot into the development broker, beside pg_recvlogical decoding the same
// WAL from a second slot; and its initial snapshot of a large table beside a plain COPY.
type sourcePostgresCase struct {
	dsn string // -source-postgres-dsn; default IT_POSTGRES_DSN
}

func (c *sourcePostgresCase) Name() string { return "source-postgres" }

func (c *sourcePostgresCase) About() string {
	return "Rows of a 4-column table (int key, text, numeric, timestamptz) in PostgreSQL (`IT_POSTGRES_DSN`, " +
		"wal_level=logical). **Stream:** the rows are INSERTed in 100-row transactions after two logical " +
		"slots were created, so both readers find the same WAL waiting. The baseline is `pg_recvlogical` " +
		"(pgoutput, protocol 2, output to /dev/null, `--endpos` at the last commit) from one slot: the least any " +
		"logical replication reader does. The `source-postgres` binary (a separate process, SNAPSHOT_MODE=never) " +
		"streams the other slot into a reliable topic of the in-process development broker as JSON events and " +
		"confirms each transaction's LSN after Danube acked it; both rates are taken from process start to the " +
		"last change (pg_recvlogical's exit; the last event the development broker accepted, counted in the broker, not by a consumer that would take the cores the connector needs). **Snapshot:** the connector " +
		"creates its slot and reads the whole table in the exported snapshot (BATCH_SIZE=1000) into Danube, beside " +
		"`psql -c \"COPY … TO STDOUT\"` into /dev/null; peak RSS is the connector's VmHWM. Goals: at least 0.5× " +
		"pg_recvlogical's rate; RSS under 64 MiB during a 1,000,000-row snapshot."
}

func (c *sourcePostgresCase) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.dsn, "source-postgres-dsn", "", "PostgreSQL (superuser, wal_level=logical) for the source-postgres case (default: $IT_POSTGRES_DSN)")
}

func (c *sourcePostgresCase) Run(ctx context.Context, env *Env) (Result, error) {
	dsn := cmp.Or(c.dsn, os.Getenv("IT_POSTGRES_DSN"))
	if dsn == "" {
		return Result{}, unavailable("source-postgres: no PostgreSQL: set IT_POSTGRES_DSN (source /tmp/it-shared.env, or tools/itservers) or -source-postgres-dsn")
	}
	if _, err := exec.LookPath("pg_recvlogical"); err != nil {
		return Result{}, fmt.Errorf("source-postgres: the baseline needs pg_recvlogical (postgresql-client): %w", err)
	}
	bin, err := env.Build(ctx, "services/source-postgres")
	if err != nil {
		return Result{}, err
	}
	db, err := newBenchDB(ctx, dsn)
	if err != nil {
		return Result{}, err
	}
	defer db.drop()

	n, snapRows := 100000, 1000000
	if env.Quick {
		n, snapRows = 1000, 5000
	}
	env.Logf("source-postgres: stream: %d rows", n)
	stream, err := db.measureStream(ctx, bin, n)
	if err != nil {
		return Result{}, fmt.Errorf("stream: %w", err)
	}
	env.Logf("source-postgres: snapshot: %d rows", snapRows)
	snap, err := db.measureSnapshot(ctx, bin, snapRows)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	return Result{Groups: []Group{{Setting: pgStreamSetting, Rows: stream}, {Setting: pgSnapshotSetting, Rows: snap}}}, nil
}

// benchDB is a database of its own on the server, dropped (with its slots) at the end.
type benchDB struct {
	admin, dsn, name string
	u                *url.URL
}

func newBenchDB(ctx context.Context, admin string) (*benchDB, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "bench_pg_" + hex.EncodeToString(b[:])
	if err := pgRun(ctx, admin, "CREATE DATABASE "+name); err != nil {
		return nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	return &benchDB{admin: admin, dsn: u.String(), name: name, u: u}, nil
}

func (d *benchDB) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = pgRun(ctx, d.admin, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '"+d.name+"' AND active")
	time.Sleep(200 * time.Millisecond)
	_ = pgRun(ctx, d.admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '"+d.name+"'")
	_ = pgRun(ctx, d.admin, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
}

func pgRun(ctx context.Context, dsn string, sqls ...string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// connectorEnv is the connector's whole environment.
func (d *benchDB) connectorEnv(brokerURL, topic, slot, table, mode string) []string {
	pw, _ := d.u.User.Password()
	sslmode := d.u.Query().Get("sslmode")
	if sslmode == "" {
		sslmode = "prefer"
	}
	return []string{
		"DANUBE_SERVICE_URL=" + brokerURL, "DANUBE_TOPIC=" + topic, "CONNECTOR_NAME=bench-" + slot,
		"PG_HOST=" + d.u.Hostname(), "PG_PORT=" + d.u.Port(), "PG_DATABASE=" + d.name, "PG_USER=" + d.u.User.Username(),
		"PG_PASSWORD=" + pw, "PG_SSLMODE=" + sslmode, "SLOT_NAME=" + slot, "PUBLICATION_NAME=pub_" + table,
		"TABLE_WHITELIST=" + table, "SNAPSHOT_MODE=" + mode, "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text",
		"LOG_LEVEL=warn", "SHUTDOWN_TIMEOUT_MS=5000",
	}
}

// runConnector starts the connector and waits until the broker holds n events; it returns the
// connector's row (rate from process start to the last arrival).
func runConnector(ctx context.Context, bin string, vars []string, dc *danubeCounter, n int) (Row, error) {
	start := time.Now()
	conn, err := startChild(bin, vars)
	if err != nil {
		return Row{}, err
	}
	if err := waitCtx(ctx, dc.done, 10*time.Minute); err != nil {
		_ = conn.stop()
		return Row{}, fmt.Errorf("source-postgres published %d of %d: %w\n%s", dc.got.Load(), n, err, conn.out.String())
	}
	if err := conn.stop(); err != nil {
		return Row{}, err
	}
	span := time.Duration(dc.last.Load() - start.UnixNano())
	return Row{Variant: pgVariant, Msgs: n, Rate: float64(n) / span.Seconds(), CPUMicros: conn.cpuMicros(n), RSSMiB: conn.rss}, nil
}

// measureStream returns pg_recvlogical's row, then the connector's.
func (d *benchDB) measureStream(ctx context.Context, bin string, n int) ([]Row, error) {
	const table = "stream_rows"
	err := pgRun(ctx, d.dsn,
		"CREATE TABLE "+table+" (id int PRIMARY KEY, v text, amount numeric, at timestamptz)",
		"CREATE PUBLICATION pub_"+table+" FOR TABLE "+table,
		"SELECT pg_create_logical_replication_slot('s_base', 'pgoutput')",
		"SELECT pg_create_logical_replication_slot('s_conn', 'pgoutput')")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		return nil, err
	}
	for from := 0; from < n; from += 100 {
		if _, err := conn.Exec(ctx, "INSERT INTO "+table+" SELECT g, 'row ' || g, g * 1.25, now() FROM generate_series($1::int, $2::int) g",
			from, min(from+100, n)-1); err != nil {
			_ = conn.Close(ctx)
			return nil, err
		}
	}
	var endLSN string
	err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endLSN)
	_ = conn.Close(ctx)
	if err != nil {
		return nil, err
	}

	pw, _ := d.u.User.Password()
	cmd := exec.CommandContext(ctx, "pg_recvlogical", "-d", d.dsn, "--slot", "s_base", "--start", "--no-loop",
		"-o", "proto_version=2", "-o", "publication_names=pub_"+table, "--endpos", endLSN, "-f", "/dev/null")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pg_recvlogical: %w\n%s", err, out)
	}
	base := Row{Variant: pgRecvVariant, Msgs: n, Rate: float64(n) / time.Since(start).Seconds(),
		CPUMicros: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() * 1e6 / float64(n)}

	const topic = "/default/bench-pg"
	dc, err := newDanubeCounter(ctx, topic, n)
	if err != nil {
		return nil, err
	}
	defer dc.close()
	row, err := runConnector(ctx, bin, d.connectorEnv(dc.broker.URL(), topic, "s_conn", table, "never"), dc, n)
	if err != nil {
		return nil, err
	}
	return []Row{base, row}, nil
}

// measureSnapshot returns COPY's row, then the connector's snapshot.
func (d *benchDB) measureSnapshot(ctx context.Context, bin string, n int) ([]Row, error) {
	const table = "snapshot_rows"
	err := pgRun(ctx, d.dsn,
		"CREATE TABLE "+table+" (id int PRIMARY KEY, v text, amount numeric, at timestamptz)",
		fmt.Sprintf("INSERT INTO %s SELECT g, 'row ' || g, g * 1.25, now() FROM generate_series(0, %d) g", table, n-1),
		"VACUUM ANALYZE "+table)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("psql"); err != nil {
		return nil, fmt.Errorf("the snapshot baseline needs psql: %w", err)
	}
	pw, _ := d.u.User.Password()
	cmd := exec.CommandContext(ctx, "psql", d.dsn, "-q", "-c", "COPY "+table+" TO STDOUT", "-o", "/dev/null")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("psql: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	base := Row{Variant: pgCopyVariant, Msgs: n, Rate: float64(n) / time.Since(start).Seconds(),
		CPUMicros: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() * 1e6 / float64(n)}

	const topic = "/default/bench-pg-snapshot"
	dc, err := newDanubeCounter(ctx, topic, n)
	if err != nil {
		return nil, err
	}
	defer dc.close()
	row, err := runConnector(ctx, bin, d.connectorEnv(dc.broker.URL(), topic, "s_snap", table, "initial"), dc, n)
	if err != nil {
		return nil, err
	}
	return []Row{base, row}, nil
}
