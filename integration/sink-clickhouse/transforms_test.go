package sinkclickhouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// chRow is a row of the customers table as the test reads it.
type chRow struct {
	ID      int32
	Name    string
	Qty     int32
	Deleted uint8
	LSN     string
}

// pipeline is one test's PG → source-postgres → Danube → sink-clickhouse → ClickHouse.
type pipeline struct {
	pg     harness.PostgresEndpoint
	ch     harness.ClickHouseEndpoint
	read   clickhouse.Conn
	events *runtimetest.Collector // the source's events, as the sink reads them
}

// TestUnwrapPostgresEventsIntoRows is issue 24's sink-clickhouse acceptance run: source-postgres's
// change events, unwrapped by sink-clickhouse's TRANSFORMS=unwrap (DELETES=rewrite,
// ADD_FIELDS=source.lsn), become rows of a ReplacingMergeTree table of the row's columns plus
// __deleted and __lsn: after the snapshot and an insert, an update and a delete, the table read
// with FINAL holds each row's last state, the deleted row marked, and every row carries the LSN
// of the event that wrote it. Duplicates (none are expected without a restart) would not change
// what FINAL shows, so the check is exact.
func TestUnwrapPostgresEventsIntoRows(t *testing.T) {
	p := startPipeline(t)
	ctx := context.Background()

	p.pgExec(t, "INSERT INTO customers VALUES (3, 'cid', 3)")
	p.waitRows(t, "the snapshot and an insert",
		chRow{1, "ann", 1, 0, p.lsn(t, "READ", 1)}, chRow{2, "bob", 2, 0, p.lsn(t, "READ", 2)}, chRow{3, "cid", 3, 0, p.lsn(t, "INSERT", 3)})

	p.pgExec(t, "UPDATE customers SET qty = 20 WHERE id = 2")
	p.waitRows(t, "an update",
		chRow{1, "ann", 1, 0, p.lsn(t, "READ", 1)}, chRow{2, "bob", 20, 0, p.lsn(t, "UPDATE", 2)}, chRow{3, "cid", 3, 0, p.lsn(t, "INSERT", 3)})

	p.pgExec(t, "DELETE FROM customers WHERE id = 1") // REPLICA IDENTITY FULL: the event has the whole old row
	p.waitRows(t, "a delete",
		chRow{1, "ann", 1, 1, p.lsn(t, "DELETE", 1)}, chRow{2, "bob", 20, 0, p.lsn(t, "UPDATE", 2)}, chRow{3, "cid", 3, 0, p.lsn(t, "INSERT", 3)})

	var live uint64
	if err := p.read.QueryRow(ctx, "SELECT count() FROM "+p.ch.Database+".customers FINAL WHERE __deleted = 0").Scan(&live); err != nil || live != 2 {
		t.Fatalf("%d live rows (%v), want 2", live, err)
	}
}

// startPipeline creates the PostgreSQL table (two rows for the snapshot) and the ClickHouse
// table, the sink's subscription and an event reader, then starts both connectors.
func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{pg: harness.Postgres(t), ch: harness.ClickHouse(t)}
	p.pgExec(t, "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)")
	p.pgExec(t, "ALTER TABLE customers REPLICA IDENTITY FULL")
	p.pgExec(t, "INSERT INTO customers VALUES (1, 'ann', 1), (2, 'bob', 2)")
	ctx := context.Background()
	err := p.ch.Exec(ctx, "CREATE TABLE "+p.ch.Database+".customers (id Int32, name String, qty Int32, "+
		"__deleted UInt8, __lsn String) ENGINE = ReplacingMergeTree ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	p.read, err = clickhouse.Open(&clickhouse.Options{Addr: []string{p.ch.NativeAddr},
		Auth: clickhouse.Auth{Database: p.ch.Database, Username: p.ch.Username, Password: p.ch.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.read.Close() })

	b := runtimetest.StartBroker(t)
	const topic = "/default/pg-customers"
	runtimetest.CreateTopic(t, b, topic)
	// The sink's subscription exists before the source publishes: a new one starts at the tail.
	pre, err := runtimetest.Client(t, b).Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: "clickhouse-sink-1",
		Subscription: subscription, Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	_ = pre.Close()
	p.events = runtimetest.Collect(t, b, topic, "reader")

	src := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: p.sourceEnv(t, b.URL(), topic)})
	snk := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-clickhouse", Env: p.sinkEnv(b.URL(), topic)})
	ctx, cancel := context.WithTimeout(ctx, runtimetest.Timeout)
	defer cancel()
	for _, c := range []*harness.Connector{src, snk} {
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("%v\n%s", err, c.Logs())
		}
	}
	return p
}

