package chsink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestTenThousandRowsOneInsert: with a broker window of at least BATCH_SIZE (the broker's dispatch
// configuration: Danube v0.15.1 does not apply a per-subscription window set through the admin
// API, and neither does the development broker), a batch of 10,000 messages of about 1 KiB fills
// and goes to ClickHouse as one INSERT, sent in blocks of about 256 KiB that the server squashes into
// one part.
func TestTenThousandRowsOneInsert(t *testing.T) {
	const n = 10000
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, name String, payload String) ENGINE = MergeTree ORDER BY id")
	cfg := loadConfig(t, ep, "events")

	// The broker's ack timeout outlasts the publishing, so nothing is redelivered while the batch fills.
	br := harness.Danube(t, devbroker.Config{AckTimeout: 10 * time.Minute, MaxUnackedMessages: 2 * n}).Broker
	topic := "/default/tenk"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prod, err := runtimetest.Client(t, br).NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "tenk", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sc := runtimetest.SinkConfig(br, "tenk", topic)
	sc.BatchSize, sc.BatchTimeout = n, config.Millis(time.Hour) // only a full batch is inserted
	r := runtimetest.StartSink(t, sc, newSink(t, cfg, sc))

	for i := range n {
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: bigRow(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rd := reader(t, ep)
	deadline := time.Now().Add(time.Minute)
	for {
		got := queryStrings(t, rd, "SELECT toString(count()) FROM "+ep.Database+".events")
		if got[0] == fmt.Sprint(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s rows after a minute, want %d", got[0], n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	parts := queryStrings(t, rd, "SELECT toString(count()) FROM system.parts WHERE database = '"+ep.Database+"' AND table = 'events'")
	if parts[0] != "1" {
		t.Fatalf("%s parts, want the %d rows in one INSERT (one part)", parts[0], n)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// bigRow is a message of about 1 KiB (the bench case's size).
func bigRow(i int) []byte {
	return fmt.Appendf(nil, `{"id":%d,"name":"n-%d","payload":"%s"}`, i, i, strings.Repeat("x", 1000))
}
