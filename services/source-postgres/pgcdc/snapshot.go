package pgcdc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/internal/pgjson"
)

// progress is how far the snapshot of one table has got: rows up to lastKey (JSON array of key
// texts, or a ctid for a table without primary key) are in Danube once the checkpoint carrying it
// is committed.
type progress struct {
	table   Table
	lastKey string // "" = from the start
	done    bool
}

// snapshot reads the captured tables in chunks of BATCH_SIZE rows inside one REPEATABLE READ
// transaction: the snapshot the slot exported at creation, or (when resuming after a restart) a
// fresh one, starting after each table's committed progress.
type snapshot struct {
	conn    *pgx.Conn
	pending []progress
	pos     LSN // the position of its checkpoints (the slot's consistent point)
	enc     encoder
	cols    map[Table][]column
}

// stateTable creates the progress table when missing.
func ensureStateTable(ctx context.Context, conn *pgx.Conn, name string) error {
	t, _ := parseTable(name)
	_, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+t.Quoted()+` (
		slot_name text NOT NULL, table_name text NOT NULL, last_key text, done boolean NOT NULL DEFAULT false,
		updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (slot_name, table_name))`)
	if err != nil {
		return classify(err, fmt.Sprintf("create SNAPSHOT_STATE_TABLE %s (grant the user CREATE on schema %s, or create it beforehand)", name, quoteIdent(t.Schema)))
	}
	return nil
}

// resetProgress marks every table's snapshot as to do (a new slot, so a new snapshot).
func resetProgress(ctx context.Context, conn *pgx.Conn, state, slot string, tables []Table) error {
	t, _ := parseTable(state)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "DELETE FROM "+t.Quoted()+" WHERE slot_name = $1", slot); err != nil {
		return err
	}
	for _, tb := range tables {
		if _, err := tx.Exec(ctx, "INSERT INTO "+t.Quoted()+" (slot_name, table_name) VALUES ($1, $2)", slot, tb.String()); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// addProgress records tables to snapshot from the start: tables just added to the publication
// (restart=true: a table captured before, then removed, is read again), or, without restart, the
// tables SNAPSHOT_MODE=initial_only has not read yet.
func addProgress(ctx context.Context, conn *pgx.Conn, state, slot string, tables []Table, restart bool) error {
	t, _ := parseTable(state)
	conflict := " ON CONFLICT (slot_name, table_name) DO NOTHING"
	if restart {
		conflict = " ON CONFLICT (slot_name, table_name) DO UPDATE SET last_key = NULL, done = false, updated_at = now()"
	}
	for _, tb := range tables {
		if _, err := conn.Exec(ctx, "INSERT INTO "+t.Quoted()+" (slot_name, table_name) VALUES ($1, $2)"+conflict, slot, tb.String()); err != nil {
			return err
		}
	}
	return nil
}

// pendingProgress returns the unfinished snapshots of slot, in TABLE_WHITELIST order.
func pendingProgress(ctx context.Context, conn *pgx.Conn, state, slot string, tables []Table) ([]progress, error) {
	t, _ := parseTable(state)
	rows, err := conn.Query(ctx, "SELECT table_name, coalesce(last_key, '') FROM "+t.Quoted()+" WHERE slot_name = $1 AND NOT done", slot)
	if err != nil {
		return nil, err
	}
	left := map[string]string{}
	for rows.Next() {
		var name, key string
		if err := rows.Scan(&name, &key); err != nil {
			return nil, err
		}
		left[name] = key
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []progress
	for _, tb := range tables {
		if key, ok := left[tb.String()]; ok {
			out = append(out, progress{table: tb, lastKey: key})
		}
	}
	return out, nil
}

func saveProgress(ctx context.Context, conn *pgx.Conn, state, slot string, p progress) error {
	t, _ := parseTable(state)
	_, err := conn.Exec(ctx, "INSERT INTO "+t.Quoted()+` (slot_name, table_name, last_key, done) VALUES ($1, $2, $3, $4)
		ON CONFLICT (slot_name, table_name) DO UPDATE SET last_key = EXCLUDED.last_key, done = EXCLUDED.done, updated_at = now()`,
		slot, p.table.String(), p.lastKey, p.done)
	return err
}

// beginSnapshot opens the snapshot transaction on conn, in the exported snapshot when named.
func beginSnapshot(ctx context.Context, conn *pgx.Conn, exported string) error {
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return err
	}
	if exported != "" {
		if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(exported, "'", "''")+"'"); err != nil {
			return err
		}
	}
	return nil
}

