package sinkclickhouse_test

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

// TestKillNineMidStream publishes rows while the sink inserts them, kills the sink with SIGKILL
// twice mid-stream (a batch being inserted or its acks on the wire), restarts it each time, and
// checks that every row is in the table and the subscription settled with nothing blocked.
//
// Duplicates: the rows of a batch whose INSERT completed but whose acks had not all reached the
// broker at the kill are redelivered and inserted again: at most the subscription's window (the
// most messages unacked at a kill) per kill. A token does not remove them all: a batch redelivered
// whole is the same offset-aligned batch with the same token and is dropped, but the remainder of
// a batch whose acks were partly through (acks are per message) forms a smaller batch with another
// token. So the bound is the same on every server; the test logs the count, and
// chsink.TestRepeatedBatchWithToken checks the token itself.
func TestKillNineMidStream(t *testing.T) {
	const n, batch, kills = 4000, 200, 2
	const window = 2 * batch
	s := setup(t, window)
	env := s.env(s.ch.NativeAddr, batch)
	// Only full batches (the producer fills one well within the timeout, and n is a multiple of
	// batch), also while redeliveries trickle in after a kill: every batch is offset-aligned.
	env["BATCH_TIMEOUT_MS"] = "3000"
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-clickhouse", Env: env})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		s.publish(t, 0, n)
	}()

	for k := 1; k <= kills; k++ {
		s.waitRows(t, c, k*n/(kills+1)) // mid-stream
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
		var exit *harness.ExitError
		if err := c.Wait(context.Background()); !errors.As(err, &exit) || exit.Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: the sink did not die of SIGKILL: %v\n%s", k, err, c.Logs())
		}
		if err := c.Restart(context.Background()); err != nil {
			t.Fatalf("restart %d: %v", k, err)
		}
	}
	<-published
	s.waitRows(t, c, n)
	s.checkSettled(t)
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, c.Logs())
	}

	dups := s.checkAll(t, n)
	t.Logf("%d rows, %d duplicates after %d kills (at most %d allowed: the window per kill; deduplicating server: %v)", n, dups, kills, kills*window, s.dedup)
	if dups > kills*window {
		t.Errorf("%d duplicate rows, want at most %d (the window per kill)", dups, kills*window)
	}
}

// TestClickHouseUnavailableThenBack is the acceptance run with the scaled ack timeout:
// ClickHouse is unreachable for twenty ack timeouts (the real broker's 30 s times twenty) while
// rows keep coming; the sink reports not ready and holds its batch; when ClickHouse is back every
// row is inserted, the subscription is not blocked (no delivery attempt was spent on the outage:
// five would have blocked it) and rows keep flowing.
func TestClickHouseUnavailableThenBack(t *testing.T) {
	const batch = 50
	s := setup(t, 2*batch)
	px := harness.StartProxy(t, s.ch.NativeAddr)
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "sink-clickhouse", Env: s.env(px.Addr(), batch)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	s.publish(t, 0, 100)
	s.waitRows(t, c, 100)

	px.Down()
	s.publish(t, 100, 300)
	waitNotReady(t, c)
	time.Sleep(20 * scaledAckTimeout) // the outage
	if total, _ := s.rows(t); total > 100+batch {
		t.Fatalf("%d rows during the outage, want the 100 before it (and at most one batch cut mid-INSERT)", total)
	}
	if st, _ := s.broker.SubscriptionStats(s.topic, subscription); st.Blocked != 0 {
		t.Fatalf("subscription blocked during the outage: %+v", st)
	}
	px.Up(t)
	s.waitRows(t, c, 300)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	s.publish(t, 300, 400) // still flowing
	s.waitRows(t, c, 400)
	s.checkSettled(t)
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, c.Logs())
	}

	// The connection cut at the outage's start may end an INSERT that the server committed before
	// its answer got through: that batch is inserted again (at most one batch, the one in flight),
	// unless the server deduplicates it by its token.
	dups := s.checkAll(t, 400)
	bound := batch
	if s.dedup {
		bound = 0
	}
	t.Logf("400 rows, %d duplicates after the outage (at most %d allowed)", dups, bound)
	if dups > bound {
		t.Errorf("%d duplicate rows, want at most %d", dups, bound)
	}
}

// waitNotReady waits until the sink's /readyz reports the lost connection.
func waitNotReady(t *testing.T, c *harness.Connector) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(c.ReadyzURL())
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still ready a minute into the outage\n%s", c.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
