package chsink

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chtype"
)

// schema is the insertable part of the table: its columns in table order (MATERIALIZED and ALIAS
// columns cannot be inserted and are left out).
type schema struct {
	cols   []column
	byName map[string]int
}

type column struct {
	name string
	typ  *chtype.Type
}

// loadSchema reads the table's columns from system.columns.
func loadSchema(ctx context.Context, conn clickhouse.Conn, database, table string) (*schema, error) {
	rows, err := conn.Query(ctx, "SELECT name, type, default_kind FROM system.columns WHERE database = ? AND table = ?", database, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	s := &schema{byName: map[string]int{}}
	for rows.Next() {
		var name, typ, kind string
		if err := rows.Scan(&name, &typ, &kind); err != nil {
			return nil, err
		}
		if kind == "MATERIALIZED" || kind == "ALIAS" {
			continue
		}
		t, err := chtype.Parse(typ)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
		s.byName[name] = len(s.cols)
		s.cols = append(s.cols, column{name: name, typ: t})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(s.cols) == 0 {
		return nil, fmt.Errorf("table %s.%s does not exist or has no insertable column", database, table)
	}
	return s, nil
}

// diff lists the columns of next that s does not have, those of s that next does not have, and
// those whose type differs, as "name Type" (the new type).
func (s *schema) diff(next *schema) (added, dropped, retyped []string) {
	for _, c := range next.cols {
		j, ok := s.byName[c.name]
		switch {
		case !ok:
			added = append(added, c.name+" "+c.typ.Name)
		case s.cols[j].typ.Name != c.typ.Name:
			retyped = append(retyped, c.name+" "+c.typ.Name)
		}
	}
	for _, c := range s.cols {
		if _, ok := next.byName[c.name]; !ok {
			dropped = append(dropped, c.name)
		}
	}
	return added, dropped, retyped
}

// server is what the sink knows about the server and the table's engine.
type server struct {
	version string
	engine  string
	token   bool // insert_deduplication_token is a setting of this server
	dedup   bool // inserts of the table are deduplicated (Replicated*, or a non-replicated window)
}

var dedupWindow = regexp.MustCompile(`non_replicated_deduplication_window\s*=\s*(\d+)`)

// probeServer detects the version, whether it knows insert_deduplication_token, and whether the
// table's engine deduplicates inserts.
func probeServer(ctx context.Context, conn clickhouse.Conn, database, table string) (server, error) {
	var s server
	v, err := conn.ServerVersion()
	if err != nil {
		return s, err
	}
	s.version = fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'").Scan(&n); err != nil {
		return s, err
	}
	s.token = n > 0
	var full string
	if err := conn.QueryRow(ctx, "SELECT engine, engine_full FROM system.tables WHERE database = ? AND name = ?", database, table).Scan(&s.engine, &full); err != nil {
		return s, fmt.Errorf("table %s.%s: %w", database, table, err)
	}
	s.dedup = deduplicates(s.engine, full)
	return s, nil
}

// deduplicates reports whether a table of engine (system.tables engine, engine_full) drops an
// inserted block it has seen: Replicated* engines always, other MergeTree engines with a
// non_replicated_deduplication_window.
func deduplicates(engine, full string) bool {
	switch {
	case strings.HasPrefix(engine, "Replicated"):
		return true
	case strings.HasSuffix(engine, "MergeTree"):
		if m := dedupWindow.FindStringSubmatch(full); m != nil {
			w, _ := strconv.Atoi(m[1])
			return w > 0
		}
	}
	return false
}

// guarantee says, for the start-up log, what a retried or redelivered batch does.
func (s server) guarantee() (string, string) {
	switch {
	case s.token && s.dedup:
		return "effectively-once", "every INSERT carries an insert_deduplication_token from partition and first/last offset; the " + s.engine + " table drops a repeated batch"
	case s.token:
		return "at-least-once", "the server supports insert_deduplication_token, but a " + s.engine + " table without non_replicated_deduplication_window does not deduplicate; set it (MergeTree) or use ReplicatedMergeTree for effectively-once"
	case s.dedup:
		return "at-least-once", "this server has no insert_deduplication_token (ClickHouse 22.2 and later); the " + s.engine + " table deduplicates identical blocks by their hash, so a repeated batch is usually dropped, but a batch re-formed differently after a crash is not"
	}
	return "at-least-once", "this server has no insert_deduplication_token (ClickHouse 22.2 and later): a batch repeated after a crash or a lost connection is inserted again"
}