func (p *pipeline) sourceEnv(t *testing.T, brokerURL, topic string) map[string]string {
	t.Helper()
	u, err := url.Parse(p.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return map[string]string{
		"DANUBE_SERVICE_URL": brokerURL, "DANUBE_TOPIC": topic, "CONNECTOR_NAME": "cdc",
		"PG_HOST": u.Hostname(), "PG_PORT": u.Port(), "PG_DATABASE": p.pg.Database, "PG_USER": u.User.Username(),
		"PG_PASSWORD": pw, "PG_SSLMODE": "disable", "SLOT_NAME": p.pg.Database, "PUBLICATION_NAME": "pub",
		"TABLE_WHITELIST": "customers", "LOG_FORMAT": "text", "RETRY_BACKOFF_MS": "20", "RETRY_MAX_BACKOFF_MS": "200",
		"POLL_INTERVAL_MS": "20", "HEARTBEAT_INTERVAL_MS": "200",
	}
}

func (p *pipeline) sinkEnv(brokerURL, topic string) map[string]string {
	host, port, _ := strings.Cut(p.ch.NativeAddr, ":")
	return map[string]string{
		"DANUBE_SERVICE_URL": brokerURL, "DANUBE_TOPIC": topic, "SUBSCRIPTION_NAME": subscription,
		"CONNECTOR_NAME": "clickhouse-sink-1", "LOG_FORMAT": "text", "RETRY_BACKOFF_MS": "50", "RETRY_MAX_BACKOFF_MS": "500",
		"CH_HOST": host, "CH_PORT": port, "CH_DATABASE": p.ch.Database, "CH_TABLE": "customers",
		"CH_USER": p.ch.Username, "CH_PASSWORD": p.ch.Password, "BATCH_SIZE": "100", "BATCH_TIMEOUT_MS": "50",
		"TRANSFORMS": "unwrap", "TRANSFORM_UNWRAP_DELETES": "rewrite", "TRANSFORM_UNWRAP_ADD_FIELDS": "source.lsn",
	}
}

func (p *pipeline) pgExec(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// lsn waits for the source's op event of row id and returns its source.lsn.
func (p *pipeline) lsn(t *testing.T, op string, id int) string {
	t.Helper()
	var lsn string
	p.events.WaitFor(t, fmt.Sprintf("the %s event of row %d", op, id), func(ms []*danube.Message) bool {
		for _, m := range ms {
			var ev struct {
				Op            string
				Before, After struct{ ID int }
				Source        struct{ LSN string }
			}
			if json.Unmarshal(m.Payload, &ev) == nil && ev.Op == op && (ev.After.ID == id || ev.Before.ID == id) {
				lsn = ev.Source.LSN
				return true
			}
		}
		return false
	})
	return lsn
}

// waitRows waits until the table read with FINAL is exactly want (a bound on the wait, not a
// timing assertion).
func (p *pipeline) waitRows(t *testing.T, what string, want ...chRow) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := p.rowsFinal(t)
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the table holds\n%+v\nwant\n%+v", what, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *pipeline) rowsFinal(t *testing.T) []chRow {
	t.Helper()
	rs, err := p.read.Query(context.Background(), "SELECT id, name, qty, __deleted, __lsn FROM "+p.ch.Database+".customers FINAL ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []chRow
	for rs.Next() {
		var r chRow
		if err := rs.Scan(&r.ID, &r.Name, &r.Qty, &r.Deleted, &r.LSN); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
