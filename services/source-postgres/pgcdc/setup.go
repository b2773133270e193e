package pgcdc

import (
	"context"
	"crypto/tls"
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
		return classify(err, "read wal_level")
	}
	if level != "logical" {
		return runtime.Fatal(fmt.Errorf("PostgreSQL has wal_level=%s; change data capture needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical and restart the server", level))
	}
	var repl bool
	if err := conn.QueryRow(ctx, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&repl); err != nil {
		return classify(err, "read role attributes")
	}
	if !repl {
		return runtime.Fatal(fmt.Errorf("PostgreSQL user %q lacks the REPLICATION attribute: run ALTER ROLE %s WITH REPLICATION", user, quoteIdent(user)))
	}
	return nil
}

// inspectTables reads each table's primary key and replica identity; a missing table, one whose
// UPDATEs and DELETEs cannot be captured, or one the snapshot (read) could not read is a fatal error
// naming the fix.
func inspectTables(ctx context.Context, conn *pgx.Conn, tables []Table, read bool) (map[Table]tableInfo, error) {
	out := make(map[Table]tableInfo, len(tables))
	var errs []error
	for _, t := range tables {
		var ident string
		var pk []string
		var canSelect bool
		err := conn.QueryRow(ctx, `
			SELECT c.relreplident::text, coalesce((
				SELECT array_agg(a.attname::text ORDER BY k.n)
				FROM pg_index i
				CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
				WHERE i.indrelid = c.oid AND i.indisprimary), '{}'), has_table_privilege(c.oid, 'SELECT')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&ident, &pk, &canSelect)
		if errors.Is(err, pgx.ErrNoRows) {
			errs = append(errs, fmt.Errorf("table %s (TABLE_WHITELIST) does not exist in database %s", t, conn.Config().Database))
			continue
		}
		if err != nil {
			return nil, classify(err, "inspect table "+t.String())
		}
		info := tableInfo{pk: pk, identity: ident[0]}
		if info.identity == 'n' || (info.identity == 'd' && len(pk) == 0) {
			errs = append(errs, fmt.Errorf("table %s has no primary key and no replica identity, so its UPDATEs and DELETEs cannot be captured: add a primary key, or run ALTER TABLE %s REPLICA IDENTITY FULL", t, t.Quoted()))
			continue
		}
		if read && !canSelect {
			user := conn.Config().User
			errs = append(errs, fmt.Errorf("PostgreSQL user %q lacks SELECT on table %s, which the snapshot reads: run GRANT SELECT ON %s TO %s (or set SNAPSHOT_MODE=never)", user, t, t.Quoted(), quoteIdent(user)))
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
		stmt := "CREATE PUBLICATION " + quoteIdent(name) + " FOR TABLE " + strings.Join(list, ", ")
		_, err = conn.Exec(ctx, stmt)
		return publicationError(ctx, conn, err, name, want, stmt)
	}
	if err != nil || all {
		return classify(err, fmt.Sprintf("read publication %q", name))
	}
	rows, err := conn.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", name)
	if err != nil {
		return classify(err, fmt.Sprintf("read publication %q", name))
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return classify(err, fmt.Sprintf("read publication %q", name))
	}
	if slices.Equal(have, want) {
		return nil
	}
	stmt := "ALTER PUBLICATION " + quoteIdent(name) + " SET TABLE " + strings.Join(list, ", ")
	_, err = conn.Exec(ctx, stmt)
	return publicationError(ctx, conn, err, name, want, stmt)
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

// publicationError explains a failed CREATE or ALTER PUBLICATION stmt. PostgreSQL reports every
// missing privilege as 42501, in the server's language, so the catalog says which one it was: CREATE
// on the database (to create a publication), ownership of the publication (to alter it), or
// ownership of the tables (FOR TABLE needs the owner's rights, not just SELECT).
func publicationError(ctx context.Context, conn *pgx.Conn, err error, name string, tables []string, stmt string) error {
	verb := "update"
	if strings.HasPrefix(stmt, "CREATE") {
		verb = "create"
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		return classify(err, fmt.Sprintf("%s publication %q", verb, name))
	}
	var user, db string
	var canCreate, ownsPub bool
	var notOwned []string
	qerr := conn.QueryRow(ctx, `SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'),
		coalesce((SELECT pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1), true),
		coalesce((SELECT array_agg(n.nspname || '.' || c.relname || ' (owner ' || pg_get_userbyid(c.relowner) || ')' ORDER BY 1)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname || '.' || c.relname = ANY($2) AND NOT pg_has_role(c.relowner, 'USAGE')), '{}')`,
		name, tables).Scan(&user, &db, &canCreate, &ownsPub, &notOwned)
	if qerr != nil {
		return classify(err, fmt.Sprintf("%s publication %q", verb, name))
	}
	var causes []string
	if verb == "create" && !canCreate {
		causes = append(causes, fmt.Sprintf("user %q lacks CREATE on database %q, which creating a publication needs: run GRANT CREATE ON DATABASE %s TO %s",
			user, db, quoteIdent(db), quoteIdent(user)))
	}
	if verb == "update" && !ownsPub {
		causes = append(causes, fmt.Sprintf("user %q does not own the publication, which altering it needs: run ALTER PUBLICATION %s OWNER TO %s",
			user, quoteIdent(name), quoteIdent(user)))
	}
	if len(notOwned) > 0 {
		causes = append(causes, fmt.Sprintf("user %q does not own %s, and a publication FOR TABLE needs the tables' owner: make it the owner or a member of the owning role",
			user, strings.Join(notOwned, ", ")))
	}
	if len(causes) == 0 {
		causes = append(causes, fmt.Sprintf("user %q lacks a privilege it needs", user))
	}
	return runtime.Fatal(fmt.Errorf("cannot %s publication %q (%s): %s; or have an administrator run %s",
		verb, name, pgErr.Message, strings.Join(causes, "; "), stmt))
}

// slotInfo is the slot's state, found false when it does not exist.
type slotInfo struct {
	found     bool
	confirmed pglogrepl.LSN
}

// readSlot reads the slot; a slot PostgreSQL invalidated (wal_status lost) is a fatal error saying
// what happened and what to do.
func readSlot(ctx context.Context, conn *pgx.Conn, slot, db string) (slotInfo, error) {
	var plugin, slotDB, status string
	var lsn, keep *string
	// wal_status exists from PostgreSQL 13 (as max_slot_wal_keep_size): read through to_jsonb so
	// that the query runs on older servers too.
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), confirmed_flush_lsn::text,
		coalesce(to_jsonb(s) ->> 'wal_status', ''), current_setting('max_slot_wal_keep_size', true)
		FROM pg_replication_slots s WHERE slot_name = $1`, slot).Scan(&plugin, &slotDB, &lsn, &status, &keep)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotInfo{}, nil
	}
	if err != nil {
		return slotInfo{}, classify(err, fmt.Sprintf("read replication slot %q", slot))
	}
	if plugin != "pgoutput" || slotDB != db {
		return slotInfo{}, runtime.Fatal(fmt.Errorf("replication slot %q exists for plugin %q in database %q, want pgoutput in %q: choose another SLOT_NAME or drop it (SELECT pg_drop_replication_slot('%s'))", slot, plugin, slotDB, db, slot))
	}
	info := slotInfo{found: true}
	if lsn != nil {
		info.confirmed, _ = pglogrepl.ParseLSN(*lsn)
	}
	if status == "lost" {
		setting := "max_slot_wal_keep_size"
		if keep != nil {
			setting += " = " + *keep
		}
		return slotInfo{}, lostSlot(slot, setting, info.confirmed.String(), nil)
	}
	return info, nil
}

