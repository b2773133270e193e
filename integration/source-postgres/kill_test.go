// Package sourcepostgres runs the built source-postgres binary against real PostgreSQL and the
// development broker, and kills it with SIGKILL mid-stream and mid-snapshot: after a restart every
// row is in Danube.
package sourcepostgres

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func TestMain(m *testing.M) {
	// A bound on waits for outcomes, not a timing assertion: the shared CI machine can be slow,
	// and the race detector slows the connector several times over.
	runtimetest.Timeout = 2 * time.Minute
	goleak.VerifyTestMain(m)
}

// build compiles the service once per test.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "source-postgres")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/danube-messaging/danube-connect-go/services/source-postgres").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func exec1(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// start runs the binary for the test database; SIGKILL at cleanup if still running.
func start(t *testing.T, bin string, pg harness.PostgresEndpoint, brokerURL, topic string) *exec.Cmd {
	t.Helper()
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"DANUBE_SERVICE_URL=" + brokerURL, "DANUBE_TOPIC=" + topic, "CONNECTOR_NAME=cdc",
		"PG_HOST=" + u.Hostname(), "PG_PORT=" + u.Port(), "PG_DATABASE=" + pg.Database, "PG_USER=" + u.User.Username(),
		"PG_PASSWORD=" + pw, "PG_SSLMODE=disable", "SLOT_NAME=" + pg.Database, "PUBLICATION_NAME=pub",
		"TABLE_WHITELIST=rows", "BATCH_SIZE=200", "METRICS_ADDR=", "LOG_LEVEL=warn", "RETRY_BACKOFF_MS=20",
		"RETRY_MAX_BACKOFF_MS=200", "POLL_INTERVAL_MS=20", "HEARTBEAT_INTERVAL_MS=200",
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// ids returns the distinct row ids received.
func ids(ms []*danube.Message) map[int]bool {
	out := map[int]bool{}
	for _, m := range ms {
		var ev struct{ After struct{ ID int } }
		if json.Unmarshal(m.Payload, &ev) == nil {
			out[ev.After.ID] = true
		}
	}
	return out
}

func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// TestKillMidSnapshotAndMidStream: SIGKILL while the snapshot runs, restart, SIGKILL while rows
// stream, restart: every row arrives.
func TestKillMidSnapshotAndMidStream(t *testing.T) {
	pg := harness.Postgres(t)
	bin := build(t)
	const pre, streamed = 8000, 2000
	exec1(t, pg.DSN, "CREATE TABLE rows (id int PRIMARY KEY, v text)")
	exec1(t, pg.DSN, "INSERT INTO rows SELECT g, repeat('x', 100) FROM generate_series(1, $1::int) g", pre)

	b := runtimetest.StartBroker(t)
	const topic = "/default/cdc"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")

	cmd := start(t, bin, pg, b.URL(), topic)
	col.WaitFor(t, "part of the snapshot", func(ms []*danube.Message) bool { return len(ms) >= 1000 })
	kill(t, cmd)
	if n := len(ids(col.Messages())); n >= pre {
		t.Fatalf("the snapshot finished (%d rows) before the kill; the test needs it mid-way", n)
	}

	cmd = start(t, bin, pg, b.URL(), topic)
	col.WaitFor(t, "the whole snapshot", func(ms []*danube.Message) bool { return len(ids(ms)) >= pre })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := pre + 1; i <= pre+streamed; i += 10 {
			exec1(t, pg.DSN, "INSERT INTO rows SELECT g, 'new' FROM generate_series($1::int, $1::int + 9) g", i)
		}
	}()
	col.WaitFor(t, "part of the stream", func(ms []*danube.Message) bool { return len(ids(ms)) >= pre+streamed/4 })
	kill(t, cmd)
	<-done

	cmd = start(t, bin, pg, b.URL(), topic)
	got := col.WaitFor(t, "every row", func(ms []*danube.Message) bool { return len(ids(ms)) == pre+streamed })
	stop(t, cmd)
	seen := ids(got)
	for i := 1; i <= pre+streamed; i++ {
		if !seen[i] {
			t.Fatalf("row %s missing", strconv.Itoa(i))
		}
	}
}