// next returns the next chunk of the snapshot: READ events, then a checkpoint carrying the table's
// progress (nil progress: nothing left).
func (sn *snapshot) next(ctx context.Context, s *Source) ([]record, *progress, error) {
	if len(sn.pending) == 0 {
		return nil, nil, nil
	}
	p := &sn.pending[0]
	t := p.table
	info := s.info[t]
	keyCols := info.pk
	var order string
	var args []any
	if len(keyCols) == 0 {
		order = "ctid"
	} else {
		q := make([]string, len(keyCols))
		for i, c := range keyCols {
			q[i] = quoteIdent(c)
		}
		order = strings.Join(q, ", ")
	}
	sql := "SELECT *"
	if len(keyCols) == 0 {
		sql += ", ctid::text AS \"danube$ctid\""
	}
	sql += " FROM " + t.Quoted()
	if p.lastKey != "" {
		if len(keyCols) == 0 {
			sql += " WHERE ctid > $1::tid"
			args = append(args, p.lastKey)
		} else {
			var last []string
			if err := json.Unmarshal([]byte(p.lastKey), &last); err != nil || len(last) != len(keyCols) {
				return nil, nil, runtime.Fatal(fmt.Errorf("snapshot of %s: progress %q in %s does not match the primary key %v", t, p.lastKey, s.cfg.SnapshotState, keyCols))
			}
			ph := make([]string, len(last))
			for i, v := range last {
				ph[i] = fmt.Sprintf("$%d", i+1)
				args = append(args, v)
			}
			sql += " WHERE (" + order + ") > (" + strings.Join(ph, ", ") + ")"
		}
	}
	sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", order, s.cfg.BatchSize)
	rows, err := sn.conn.Query(ctx, sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		return nil, nil, classify(err, "snapshot of "+t.String())
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	ncols := len(fds)
	if len(keyCols) == 0 {
		ncols-- // the ctid
	}
	cols := sn.cols[t]
	if cols == nil {
		for _, fd := range fds[:ncols] {
			cols = append(cols, column{name: fd.Name, oid: fd.DataTypeOID})
		}
		sn.cols[t] = cols
	}
	pkIdx := make([]int, 0, len(keyCols))
	for _, k := range keyCols {
		for i, c := range cols {
			if c.name == k {
				pkIdx = append(pkIdx, i)
			}
		}
	}
	topic := s.cfg.topicFor(t)
	attrs := map[string]string{"table": t.String(), "op": OpRead, "content-type": s.cfg.contentType()}
	sc, err := s.schemaFor(ctx, t, nil)
	if err != nil {
		return nil, nil, err
	}
	recs := make([]record, 0, s.cfg.BatchSize+1) // +1: the checkpoint Poll appends
	var lastKey string
	pos := sn.pos
	vals := make([]value, ncols)
	for rows.Next() {
		raw := rows.RawValues()
		for i := range ncols {
			vals[i] = value{data: raw[i], null: raw[i] == nil}
		}
		payload, err := sn.enc.encode(OpRead, t, cols, nil, vals, source{lsn: sn.pos, snapshot: true})
		if err != nil {
			return nil, nil, runtime.Fatal(err)
		}
		key := routingKey(pkIdx, vals)
		recs = append(recs, sc.record(record{Topic: topic, Payload: payload, Attributes: attrs, Key: key, Origin: func() string {
			return origin(t, cols, pkIdx, key, fmt.Sprintf("snapshot read (slot position %s)", pos))
		}}))
		if len(keyCols) == 0 {
			lastKey = string(raw[ncols])
		} else {
			lastKey = key // the routing key: the key's text, or the JSON array of the texts
		}
	}
	if len(keyCols) == 1 && lastKey != "" {
		lastKey = string(append(pgjson.AppendString([]byte{'['}, lastKey), ']'))
	}
	if err := rows.Err(); err != nil {
		return nil, nil, classify(err, "snapshot of "+t.String())
	}
	done := len(recs) < s.cfg.BatchSize
	if lastKey != "" {
		p.lastKey = lastKey
	}
	out := progress{table: t, lastKey: p.lastKey, done: done}
	if done {
		sn.pending = sn.pending[1:]
		s.log.Info("snapshot of table complete (pending Danube's acks)", "table", t.String())
	}
	return recs, &out, nil
}
