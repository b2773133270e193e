// Command quickstart shows the whole HTTP sink path on one machine, with no external services:
//
//	producer ──► development broker ──► sink-http connector ──► local webhook receiver
//
// It starts all four in one process, prints every request the receiver gets (signature checked),
// keeps a live count of produced, delivered and retried messages, and stops cleanly on Ctrl-C.
// The receiver answers 503 to some first attempts so the retries are visible.
//
//	go run ./tools/quickstart              # until Ctrl-C
//	go run ./tools/quickstart -events 20   # stop once 20 events are delivered
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second Ctrl-C kills at once
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

const topic = "/default/notifications"

// counters are the live numbers shown on the status line.
type counters struct {
	produced, delivered, retried atomic.Int64
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(out)
	events := fs.Int("events", 0, "stop after this many events are delivered (0 = run until Ctrl-C)")
	rate := fs.Float64("rate", 5, "events produced per second")
	flaky := fs.Int("flaky", 7, "the receiver answers 503 to the first attempt of every n-th event (0 = never)")
	verbose := fs.Bool("v", false, "show the connector's own log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate <= 0 {
		return fmt.Errorf("-rate %g: must be positive", *rate)
	}
	var c counters
	ui := newStatus(out, &c)

	// 1. The development broker, in memory on a random port.
	broker, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		return fmt.Errorf("start the development broker: %w", err)
	}
	defer broker.Close()

	// 2. The receiver: any HTTP endpoint would do; this one checks the signature and prints.
	secret := newSecret()
	allDelivered := make(chan struct{})
	recv, err := startReceiver(secret, *flaky, *events, &c, ui, allDelivered)
	if err != nil {
		return err
	}
	defer recv.Close()

	// 3. The connector, configured exactly as the sink-http service is: from environment variables.
	env := []string{
		"DANUBE_SERVICE_URL=" + broker.URL(), "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=quickstart",
		"CONNECTOR_NAME=quickstart-webhook", "TARGET_URL=http://" + recv.Addr().String() + "/hook",
		"WEBHOOK_SECRET=" + secret, "RETRY_BACKOFF_MS=500", "MAX_RETRIES=-1", "BATCH_SIZE=10",
		"BATCH_TIMEOUT_MS=50", "MAX_IN_FLIGHT=4", "METRICS_ADDR=", "SHUTDOWN_TIMEOUT_MS=5000",
	}
	var cfg sinkhttp.Config
	if err := config.Load(&cfg, env); err != nil {
		return err
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(ui.logWriter(), &slog.HandlerOptions{Level: level}))
	conn, err := sinkhttp.New(&cfg, sinkhttp.WithLogger(logger), sinkhttp.WithHooks(webhook.Hooks{
		OnAttempt: func(ev webhook.AttemptEvent) {
			if ev.Err != nil && webhook.IsRetryable(ev.Err) {
				c.retried.Add(int64(ev.Messages))
			}
		},
	}))
	if err != nil {
		return err
	}
	var dconn runtime.Connection // the sink's readiness follows this shared client's events
	client, err := danube.NewClient(broker.URL(), danube.WithHooks(dconn.Hooks(danube.Hooks{})))
	if err != nil {
		return err
	}
	defer client.Close()
	// The topic and the subscription exist before the first event, so none is missed.
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "quickstart-producer", Dispatch: danube.Reliable})
	if err != nil {
		return fmt.Errorf("create producer: %w", err)
	}
	defer prod.Close()
	pre, err := client.Subscribe(ctx, danube.ConsumerOptions{Topic: topic, Name: cfg.ConnectorName, Subscription: cfg.SubscriptionName})
	if err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	_ = pre.Close()

	tel, err := telemetry.NewServer()
	if err != nil {
		return err
	}
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSink()
	sinkDone := make(chan error, 1)
	go func() {
		sinkDone <- runtime.RunSink(sinkCtx, &cfg.SinkConfig, conn, runtime.WithClient(client, &dconn), runtime.WithLogger(logger), runtime.WithTelemetry(tel))
	}()

	fmt.Fprintf(out, "Danube quickstart: broker %s → sink-http → receiver http://%s/hook\n", broker.URL(), recv.Addr())
	fmt.Fprintf(out, "Publishing to %s at %g events/s; Ctrl-C to stop.\n\n", topic, *rate)
	ui.start()

	// 4. The producer: sample events, keyed by customer so each customer's events stay in order.
	prodCtx, stopProd := context.WithCancel(ctx)
	defer stopProd()
	var wg sync.WaitGroup
	wg.Go(func() { produce(prodCtx, prod, *rate, *events, &c) })

	select {
	case <-ctx.Done():
	case <-allDelivered:
	case err := <-sinkDone:
		stopProd()
		wg.Wait()
		ui.stop()
		return fmt.Errorf("connector stopped: %w", err)
	}
	stopProd()
	wg.Wait()
	// Let the sink catch up with what was produced (bounded), then stop it gracefully: the runtime
	// finishes the batch in hand and acks it.
	drain := time.NewTimer(3 * time.Second)
	defer drain.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for caughtUp := false; !caughtUp; {
		select {
		case <-drain.C:
			caughtUp = true
		case <-tick.C:
			caughtUp = c.delivered.Load() >= c.produced.Load()
		}
	}
	stopSink()
	err = <-sinkDone
	ui.stop()
	fmt.Fprintf(out, "\nStopped: produced %d, delivered %d, retried %d.\n", c.produced.Load(), c.delivered.Load(), c.retried.Load())
	return err
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

var kinds = []string{"order.created", "order.paid", "order.shipped"}

func produce(ctx context.Context, p *danube.Producer, rate float64, limit int, c *counters) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := 0; limit == 0 || i < limit; i++ {
		customer := fmt.Sprintf("customer-%d", i%5)
		body, _ := json.Marshal(map[string]any{"id": i + 1, "type": kinds[(i/5)%len(kinds)], "customer": customer, "amount": 10 + i%90})
		if _, err := p.Send(ctx, danube.ProducerMessage{Payload: body, Key: customer,
			Attributes: map[string]string{"content-type": "application/json", "source": "quickstart"}}); err != nil {
			return // ctx ended (Ctrl-C)
		}
		c.produced.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// startReceiver serves the local webhook endpoint.
func startReceiver(secret string, flaky, limit int, c *counters, ui *status, all chan<- struct{}) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var once sync.Once
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("Idempotency-Key")
		var ev struct {
			ID int `json:"id"`
		}
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		if flaky > 0 && ev.ID%flaky == 0 && !seen["503:"+id] {
			seen["503:"+id] = true
			ui.printf("  503 ✗ %s  (simulated outage; the sink will retry)\n", body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		dup := ""
		if seen[id] {
			dup = "  (duplicate, same Idempotency-Key: drop it)"
		} else {
			seen[id] = true
			c.delivered.Add(1)
		}
		ui.printf("  200 ✓ %s  key=%s offset=%s%s\n", body, r.Header.Get("X-Danube-Key"), r.Header.Get("X-Danube-Offset"), dup)
		if limit > 0 && c.delivered.Load() >= int64(limit) {
			once.Do(func() { close(all) })
		}
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			ui.printf("receiver: %v\n", err)
		}
	}()
	return closerListener{ln, srv}, nil
}

// closerListener closes the receiver's server with its listener.
type closerListener struct {
	net.Listener
	srv *http.Server
}

func (l closerListener) Close() error { return l.srv.Close() }
