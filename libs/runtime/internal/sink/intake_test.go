package sink

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/internal/host"
)

// testIntake is intake alone on a development broker: it subscribes to topic and forwards to out.
func testIntake(t *testing.T, topic string) (*intake, *danube.Client, context.CancelFunc) {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{DataDir: t.TempDir(), AckTimeout: 2 * time.Second,
		RedeliveryBaseDelay: 10 * time.Millisecond, RedeliveryMaxDelay: 100 * time.Millisecond, RetryTick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := danube.NewClient(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	h := &Host{Host: host.Host{Client: c, Log: slog.New(slog.DiscardHandler),
		Retry: func(ctx context.Context, _ string, _ func(error) bool, op func(context.Context) error) error {
			return op(ctx)
		}},
		Configure: func(context.Context, []string) error { return nil },
	}
	sub := &subscriber{cfg: &Config{Name: "intake", Topics: []string{topic}, Subscription: "s", SubscriptionType: danube.Exclusive}, host: h}
	ctx, cancel := context.WithCancel(context.Background())
	replay := newReplayFilter(10)
	in := &intake{ctx: ctx, out: make(chan delivery, 10), open: sub.open, name: "intake", replay: replay,
		settle: newSettler(context.Background(), h, replay)}
	if err := in.start(ctx); err != nil {
		t.Fatal(err)
	}
	return in, c, cancel
}

func publish(t *testing.T, c *danube.Client, topic string, payloads ...string) {
	t.Helper()
	p, err := c.NewProducer(t.Context(), danube.ProducerOptions{Topic: topic, Name: "p", Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, s := range payloads {
		if _, err := p.Send(t.Context(), danube.ProducerMessage{Payload: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
}

func next(t *testing.T, out <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-out:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no message from intake")
		panic("unreachable")
	}
}

// Intake forwards what Danube delivers; closed, it takes nothing; reopened, it gets what was sent
// meanwhile, and the redelivery of a record written while it was closed is acked, not forwarded.
func TestIntakeClosesReopensAndAcksReplays(t *testing.T) {
	const topic = "/default/intake"
	in, c, cancel := testIntake(t, topic)
	publish(t, c, topic, "a", "b")
	a, b := next(t, in.out), next(t, in.out)
	if string(a.msg.Payload) != "a" || string(b.msg.Payload) != "b" {
		t.Fatalf("forwarded %q, %q; want a, b", a.msg.Payload, b.msg.Payload)
	}
	if err := a.cons.Ack(t.Context(), a.msg); err != nil {
		t.Fatal(err)
	}
	in.close()
	in.settle.ack(b) // written while closed: its consumer cannot ack it
	publish(t, c, topic, "c")
	select {
	case d := <-in.out:
		t.Fatalf("closed intake forwarded %q", d.msg.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	reopened := make(chan error, 1)
	in.reopen(func(err error) { reopened <- err })
	if err := <-reopened; err != nil {
		t.Fatal(err)
	}
	if d := next(t, in.out); string(d.msg.Payload) != "c" {
		t.Fatalf("after the reopen intake forwarded %q, want c (b was written: its redelivery is acked)", d.msg.Payload)
	}
	select {
	case d := <-in.out:
		t.Fatalf("forwarded %q again", d.msg.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	in.stop()
	in.settle.close()
}
