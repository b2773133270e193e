package sinkclickhouse_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

// TestWaitsForClickHouseAtStart starts the sink while nothing listens at its ClickHouse address (a
// compose stack starting the connector before its database): it keeps running, not ready, says
// why on /readyz and in its log, and once ClickHouse is there it inserts the rows that waited and
// those that follow.
func TestWaitsForClickHouseAtStart(t *testing.T) {
	s := setup(t, 20)
	px := harness.StartProxy(t, s.ch.NativeAddr)
	px.Down()
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-clickhouse", Env: s.env(px.Addr(), 10)})
	s.publish(t, 0, 30)

	// Several attempts (RETRY_BACKOFF_MS=50 doubling to 500) while the sink stays up and not ready.
	deadline := time.Now().Add(time.Minute)
	for strings.Count(c.Logs(), "external system not reachable yet") < 4 {
		if !c.Running() || time.Now().After(deadline) {
			t.Fatalf("the sink did not keep waiting for ClickHouse (running: %v)\n%s", c.Running(), c.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(c.Logs(), px.Addr()+": dial tcp "+px.Addr()+": connect: connection refused") {
		t.Errorf("the log does not say why the sink waits\n%s", c.Logs())
	}
	code, body := readyz(t, c)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz = %d %q, want 503 saying why", code, body)
	}
	if n, _ := s.rows(t); n != 0 {
		t.Fatalf("%d rows before ClickHouse was reachable", n)
	}

	px.Up(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs())
	}
	s.waitRows(t, c, 30)
	s.publish(t, 30, 60)
	s.waitRows(t, c, 60)
	s.checkSettled(t)
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, c.Logs())
	}
	if dups := s.checkAll(t, 60); dups != 0 {
		t.Errorf("%d duplicate rows, want none", dups)
	}
}

// TestStopsAtOnceOnWhatWaitingCannotFix: a wrong password or a missing table stops the sink at
// start (exit 1) with a message naming what is wrong and what to do.
func TestStopsAtOnceOnWhatWaitingCannotFix(t *testing.T) {
	s := setup(t, 20)
	for _, c := range []struct{ name, variable, value, want string }{
		{"wrong password", "CH_PASSWORD", "wrong-" + s.ch.Password, `ClickHouse refused user \"` + s.ch.Username + `\": check CH_USER and CH_PASSWORD`},
		{"missing table", "CH_TABLE", "nosuch", "table " + s.ch.Database + ".nosuch does not exist: create it (or set CH_CREATE_TABLE=true to create it from the records' schema), or correct CH_DATABASE and CH_TABLE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := s.env(s.ch.NativeAddr, 10)
			env[c.variable] = c.value
			sink := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-clickhouse", Env: env})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var exit *harness.ExitError
			if err := sink.Wait(ctx); !errors.As(err, &exit) || exit.Code != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, sink.Logs())
			}
			logs := sink.Logs()
			if !strings.Contains(logs, c.want) || strings.Contains(logs, "not reachable yet") {
				t.Errorf("the log does not say %q (or the sink waited)\n%s", c.want, logs)
			}
		})
	}
}

// readyz returns the status and body of the connector's /readyz.
func readyz(t *testing.T, c *harness.Connector) (int, string) {
	t.Helper()
	code, body, err := c.Readiness(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}
