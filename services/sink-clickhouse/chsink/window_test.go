package chsink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestTenThousandRowsOneInsert: with DANUBE_ADMIN_URL the runtime widens the subscription's window,
// so a batch of 10,000 messages fills and goes to ClickHouse as one INSERT (one part).
func TestTenThousandRowsOneInsert(t *testing.T) {
	const n = 10000
	ep := harness.ClickHouse(t)
	exec(t, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
	cfg := loadConfig(t, ep, "events")

	// The broker's ack timeout outlasts the publishing, so nothing is redelivered while the batch fills.
	br := harness.Danube(t, devbroker.Config{AckTimeout: 10 * time.Minute}).Broker
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
	sc.DanubeAdminURL = "http://" + br.AdminAddr()
	r := runtimetest.StartSink(t, sc, newSink(t, cfg, sc))

	for i := range n {
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: jsonRow(i)}); err != nil {
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
