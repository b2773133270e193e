package sinkhttp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
)

// BenchmarkInProcessSink runs the pipeline of the bench tool's sink-http case (go run ./tools/bench
// sink-http; here 20,000 messages of 1 KiB, MAX_IN_FLIGHT=8, BATCH_SIZE = the broker's
// max_unacked_messages) with broker, sink and receiver in one process, so that a profile covers all
// of them:
//
//	go test -run '^$' -bench InProcessSink -benchtime 1x -cpuprofile cpu.out ./integration/sinkhttp/
//
// It also runs the runtime without any option (no telemetry server, no logger).
func BenchmarkInProcessSink(b *testing.B) {
	for _, c := range []struct{ window, batch int }{{10, 10}, {100, 100}} {
		window, batchSize := c.window, c.batch
		b.Run(fmt.Sprintf("window=%d/batch=%d", window, batchSize), func(b *testing.B) {
			const n = 20000
			topic := fmt.Sprintf("/default/inproc-%d-%d", window, batchSize)
			broker, _, prod := setup(b, devbroker.Config{MaxUnackedMessages: window}, topic)
			payload := bytes.Repeat([]byte("x"), 1024)
			var got atomic.Int64
			done := make(chan struct{})
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if got.Add(1) == n {
					close(done)
				}
			}))
			defer rc.Close()
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := w; i < n; i += 8 {
						if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: payload, Key: fmt.Sprintf("k%d", i%64)}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			cfg := &sinkhttp.Config{
				SinkConfig: runtime.SinkConfig{
					Common: runtime.Common{DanubeServiceURL: broker.URL(), ConnectorName: "webhook-1", RetryPolicy: retry.Exponential,
						MaxRetries: -1, RetryBackoff: config.Millis(10 * time.Millisecond), RetryMaxBackoff: config.Millis(100 * time.Millisecond),
						ShutdownTimeout: config.Millis(5 * time.Second)},
					Topics: []string{topic}, SubscriptionName: "webhook-sink", SubscriptionType: danube.Exclusive,
					BatchSize: batchSize, MaxInFlight: 8, BatchTimeout: config.Millis(5 * time.Millisecond), NackDelay: config.Millis(10 * time.Millisecond),
				},
				TargetURL: config.URL(rc.URL), HTTPMethod: "POST", Timeout: config.Millis(5 * time.Second), ContentType: "application/octet-stream",
				AttributePrefix: "X-Danube-Attr-", IdempotencyHeader: "Idempotency-Key",
				BreakerFailures: 5, BreakerOpen: config.Millis(time.Second), MaxRetryAfter: config.Millis(time.Minute),
			}
			conn, err := sinkhttp.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { errc <- runtime.RunSink(ctx, &cfg.SinkConfig, conn) }()
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("delivered %d of %d", got.Load(), n)
			}
			b.ReportMetric(n/time.Since(start).Seconds(), "msgs/s")
			b.StopTimer()
			cancel()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}
