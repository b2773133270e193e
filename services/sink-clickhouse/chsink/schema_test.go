package chsink

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestColumnChangesWhileRowsFlow alters the table under a running sink while a producer keeps
// sending rows: a column added (the rows that carry it store their value, not the column's
// default), a column dropped that the messages still carry (no row lost or dead-lettered), and a
// column's type changed (rows of either type stored as the new type; values only the new type
// takes are stored, not rejected).
func TestColumnChangesWhileRowsFlow(t *testing.T) {
	ep := harness.ClickHouse(t)
	table := ep.Database + ".events"
	exec(t, ep, "CREATE TABLE "+table+" (id UInt64, name String, v UInt16) ENGINE = MergeTree ORDER BY id")
	cfg := loadConfig(t, ep, "events")

	br := runtimetest.StartBroker(t)
	topic := "/default/alter"
	runtimetest.CreateTopic(t, br, topic)
	sc := runtimetest.SinkConfig(br, "alter", topic)
	sc.BatchSize = 8
	var logs runtimetest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := runtimetest.StartSink(t, sc, newSink(t, cfg, sc, runtime.WithLogger(log)), runtime.WithLogger(log))

	// The producer's payload of row id depends on the phase when it is sent; sent keeps, per id,
	// the newcol and v that ClickHouse should hold.
	const (
		plain    = iota // {"id","name","v":number}
		withNew         // and "newcol"
		vAsText         // and "v" as text that only String takes
		stopping        // the producer returns
	)
	var phase atomic.Int32
	type want struct{ newcol, v string }
	var mu sync.Mutex
	sent := map[uint64]want{}
	prod, err := runtimetest.Client(t, br).NewProducer(context.Background(), danube.ProducerOptions{Topic: topic, Name: "alter-producer", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := uint64(1); ; id++ {
			w := want{newcol: "none", v: fmt.Sprint(id % 1000)}
			p := fmt.Sprintf(`{"id":%d,"name":"n-%d","v":%d}`, id, id, id%1000)
			switch phase.Load() {
			case withNew:
				w.newcol = fmt.Sprint("hello-", id)
				p = fmt.Sprintf(`{"id":%d,"name":"n-%d","v":%d,"newcol":%q}`, id, id, id%1000, w.newcol)
			case vAsText:
				w.newcol, w.v = fmt.Sprint("hello-", id), fmt.Sprint("x-", id)
				p = fmt.Sprintf(`{"id":%d,"name":"n-%d","v":%q,"newcol":%q}`, id, id, w.v, w.newcol)
			case stopping:
				return
			}
			mu.Lock()
			sent[id] = w
			mu.Unlock()
			if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: []byte(p)}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	rd := reader(t, ep)
	// flowing waits until n more rows than now are stored: rows keep flowing in this phase.
	flowing := func(n int) {
		t.Helper()
		count := func() int { return len(queryStrings(t, rd, "SELECT toString(id) FROM "+table)) }
		target := count() + n
		deadline := time.Now().Add(runtimetest.Timeout)
		for count() < target {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d rows stored after %v\n%s", target, runtimetest.Timeout, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	flowing(20)
	exec(t, ep, "ALTER TABLE "+table+" ADD COLUMN newcol String DEFAULT 'none'")
	phase.Store(withNew)
	flowing(20)
	exec(t, ep, "ALTER TABLE "+table+" DROP COLUMN name") // the messages still carry "name"
	flowing(20)
	exec(t, ep, "ALTER TABLE "+table+" MODIFY COLUMN v String")
	// The rows still sent with numbers fit both types; the first INSERT after the change finds
	// the server's type differs and the sink reads the columns again.
	deadline := time.Now().Add(runtimetest.Timeout)
	for !strings.Contains(logs.String(), "retyped=\"[v String]\"") {
		if time.Now().After(deadline) {
			t.Fatalf("the type change was not noticed\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	phase.Store(vAsText)
	flowing(20)
	phase.Store(stopping)
	<-done

	mu.Lock()
	defer mu.Unlock()
	deadline = time.Now().Add(runtimetest.Timeout)
	var rows []string
	for {
		rows = queryStrings(t, rd, "SELECT concat(toString(id), ' ', newcol, ' ', v) FROM "+table+" ORDER BY id")
		if len(rows) >= len(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var wantRows []string
	for _, id := range slices.Sorted(maps.Keys(sent)) {
		wantRows = append(wantRows, fmt.Sprintf("%d %s %s", id, sent[id].newcol, sent[id].v))
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("stored %d rows, want %d (each sent row once, with its values):\n%s", len(rows), len(wantRows), firstDiff(rows, wantRows))
	}
	for _, series := range []string{`connector_records_dead_lettered_total{connector="alter"}`, `connector_records_failed_total{class="retryable",connector="alter"}`} {
		if v := r.Metric(t, series); v > 0 {
			t.Errorf("%s = %v, want none", series, v)
		}
	}
	for _, change := range []string{`added="[newcol String]"`, `dropped=[name]`, `retyped="[v String]"`} {
		if !strings.Contains(logs.String(), change) {
			t.Errorf("no log of the change %s", change)
		}
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// firstDiff describes where got and want first differ.
func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("row %d: got %q, want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("got %d rows, want %d", len(got), len(want))
}

// TestUnknownFieldRereadsLimited: a field without a column that the sink has not met makes it read
// the columns at once; one it has met does so at most once per rereadAfter, so that a stream that
// always carries it does not query the server per batch, and a column added for it is picked up
// within that time.
func TestUnknownFieldRereadsLimited(t *testing.T) {
	ep := harness.ClickHouse(t)
	table := ep.Database + ".events"
	exec(t, ep, "CREATE TABLE "+table+" (id UInt64) ENGINE = MergeTree ORDER BY id")
	s := initialized(t, loadConfig(t, ep, "events"))
	process := func(offset uint64, payload string) {
		t.Helper()
		if err := s.ProcessBatch(context.Background(), records("/default/ev", offset, payload)); err != nil {
			t.Fatal(err)
		}
	}
	// A read in the future: only a name the sink has not met can make it read again.
	future := time.Now().Add(time.Hour)
	s.schemaRead = future
	process(0, `{"id":1,"extra":"a"}`)
	if s.schemaRead.Equal(future) || !s.unknown["extra"] {
		t.Fatalf("a new unknown field did not make the sink read the columns (read %v, unknown %v)", s.schemaRead, s.unknown)
	}
	s.schemaRead = future
	for i := range 50 {
		process(uint64(1+i), fmt.Sprintf(`{"id":%d,"extra":"b"}`, 2+i))
	}
	if !s.schemaRead.Equal(future) {
		t.Fatal("a field met before made the sink read the columns again within rereadAfter")
	}
	exec(t, ep, "ALTER TABLE "+table+" ADD COLUMN extra String DEFAULT 'none'")
	s.schemaRead = time.Now().Add(-rereadAfter) // rereadAfter has passed
	process(51, `{"id":100,"extra":"c"}`)
	if got := queryStrings(t, reader(t, ep), "SELECT extra FROM "+table+" WHERE id = 100"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("stored %q for the added column, want [c]", got)
	}
	if len(s.unknown) != 0 {
		t.Errorf("unknown fields %v, want none: extra has a column", s.unknown)
	}
}

// TestRefusedValueRereads: a value the column's type refuses makes the sink read the columns again
// (once rereadAfter has passed) before it rejects the message: the type may have changed.
func TestRefusedValueRereads(t *testing.T) {
	ep := harness.ClickHouse(t)
	table := ep.Database + ".events"
	exec(t, ep, "CREATE TABLE "+table+" (id UInt64, v UInt8) ENGINE = MergeTree ORDER BY id")
	s := initialized(t, loadConfig(t, ep, "events"))
	exec(t, ep, "ALTER TABLE "+table+" MODIFY COLUMN v String")
	s.schemaRead = time.Now().Add(-rereadAfter)
	if err := s.ProcessBatch(context.Background(), records("/default/ev", 0, `{"id":1,"v":"text"}`)); err != nil {
		t.Fatalf("ProcessBatch = %v, want the row stored with the new type", err)
	}
	if got := queryStrings(t, reader(t, ep), "SELECT v FROM "+table); !slices.Equal(got, []string{"text"}) {
		t.Fatalf("stored %q, want [text]", got)
	}
}
