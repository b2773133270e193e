package smoke

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

// TestClickHouseBatchInsert creates a table, inserts 10,000 rows in one
// batch over the native protocol and counts them, as the ClickHouse sink
// will.
func TestClickHouseBatchInsert(t *testing.T) {
	ep := harness.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:     []string{ep.NativeAddr},
		Protocol: clickhouse.Native,
		Auth:     clickhouse.Auth{Database: ep.Database, Username: ep.Username, Password: ep.Password},
	})
	if err != nil {
		t.Fatalf("open %s: %v", ep.Source, err)
	}
	defer conn.Close()
	sv, err := conn.ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	t.Logf("server: ClickHouse %s (%s)", sv.Version, ep.Source)

	// Types and syntax that ClickHouse 18.16 understands too.
	if err := conn.Exec(ctx, `CREATE TABLE events (id UInt64, name String, ts DateTime) ENGINE = MergeTree ORDER BY id`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	defer func() {
		if err := conn.Exec(context.Background(), "DROP TABLE events"); err != nil {
			t.Errorf("drop table: %v", err)
		}
	}()

	const rows = 10_000
	// 18.16 needs the column list: without it Append fails with
	// "expected 0 arguments".
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO events (id, name, ts)")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range rows {
		if err := batch.Append(uint64(i), fmt.Sprintf("event-%d", i), ts); err != nil {
			t.Fatalf("append row %d: %v", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch of %d rows: %v", rows, err)
	}

	var count, sum uint64
	var last string
	if err := conn.QueryRow(ctx, "SELECT count(), sum(id), max(name) FROM events").Scan(&count, &sum, &last); err != nil {
		t.Fatalf("count: %v", err)
	}
	if count != rows || sum != rows*(rows-1)/2 || last != "event-9999" {
		t.Errorf("count, sum(id), max(name) = %d, %d, %q; want %d, %d, %q", count, sum, last, rows, rows*(rows-1)/2, "event-9999")
	}
}
