package chsink

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// BenchmarkPipeline runs the bench case's workload in process (development broker, runtime, sink,
// the real ClickHouse), for CPU and heap profiles of the whole path:
//
//	go test -run '^$' -bench Pipeline -benchtime 1x -cpuprofile cpu.out -memprofile mem.out ./services/sink-clickhouse/chsink
//
// Each iteration inserts 50,000 rows of about 1 KiB in 10,000-row batches. With IT_DANUBE_URL the
// broker is that one (for example go run ./tools/devbroker --max-unacked-messages 20000).
func BenchmarkPipeline(b *testing.B) {
	const n, size = 50000, 10000
	ep := harness.ClickHouse(b)
	exec(b, ep, "CREATE TABLE "+ep.Database+".events (id UInt64, ts DateTime, kind String, payload String) ENGINE = MergeTree ORDER BY id")
	cfg := loadConfig(b, ep, "events")
	rd := reader(b, ep)
	payload := strings.Repeat("x", 940)
	kinds := [...]string{"click", "view", "purchase", "signup"}
	for it := 0; b.Loop(); it++ {
		b.StopTimer()
		exec(b, ep, "TRUNCATE TABLE "+ep.Database+".events")
		// IT_DANUBE_URL: a broker in its own process (started with --max-unacked-messages 20000),
		// so that the profile holds the sink's side only.
		var br runtimetest.Broker
		if os.Getenv(runtimetest.EnvDanubeURL) != "" {
			br = runtimetest.SuiteBroker(b)
		} else {
			dev, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: 2 * size})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = dev.Close() })
			br = dev
		}
		topic := fmt.Sprintf("/default/pipeline-%d-%d", time.Now().UnixNano(), it)
		sc := runtimetest.SinkConfig(br, "pipeline", topic)
		sc.BatchSize, sc.BatchTimeout = size, config.Millis(100*time.Millisecond)
		runtimetest.CreateTopic(b, br, topic)
		client := runtimetest.Client(b, br)
		pre, err := client.Subscribe(context.Background(), danube.ConsumerOptions{Topic: topic, Name: sc.ConnectorName, Subscription: sc.SubscriptionName, Type: danube.Exclusive})
		if err != nil {
			b.Fatal(err)
		}
		_ = pre.Close()
		prod, err := client.NewProducer(context.Background(), danube.ProducerOptions{Topic: topic, Name: "fill", Dispatch: danube.Reliable})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		var seq atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := seq.Add(1) - 1; i < n; i = seq.Add(1) - 1 {
					p := fmt.Appendf(nil, `{"id":%d,"ts":"2026-01-02T03:04:05Z","kind":%q,"payload":%q}`, i, kinds[i%4], payload)
					if _, err := prod.Send(context.Background(), danube.ProducerMessage{Payload: p}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		_ = prod.Close()
		b.StartTimer()
		r := runtimetest.StartSink(b, sc, newSink(b, cfg, sc))
		for {
			got := queryStrings(b, rd, "SELECT toString(count()) FROM "+ep.Database+".events")
			if got[0] == fmt.Sprint(n) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		if err := r.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
