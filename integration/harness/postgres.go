package harness

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// PostgresImage is the image of the PostgreSQL container.
const PostgresImage = "postgres:16-alpine"

// PostgresEndpoint is a PostgreSQL server with wal_level=logical and a
// database of the test's own.
type PostgresEndpoint struct {
	// DSN connects to Database as a superuser; a postgres:// URL.
	DSN string
	// ReplicationDSN is DSN with replication=database: a connection for
	// logical replication (pglogrepl) in Database.
	ReplicationDSN string
	// Database was created for the test; it is dropped, with its
	// replication slots, when the test ends.
	Database string
	// Source says where the server came from, for test logs.
	Source string
}

var postgresServer shared[PostgresEndpoint]

// Postgres returns a PostgreSQL server with logical WAL and a fresh database
// for t (see the package doc for the order of choice). Its database is
// dropped, after its replication slots, when t ends.
func Postgres(t testing.TB) PostgresEndpoint {
	t.Helper()
	server := resolve(t, "PostgreSQL", EnvPostgresDSN, postgresFromEnv, &postgresServer, startPostgres)
	ep, err := server.withDatabase(Name(t))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pgExec(ctx, server.DSN, "CREATE DATABASE "+pgx.Identifier{ep.Database}.Sanitize()); err != nil {
		t.Fatalf("harness: create database %s on %s: %v", ep.Database, server.Source, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropPostgresDatabase(ctx, server.DSN, ep.Database); err != nil {
			t.Errorf("harness: drop database %s: %v", ep.Database, err)
		}
	})
	return ep
}

func postgresFromEnv() (PostgresEndpoint, error) {
	dsn := os.Getenv(EnvPostgresDSN)
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return PostgresEndpoint{}, fmt.Errorf("%q is not a postgres://user@host:port/db URL", dsn)
	}
	if err := checkReachable(EnvPostgresDSN, u.Host); err != nil {
		return PostgresEndpoint{}, err
	}
	return PostgresEndpoint{DSN: dsn, Source: EnvPostgresDSN + "=" + u.Redacted()}, nil
}

func startPostgres(ctx context.Context) (PostgresEndpoint, error) {
	const password = "it"
	c, err := run(ctx, PostgresImage,
		testcontainers.WithEnv(map[string]string{"POSTGRES_PASSWORD": password}),
		testcontainers.WithCmd("postgres",
			"-c", "wal_level=logical",
			"-c", "max_replication_slots=20",
			"-c", "max_wal_senders=20",
			"-c", "fsync=off"),
		testcontainers.WithExposedPorts("5432/tcp"),
		// The image's entrypoint starts a temporary server for its init
		// scripts first: the second "ready" is the real one.
		testcontainers.WithWaitStrategy(wait.ForAll(
			wait.ForLog("database system is ready to accept connections").WithOccurrence(2),
			wait.ForListeningPort("5432/tcp"),
		)),
	)
	if err != nil {
		return PostgresEndpoint{}, err
	}
	hostPort, err := c.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		return PostgresEndpoint{}, fmt.Errorf("postgres container port: %w", err)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", password),
		Host:     hostPort,
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return PostgresEndpoint{DSN: u.String(), Source: "container " + PostgresImage}, nil
}

// withDatabase returns the endpoint of database db on the same server.
func (e PostgresEndpoint) withDatabase(db string) (PostgresEndpoint, error) {
	u, err := url.Parse(e.DSN)
	if err != nil {
		return PostgresEndpoint{}, fmt.Errorf("postgres DSN %q: %w", e.DSN, err)
	}
	u.Path = "/" + db
	e.DSN = u.String()
	q := u.Query()
	q.Set("replication", "database")
	u.RawQuery = q.Encode()
	e.ReplicationDSN = u.String()
	e.Database = db
	return e, nil
}

func pgExec(ctx context.Context, dsn, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// dropPostgresDatabase drops db after ending its replication connections and
// dropping its replication slots, which DROP DATABASE refuses to do.
func dropPostgresDatabase(ctx context.Context, adminDSN, db string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for {
		var active int
		err := conn.QueryRow(ctx, `
			SELECT count(pg_terminate_backend(active_pid))
			FROM pg_replication_slots WHERE database = $1 AND active`, db).Scan(&active)
		if err != nil {
			return fmt.Errorf("end replication connections: %w", err)
		}
		if active == 0 {
			break
		}
		// A terminated walsender releases its slot asynchronously.
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication slots of %s still active: %w", db, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := conn.Exec(ctx, `
		SELECT pg_drop_replication_slot(slot_name)
		FROM pg_replication_slots WHERE database = $1 AND NOT active`, db); err != nil {
		return fmt.Errorf("drop replication slots: %w", err)
	}
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	return err
}