// lostSlot is the error for a slot PostgreSQL invalidated (setting names max_slot_wal_keep_size,
// with its value when known); cause is PostgreSQL's error, if it reported one.
func lostSlot(slot, setting, confirmed string, cause error) error {
	err := fmt.Errorf("replication slot %q is lost: PostgreSQL invalidated it because it retained more WAL than %s allows, "+
		"and removed WAL after the last position the connector confirmed (%s), so those changes can no longer be streamed. "+
		"To go on, drop the slot (SELECT pg_drop_replication_slot('%s')) and start the connector again: it creates the slot anew and, "+
		"with SNAPSHOT_MODE=initial, reads the tables again (with SNAPSHOT_MODE=never the changes in between are lost). "+
		"To prevent it, raise max_slot_wal_keep_size (-1 = no limit) and alert on the WAL the slot retains (see the README, \"Retained WAL\")",
		slot, setting, confirmed, slot)
	if cause != nil {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	return runtime.Fatal(err)
}

// classify turns an error talking to PostgreSQL into the runtime's classes: what waiting cannot fix
// (credentials, missing objects or privileges, server settings) is fatal, with the fix where known;
// a server that cannot be reached, is starting up or ended the session is Disconnected (the runtime
// waits and tries again); anything else retryable. PostgreSQL's DETAIL and HINT are kept (pgconn's
// message leaves them out).
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var re *runtime.Error
	if errors.As(err, &re) {
		return err
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return runtime.Fatal(fmt.Errorf("%s: %w (check PG_SSLROOTCERT and that PG_HOST matches the server's certificate)", what, err))
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// connection refused, host not found, timeout, connection reset
		return runtime.Disconnected(fmt.Errorf("%s: %w", what, err))
	}
	err = fmt.Errorf("%s: %w%s", what, err, details(pgErr))
	switch pgErr.Code {
	case "28P01":
		return runtime.Fatal(fmt.Errorf("%w (check PG_USER and PG_PASSWORD)", err))
	case "28000":
		return runtime.Fatal(fmt.Errorf("%w (check that PG_USER exists and that pg_hba.conf lets it connect to PG_DATABASE from this host with PG_SSLMODE)", err))
	case "3D000":
		return runtime.Fatal(fmt.Errorf("%w (check PG_DATABASE)", err))
	case "42501", "42704", "42P01":
		return runtime.Fatal(err)
	case "55000":
		if strings.Contains(pgErr.Message, "wal_level") {
			return runtime.Fatal(fmt.Errorf("%w (logical replication needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical and restart the server)", err))
		}
		return runtime.Fatal(err)
	case "53400":
		return runtime.Fatal(fmt.Errorf("%w (raise max_replication_slots or max_wal_senders, or drop unused slots)", err))
	}
	if pgErr.Severity == "FATAL" || pgErr.Code[:2] == "57" || pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" {
		// the session ended: the server shuts down or is starting up (57P03), or is out of connections
		return runtime.Disconnected(err)
	}
	return err
}

// details is PostgreSQL's DETAIL and HINT of e, as text to append to its message.
func details(e *pgconn.PgError) string {
	var b strings.Builder
	if e.Detail != "" {
		b.WriteString(" DETAIL: " + e.Detail)
	}
	if e.Hint != "" {
		b.WriteString(" HINT: " + e.Hint)
	}
	return b.String()
}
