package pgcdc_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
)

// writeOversized writes rows 1 and 3 around row 2, whose change event is over Danube's 4 MiB
// limit, each in its own transaction.
func writeOversized(p *pg) {
	p.exec("INSERT INTO big VALUES (1, 'small')")
	p.exec("INSERT INTO big VALUES (2, repeat('x', 5 << 20))")
	p.exec("INSERT INTO big VALUES (3, 'small')")
}

var lsnInOrigin = regexp.MustCompile(`table public\.big, key \{"id":2\}, INSERT at LSN ([0-9A-F]+/[0-9A-F]+) in transaction \d+`)

// TestOversizedRowWithoutDLQNamesTableKeyAndLSN: without DLQ_TOPIC a row whose event Danube cannot
// take stops the connector with an error naming the table, the key and the LSN of the change, and
// nothing from it on is confirmed to PostgreSQL.
func TestOversizedRowWithoutDLQNamesTableKeyAndLSN(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE big (id int PRIMARY KEY, body text)")
	r, col, _ := start(t, p, func(c *pgcdc.Config) { c.SnapshotMode = pgcdc.SnapshotNever }, "big")
	writeOversized(p)
	err := r.Wait()
	m := lsnInOrigin.FindStringSubmatch(errString(err))
	if m == nil || !errors.Is(err, runtime.ErrFatal) || !strings.Contains(err.Error(), "over the broker's 4194304-byte limit") {
		t.Fatalf("got %v, want a fatal error naming table public.big, key {\"id\":2} and the LSN", err)
	}
	if got := col.Messages(); len(got) < 1 || got[0].Key != "1" {
		t.Fatalf("row 1 did not arrive before the stop: %d messages", len(got))
	}
	var past bool
	p.queryRow(&past, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", m[1], p.Database)
	if past {
		t.Fatalf("the slot confirmed the refused row's LSN %s", m[1])
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestOversizedRowGoesToDLQ: with DLQ_TOPIC the row's descriptor (origin with table, key and LSN;
// size; reason) goes there, the rows after it arrive on the table's topic, and the slot's confirmed
// position moves past it.
func TestOversizedRowGoesToDLQ(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE big (id int PRIMARY KEY, body text)")
	const dlqTopic = "/default/cdc-dlq"
	r, col, b := start(t, p, func(c *pgcdc.Config) {
		c.SnapshotMode = pgcdc.SnapshotNever
		c.DLQTopic = dlqTopic
	}, "big")
	dlq := runtimetest.Collect(t, b, dlqTopic, "dlq-reader")
	writeOversized(p)

	got := events(t, col.WaitFor(t, "rows 1 and 3", atLeast(2)))
	if got[0].After["id"] != json.Number("1") || got[1].After["id"] != json.Number("3") {
		t.Fatalf("table topic got %+v", got)
	}
	ms := dlq.WaitFor(t, "the descriptor of row 2", atLeast(1))
	var d struct {
		Reason, Topic, Key, Origin string
		Size                       int
	}
	if err := json.Unmarshal(ms[0].Payload, &d); err != nil {
		t.Fatalf("descriptor %s: %v", ms[0].Payload, err)
	}
	m := lsnInOrigin.FindStringSubmatch(d.Origin)
	if m == nil || d.Key != "2" || d.Topic != "/default/cdc" || d.Size <= danube.MaxMessageSize || !strings.Contains(d.Reason, "limit") {
		t.Fatalf("descriptor %s", ms[0].Payload)
	}
	// Row 3's commit is confirmed: the slot no longer holds the refused row back.
	p.waitUntil("the slot confirms past the refused row", "SELECT confirmed_flush_lsn > $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
		got[1].Source.LSN, p.Database)
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestPublicationErrorNamesTheMissingPrivilege: creating the publication fails for a user without
// CREATE on the database, or one that does not own the tables; the error says which, with the fix.
func TestPublicationErrorNamesTheMissingPrivilege(t *testing.T) {
	p := newPG(t)
	p.exec("CREATE TABLE mine (id int PRIMARY KEY)")
	p.exec("CREATE TABLE theirs (id int PRIMARY KEY)")
	role := p.Database + "_pub"
	p.exec("CREATE ROLE " + role + " LOGIN REPLICATION")
	t.Cleanup(func() {
		p.exec("DROP OWNED BY " + role) // the table it owns, and its privileges on the database
		p.exec("DROP ROLE " + role)
	})
	p.exec("ALTER TABLE mine OWNER TO " + role)
	b := runtimetest.StartBroker(t)
	run := func(tables ...string) error {
		cfg := p.config(runtimetest.SourceConfig(b, "cdc", "/default/cdc"), tables...)
		cfg.User, cfg.SnapshotMode = role, pgcdc.SnapshotNever
		c, err := pgcdc.New(cfg, runtime.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RunSource(context.Background(), &cfg.SourceConfig, c)
	}
	for _, c := range []struct {
		name   string
		setup  string
		tables []string
		want   string
	}{
		{"no CREATE on the database", "", []string{"mine"},
			`user "` + role + `" lacks CREATE on database "` + p.Database + `", which creating a publication needs: run GRANT CREATE ON DATABASE "` +
				p.Database + `" TO "` + role + `"`},
		{"not the tables' owner", "GRANT CREATE ON DATABASE " + p.Database + " TO " + role, []string{"mine", "theirs"},
			`user "` + role + `" does not own public.theirs (owner postgres), and a publication FOR TABLE needs the tables' owner`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != "" {
				p.exec(c.setup)
			}
			err := run(c.tables...)
			if err == nil || !errors.Is(err, runtime.ErrFatal) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), `have an administrator run CREATE PUBLICATION "pub_`+p.Database+`" FOR TABLE`) {
				t.Fatalf("got %v\nwant a fatal error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "public.mine (owner") || strings.Contains(err.Error(), "must own the tables") {
				t.Fatalf("the table the user owns is named as a cause: %v", err)
			}
		})
	}
}
