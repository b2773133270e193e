package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// tableInfo is what the catalog says about a captured table.
type tableInfo struct {
	pk       []string // primary key columns, in key order
	identity byte     // relreplident: d(efault), n(othing), f(ull), i(ndex)
}

// checkServer verifies wal_level and the user's REPLICATION attribute, naming the fix.
func checkServer(ctx context.Context, conn *pgx.Conn, user string) error {
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if level != "logical" {
		return runtime.Fatal(fmt.Errorf("PostgreSQL has wal_level=%s; change data capture needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical and restart the server", level))
	}
	var repl bool
	if err := conn.QueryRow(ctx, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&repl); err != nil {
		return fmt.Errorf("read role attributes: %w", err)
	}
	if !repl {
		return runtime.Fatal(fmt.Errorf("PostgreSQL user %q lacks the REPLICATION attribute: run ALTER ROLE %s WITH REPLICATION", user, quoteIdent(user)))
	}
	return nil
}

// inspectTables reads each table's primary key and replica identity; a missing table, or one whose
// UPDATEs and DELETEs cannot be captured, is a fatal error naming the fix.
func inspectTables(ctx context.Context, conn *pgx.Conn, tables []Table) (map[Table]tableInfo, error) {
	out := make(map[Table]tableInfo, len(tables))
	var errs []error
	for _, t := range tables {
		var ident string
		var pk []string
		err := conn.QueryRow(ctx, `
			SELECT c.relreplident::text, coalesce((
				SELECT array_agg(a.attname::text ORDER BY k.n)
				FROM pg_index i
				CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&ident, &pk)
		if errors.Is(err, pgx.ErrNoRows) {
			errs = append(errs, fmt.Errorf("table %s (TABLE_WHITELIST) does not exist in database %s", t, conn.Config().Database))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect table %s: %w", t, err)
		}
		info := tableInfo{pk: pk, identity: ident[0]}
		if info.identity == 'n' || (info.identity == 'd' && len(pk) == 0) {
			errs = append(errs, fmt.Errorf("table %s has no primary key and no replica identity, so its UPDATEs and DELETEs cannot be captured: add a primary key, or run ALTER TABLE %s REPLICA IDENTITY FULL", t, t.Quoted()))
			continue
		}
		out[t] = info
	}
	if len(errs) > 0 {
		return nil, runtime.Fatal(errors.Join(errs...))
	}
	return out, nil
}

// ensurePublication creates the publication for the tables, or makes an existing one publish
// exactly them (a FOR ALL TABLES publication is left alone: its other tables are filtered out).
func ensurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []Table) error {
	list := make([]string, len(tables))
	want := make([]string, len(tables))
	for i, t := range tables {
		list[i] = t.Quoted()
		want[i] = t.String()
	}
	slices.Sort(want)
	var all bool
	err := conn.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", name).Scan(&all)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = conn.Exec(ctx, "CREATE PUBLICATION "+quoteIdent(name)+" FOR TABLE "+strings.Join(list, ", "))
		return publicationError(err, name, "create", "CREATE")
	}
	if err != nil || all {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", name)
	if err != nil {
		return err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if slices.Equal(have, want) {
		return nil
	}
	_, err = conn.Exec(ctx, "ALTER PUBLICATION "+quoteIdent(name)+" SET TABLE "+strings.Join(list, ", "))
	return publicationError(err, name, "update", "ALTER")
}

// publicationLacks returns the tables of the whitelist the publication does not publish yet: all of
// them when it does not exist, none when it publishes ALL TABLES.
func publicationLacks(ctx context.Context, conn *pgx.Conn, name string, tables []Table) ([]Table, error) {
	var all bool
	err := conn.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", name).Scan(&all)
	if errors.Is(err, pgx.ErrNoRows) {
		return tables, nil
	}
	if err != nil || all {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", name)
	if err != nil {
		return nil, err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []Table
	for _, t := range tables {
		if !slices.Contains(have, t.String()) {
			out = append(out, t)
		}
	}
	return out, nil
}

func publicationError(err error, name, verb, stmt string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return runtime.Fatal(fmt.Errorf("cannot %s publication %q (%s): the user must own the tables (or the publication), or have an administrator run %s PUBLICATION", verb, name, pgErr.Message, stmt))
	}
	if err != nil {
		return fmt.Errorf("%s publication %q: %w", verb, name, err)
	}
	return nil
}

// slotInfo is the slot's state, found false when it does not exist.
type slotInfo struct {
	found     bool
	confirmed pglogrepl.LSN
}

func readSlot(ctx context.Context, conn *pgx.Conn, slot, db string) (slotInfo, error) {
	var plugin, slotDB string
	var lsn *string
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), confirmed_flush_lsn::text
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&plugin, &slotDB, &lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotInfo{}, nil
	}
	if err != nil {
		return slotInfo{}, fmt.Errorf("read replication slot %q: %w", slot, err)
	}
	if plugin != "pgoutput" || slotDB != db {
		return slotInfo{}, runtime.Fatal(fmt.Errorf("replication slot %q exists for plugin %q in database %q, want pgoutput in %q: choose another SLOT_NAME or drop it (SELECT pg_drop_replication_slot('%s'))", slot, plugin, slotDB, db, slot))
	}
	info := slotInfo{found: true}
	if lsn != nil {
		info.confirmed, _ = pglogrepl.ParseLSN(*lsn)
	}
	return info, nil
}

// classify turns a PostgreSQL error into the runtime's classes: configuration problems are fatal
// (with the fix), a lost connection is Disconnected, anything else retryable.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var re *runtime.Error
	if errors.As(err, &re) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42501", "28000", "28P01":
			return runtime.Fatal(fmt.Errorf("%s: %w (check PG_USER's password, pg_hba.conf and that it has the REPLICATION attribute)", what, err))
		case "42704", "3D000":
			return runtime.Fatal(fmt.Errorf("%s: %w", what, err))
		case "55000":
			return runtime.Fatal(fmt.Errorf("%s: %w (logical replication needs wal_level=logical and free max_replication_slots / max_wal_senders)", what, err))
		case "53400":
			return runtime.Fatal(fmt.Errorf("%s: %w (raise max_replication_slots or max_wal_senders, or drop unused slots)", what, err))
		}
		if pgErr.Severity == "FATAL" || pgErr.Code[:2] == "57" || pgErr.Code[:2] == "08" {
			return runtime.Disconnected(fmt.Errorf("%s: %w", what, err))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return runtime.Disconnected(fmt.Errorf("%s: %w", what, err))
}
