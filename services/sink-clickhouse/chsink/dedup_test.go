package chsink

import (
	"context"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// TestTokenNamesTheBatch: the token depends on exactly the partition, the first and last offset and
// the row count, so a batch repeated after a crash (the runtime forms the same offset-aligned
// batch) carries the same token and any other batch a different one.
func TestTokenNamesTheBatch(t *testing.T) {
	base := token("/default/events-part-0", 1000, 1999, 1000)
	if base != "/default/events-part-0:1000-1999:1000" {
		t.Fatalf("token = %q", base)
	}
	if again := token("/default/events-part-0", 1000, 1999, 1000); again != base {
		t.Fatalf("the same batch gave %q, then %q", base, again)
	}
	for _, other := range []string{
		token("/default/events-part-1", 1000, 1999, 1000), // another partition
		token("/default/events-part-0", 1001, 1999, 999),  // a batch re-formed after a redelivery
		token("/default/events-part-0", 1000, 1998, 999),
		token("/default/events-part-0", 1000, 1999, 999), // a row dead-lettered
	} {
		if other == base {
			t.Fatalf("%q names two different batches", other)
		}
	}
}

// TestDeduplicatingEngines reads the table engines that drop a repeated block.
func TestDeduplicatingEngines(t *testing.T) {
	for _, c := range []struct {
		engine, full string
		want         bool
	}{
		{"ReplicatedMergeTree", "ReplicatedMergeTree('/clickhouse/tables/{shard}/events', '{replica}') ORDER BY id", true},
		{"ReplicatedReplacingMergeTree", "ReplicatedReplacingMergeTree ORDER BY id", true},
		{"MergeTree", "MergeTree ORDER BY id SETTINGS index_granularity = 8192", false},
		{"MergeTree", "MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192", true},
		{"ReplacingMergeTree", "ReplacingMergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 0", false},
		{"Memory", "Memory", false},
		{"Log", "Log SETTINGS non_replicated_deduplication_window = 5", false},
	} {
		if got := deduplicates(c.engine, c.full); got != c.want {
			t.Errorf("deduplicates(%q, %q) = %v, want %v", c.engine, c.full, got, c.want)
		}
	}
}

// TestGuaranteeSaysWhy: the start-up log states the guarantee in force for each combination of
// server and table.
func TestGuaranteeSaysWhy(t *testing.T) {
	for _, c := range []struct {
		srv       server
		guarantee string
		why       string
	}{
		{server{token: true, dedup: true, engine: "ReplicatedMergeTree"}, "effectively-once", "insert_deduplication_token"},
		{server{token: true, engine: "MergeTree"}, "at-least-once", "non_replicated_deduplication_window"},
		{server{dedup: true, engine: "ReplicatedMergeTree"}, "at-least-once", "by their hash"},
		{server{engine: "MergeTree"}, "at-least-once", "inserted again"},
	} {
		g, why := c.srv.guarantee()
		if g != c.guarantee || !strings.Contains(why, c.why) {
			t.Errorf("%+v: %q (%s), want %q mentioning %q", c.srv, g, why, c.guarantee, c.why)
		}
	}
}

// TestRepeatedBatchWithToken inserts the same batch twice, as after a crash before the ack. On a
// server with insert_deduplication_token and a table with non_replicated_deduplication_window the
// second INSERT is dropped (effectively once). On an older server (18.16 here) the sink, made to
// believe the server has the setting, must send it on the INSERT: the server refuses it by name,
// which shows the token goes on the wire; the server's own behaviour is then CI's to check.
func TestRepeatedBatchWithToken(t *testing.T) {
	ep := harness.ClickHouse(t)
	rd := reader(t, ep)
	var has uint64
	if err := rd.QueryRow(context.Background(), "SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'").Scan(&has); err != nil {
		t.Fatal(err)
	}
	ddl := "CREATE TABLE " + ep.Database + ".events (id UInt64, name String) ENGINE = MergeTree ORDER BY id"
	if has > 0 {
		ddl += " SETTINGS non_replicated_deduplication_window = 100"
	}
	exec(t, ep, ddl)
	s := initialized(t, loadConfig(t, ep, "events"))
	batch := func(from, to uint64) []*runtime.SinkRecord {
		var recs []*runtime.SinkRecord
		for i := from; i < to; i++ {
			recs = append(recs, runtime.NewSinkRecord(&danube.Message{Topic: "/default/events", Offset: i, Payload: jsonRow(int(i))}))
		}
		return recs
	}
	ctx := context.Background()

	if has == 0 {
		if s.srv.token {
			t.Fatal("the sink believes this server has insert_deduplication_token")
		}
		s.srv.token = true
		err := s.ProcessBatch(ctx, batch(0, 4))
		if err == nil || !strings.Contains(err.Error(), "insert_deduplication_token") {
			t.Fatalf("INSERT with a token on a server without the setting: %v, want the server to refuse the setting", err)
		}
		if got := queryStrings(t, rd, "SELECT toString(count()) FROM "+ep.Database+".events"); got[0] != "0" {
			t.Fatalf("%s rows inserted by a refused INSERT", got[0])
		}
		return
	}

	if g, _ := s.srv.guarantee(); g != "effectively-once" {
		t.Fatalf("guarantee %q on a deduplicating MergeTree of a server with tokens", g)
	}
	for range 2 { // the batch, then the same batch again
		if err := s.ProcessBatch(ctx, batch(0, 4)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ProcessBatch(ctx, batch(4, 8)); err != nil { // the next batch goes in
		t.Fatal(err)
	}
	got := queryStrings(t, rd, "SELECT toString(id) FROM "+ep.Database+".events ORDER BY id")
	if strings.Join(got, ",") != "0,1,2,3,4,5,6,7" {
		t.Fatalf("rows %v, want each of 0..7 once", got)
	}
}
