// Package sinkclickhouse_test runs the sink-clickhouse service end to end: the sink-clickhouse
// binary as a separate process configured only by its environment, the in-process development
// broker, and the real ClickHouse server of the harness.
package sinkclickhouse_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func TestMain(m *testing.M) { harness.Main(m) }

// scaledAckTimeout stands for the real broker's 30 s ack timeout (its other defaults stay: five
// delivery attempts, then poison policy Block), so that redeliveries happen within a test.
const scaledAckTimeout = time.Second

// stack is one test's systems: a ClickHouse database with the events table, the development
// broker with the sink's subscription created (a new subscription starts at the tail), and a
// producer.
type stack struct {
	ch     harness.ClickHouseEndpoint
	broker *devbroker.Broker
	prod   *danube.Producer
	read   clickhouse.Conn
	topic  string
	dedup  bool // the server deduplicates a repeated batch (insert_deduplication_token)
}

const subscription = "clickhouse-sink"

func setup(t *testing.T, window int) *stack {
	t.Helper()
	s := &stack{ch: harness.ClickHouse(t), topic: "/default/" + strings.ReplaceAll(harness.Name(t), "_", "-")}
	br := harness.Danube(t, devbroker.Config{MaxUnackedMessages: window, AckTimeout: scaledAckTimeout,
		RetryTick: 50 * time.Millisecond, RedeliveryBaseDelay: 50 * time.Millisecond, RedeliveryMaxDelay: 200 * time.Millisecond})
	if br.Broker == nil {
		t.Skip("needs the in-process development broker (its window, ack timeout and subscription stats); IT_DANUBE_URL is set")
	}
	s.broker = br.Broker
	var err error
	s.read, err = clickhouse.Open(&clickhouse.Options{Addr: []string{s.ch.NativeAddr},
		Auth: clickhouse.Auth{Database: s.ch.Database, Username: s.ch.Username, Password: s.ch.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.read.Close() })
	ctx := context.Background()
	var tokens uint64
	if err := s.read.QueryRow(ctx, "SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'").Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	s.dedup = tokens > 0
	ddl := "CREATE TABLE " + s.ch.Database + ".events (id UInt64, name String, payload String) ENGINE = MergeTree ORDER BY id"
	if s.dedup {
		ddl += " SETTINGS non_replicated_deduplication_window = 1000"
	}
	if err := s.ch.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}

	client, err := danube.NewClient(s.broker.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	s.prod, err = client.NewProducer(ctx, danube.ProducerOptions{Topic: s.topic, Name: "it-producer", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.prod.Close() })
	pre, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: s.topic, Name: "clickhouse-sink-1", Subscription: subscription, Type: danube.Exclusive})
	if err != nil {
		t.Fatal(err)
	}
	_ = pre.Close()
	return s
}

// env is the connector's whole environment, with the scaled-down waits of a test.
func (s *stack) env(chAddr string, batch int) map[string]string {
	host, port, _ := strings.Cut(chAddr, ":")
	return map[string]string{
		"DANUBE_SERVICE_URL": s.broker.URL(), "DANUBE_TOPIC": s.topic, "SUBSCRIPTION_NAME": subscription,
		"CONNECTOR_NAME": "clickhouse-sink-1", "LOG_FORMAT": "text", "SHUTDOWN_TIMEOUT_MS": "5000",
		"RETRY_BACKOFF_MS": "50", "RETRY_MAX_BACKOFF_MS": "500",
		"CH_HOST": host, "CH_PORT": port, "CH_DATABASE": s.ch.Database, "CH_TABLE": "events",
		"CH_USER": s.ch.Username, "CH_PASSWORD": s.ch.Password, "CH_DIAL_TIMEOUT_MS": "500", "CH_INSERT_TIMEOUT_MS": "3000",
		"BATCH_SIZE": fmt.Sprint(batch), "BATCH_TIMEOUT_MS": "50", "FLUSH_INTERVAL_MS": "0",
	}
}

// publish sends rows [from, to) in order.
func (s *stack) publish(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := s.prod.Send(context.Background(), danube.ProducerMessage{Payload: row(i)}); err != nil {
			t.Error(err)
			return
		}
	}
}

func row(i int) []byte {
	return fmt.Appendf(nil, `{"id":%d,"name":"n-%d","payload":"%s"}`, i, i, strings.Repeat("p", 200))
}

// rows returns how many rows the table holds and how many times each id is there.
func (s *stack) rows(t *testing.T) (int, map[uint64]int) {
	t.Helper()
	rs, err := s.read.Query(context.Background(), "SELECT id FROM "+s.ch.Database+".events")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	n, ids := 0, map[uint64]int{}
	for rs.Next() {
		var id uint64
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id]++
		n++
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return n, ids
}

// waitRows waits until at least n distinct ids are in the table (a condition, not a timing
// assertion: the deadline only ends a hung test).
func (s *stack) waitRows(t *testing.T, c *harness.Connector, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, ids := s.rows(t)
		if len(ids) >= n {
			return
		}
		if time.Now().After(deadline) {
			st, _ := s.broker.SubscriptionStats(s.topic, subscription)
			t.Fatalf("%d of %d rows after two minutes; subscription %+v\n%s", len(ids), n, st, c.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAll asserts that ids 0..n-1 are each in the table, nothing else is, and returns the number
// of duplicate rows.
func (s *stack) checkAll(t *testing.T, n int) int {
	t.Helper()
	total, ids := s.rows(t)
	for i := range n {
		if ids[uint64(i)] == 0 {
			t.Errorf("row %d is missing", i)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct ids in the table, want %d", len(ids), n)
	}
	return total - len(ids)
}

// checkSettled waits until the subscription has nothing unacked, nothing pending and nothing in
// its backlog, and asserts that no message was blocked by the poison policy.
func (s *stack) checkSettled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, ok := s.broker.SubscriptionStats(s.topic, subscription)
		if !ok {
			t.Fatal("the subscription is gone")
		}
		if st.Blocked != 0 {
			t.Fatalf("subscription blocked: %+v", st)
		}
		if st.Backlog == 0 && st.Unacked == 0 && st.PendingRedelivery == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription not settled after a minute: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
