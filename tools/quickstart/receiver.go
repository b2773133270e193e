package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

// startSinkHTTP runs the sink-http connector, configured from environment variables exactly as
// the service is (vars after the pipeline's common ones), and waits until it subscribed.
func (p *pipeline) startSinkHTTP(ctx context.Context, vars []string, opts ...sinkhttp.Option) error {
	var cfg sinkhttp.Config
	if err := config.Load(&cfg, p.env(vars...)); err != nil {
		return err
	}
	conn, err := sinkhttp.New(&cfg, append([]sinkhttp.Option{sinkhttp.WithLogger(p.logger)}, opts...)...)
	if err != nil {
		return err
	}
	p.start("sink-http", func(ctx context.Context) error {
		return runtime.RunSink(ctx, &cfg.SinkConfig, conn, p.options()...)
	})
	return p.waitSubscribed(ctx, cfg.Topics[0], cfg.SubscriptionName)
}

// startDelivery ends a scenario the same way each time: the local receiver, and sink-http draining
// topic into it at path, signing its requests and retrying them until they are answered 2xx.
func (p *pipeline) startDelivery(ctx context.Context, topic, name, path string) (net.Listener, error) {
	secret := newSecret("whsec_")
	recv, err := startReceiver(secret, 0, p.ui, p.deliver)
	if err != nil {
		return nil, err
	}
	if err := p.startSinkHTTP(ctx, []string{
		"DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=quickstart", "CONNECTOR_NAME=" + name,
		"TARGET_URL=http://" + recv.Addr().String() + path, "WEBHOOK_SECRET=" + secret, "MAX_RETRIES=-1",
		"BATCH_SIZE=10", "BATCH_TIMEOUT_MS=50", "MAX_IN_FLIGHT=4",
	}); err != nil {
		_ = recv.Close()
		return nil, err
	}
	return recv, nil
}

// newSecret returns prefix and 24 random bytes in base64 (no ',' or ':', which separate the pairs
// of MQTT_SERVER_USERS).
func newSecret(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.StdEncoding.EncodeToString(b)
}

// startReceiver serves the local webhook endpoint: any HTTP endpoint would do; this one checks the
// signature, prints every request and calls delivered once per Idempotency-Key. With flaky > 0 it
// answers 503 to the first attempt of every event whose "id" is a multiple of flaky.
func startReceiver(secret string, flaky int, ui *status, delivered func()) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	seen := map[string]bool{}
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
			delivered()
		}
		ui.printf("  200 ✓ %s  key=%s offset=%s%s\n", body, r.Header.Get("X-Danube-Key"), r.Header.Get("X-Danube-Offset"), dup)
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
