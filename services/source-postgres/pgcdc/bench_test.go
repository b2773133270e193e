package pgcdc_test

import (
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

// BenchmarkStream streams b.N committed INSERTs (100-row transactions, the bench case's table)
// from a slot that already holds them into the development broker: for profiles of the
// connector's own costs (go test -run '^$' -bench Stream -cpuprofile cpu.out).
func BenchmarkStream(b *testing.B) {
	p := newPG(b)
	p.exec("CREATE TABLE stream_rows (id int PRIMARY KEY, v text, amount numeric, at timestamptz)")
	p.exec("CREATE PUBLICATION pub_" + p.Database + " FOR TABLE stream_rows")
	p.exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", p.Database)
	for from := 0; from < b.N; from += 100 {
		p.exec("INSERT INTO stream_rows SELECT g, 'row ' || g, g * 1.25, now() FROM generate_series($1::int, $2::int) g", from, min(from+100, b.N)-1)
	}
	br := runtimetest.StartBroker(b)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(b, br, topic)
	col := runtimetest.Collect(b, br, topic, "reader")
	cfg := p.config(runtimetest.SourceConfig(br, "cdc", topic), "stream_rows")
	cfg.SnapshotMode = pgcdc.SnapshotNever
	cfg.MaxInFlight, cfg.BatchSize, cfg.Heartbeat = 1000, 1000, config.Millis(10*time.Second) // the service's defaults
	b.ResetTimer()
	conn, err := pgcdc.New(cfg, runtime.Resources{})
	if err != nil {
		b.Fatal(err)
	}
	r := runtimetest.StartSource(b, &cfg.SourceConfig, conn, false)
	col.WaitFor(b, "every row", atLeast(b.N))
	b.StopTimer()
	if err := r.Stop(); err != nil {
		b.Fatal(err)
	}
}
