package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func init() { register(&sinkClickHouseCase{}) }

// chBatchSizes are the settings compared: the design's 10,000-row batches, and 1,000.
var chBatchSizes = []int{10000, 1000}

const (
	chSinkVariant  = "sink-clickhouse"
	chPlainVariant = "plain clickhouse-go"
	chTable        = "bench_events"
)

// sinkClickHouseCase runs the sink-clickhouse binary from the in-process development broker into a
// real ClickHouse table, beside an in-process clickhouse-go program inserting the same rows in
// batches of the same size.
type sinkClickHouseCase struct {
	native, http string // -sink-clickhouse-native/-http; default IT_CLICKHOUSE_NATIVE_ADDR/HTTP_ADDR
}

func (c *sinkClickHouseCase) Name() string { return "sink-clickhouse" }

func (c *sinkClickHouseCase) About() string {
	return "JSON rows of about 1 KiB (`id` UInt64, `ts` DateTime, `kind` LowCardinality-free String, `payload` " +
		"String), already in a reliable topic of the in-process development broker (window 20,000), " +
		"inserted into a MergeTree table of the ClickHouse at `IT_CLICKHOUSE_NATIVE_ADDR` by the " +
		"`sink-clickhouse` binary (a separate process configured by its environment only, BATCH_SIZE " +
		"as the setting says). The baseline is a plain clickhouse-go program in the same run, inserting " +
		"the same rows as typed values in batches of the same size over the native protocol: the least " +
		"work any ClickHouse sink does (it parses no JSON and acks nothing). The sink's rate runs from " +
		"its start to the last row counted in the table; CPU is user+system of the process, peak RSS " +
		"its VmHWM. Goals: at least 0.7× the baseline's rate, RSS under 64 MiB with 10,000-row batches."
}

func (c *sinkClickHouseCase) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.native, "sink-clickhouse-native", "", "ClickHouse native host:port (default: $IT_CLICKHOUSE_NATIVE_ADDR)")
	fs.StringVar(&c.http, "sink-clickhouse-http", "", "ClickHouse HTTP host:port (default: $IT_CLICKHOUSE_HTTP_ADDR)")
}

func (c *sinkClickHouseCase) Run(ctx context.Context, env *Env) (Result, error) {
	ch := chServer{native: c.native, http: c.http}
	if ch.native == "" {
		ch.native = os.Getenv("IT_CLICKHOUSE_NATIVE_ADDR")
	}
	if ch.http == "" {
		ch.http = os.Getenv("IT_CLICKHOUSE_HTTP_ADDR")
	}
	if ch.native == "" || ch.http == "" {
		return Result{}, unavailable("sink-clickhouse: no ClickHouse: set IT_CLICKHOUSE_NATIVE_ADDR and IT_CLICKHOUSE_HTTP_ADDR (source /tmp/it-shared.env, or tools/itservers) or the -sink-clickhouse-* flags")
	}
	ch.user, ch.password = os.Getenv("IT_CLICKHOUSE_USER"), os.Getenv("IT_CLICKHOUSE_PASSWORD")
	if ch.user == "" {
		ch.user = "default"
	}
	ch.db = fmt.Sprintf("bench_sink_clickhouse_%d", os.Getpid())
	if err := ch.exec(ctx, "CREATE DATABASE "+ch.db); err != nil {
		return Result{}, err
	}
	defer func() { _ = ch.exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+ch.db) }()

	bin, err := env.Build(ctx, "services/sink-clickhouse")
	if err != nil {
		return Result{}, err
	}
	n := 100000
	if env.Quick {
		n = 2000
	}
	var res Result
	for _, size := range chBatchSizes {
		g := Group{Setting: fmt.Sprintf("BATCH_SIZE=%d", size)}
		env.Logf("sink-clickhouse: %s: %d rows", g.Setting, n)
		plain, err := ch.measurePlain(ctx, n, size)
		if err != nil {
			return Result{}, fmt.Errorf("%s: plain: %w", g.Setting, err)
		}
		sink, err := ch.measureSink(ctx, bin, n, size)
		if err != nil {
			return Result{}, fmt.Errorf("%s: sink: %w", g.Setting, err)
		}
		g.Rows = []Row{plain, sink}
		res.Groups = append(res.Groups, g)
	}
	return res, nil
}

// chServer is the ClickHouse the case inserts into, and its database for this run.
type chServer struct {
	native, http, user, password, db string
}

// exec runs one statement over HTTP (works on every server version).
func (s chServer) exec(ctx context.Context, query string) error {
	u := url.URL{Scheme: "http", Host: s.http, Path: "/", RawQuery: url.Values{"user": {s.user}, "password": {s.password}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(query))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("clickhouse: %s: %s", query, strings.TrimSpace(string(body)))
	}
	return nil
}

// freshTable (re)creates the benchmark table.
func (s chServer) freshTable(ctx context.Context) error {
	if err := s.exec(ctx, "DROP TABLE IF EXISTS "+s.db+"."+chTable); err != nil {
		return err
	}
	return s.exec(ctx, "CREATE TABLE "+s.db+"."+chTable+" (id UInt64, ts DateTime, kind String, payload String) ENGINE = MergeTree ORDER BY id")
}

func (s chServer) open() (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{Addr: []string{s.native}, Auth: clickhouse.Auth{Database: s.db, Username: s.user, Password: s.password},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4}})
}

// chJSON is row i: the typed values, and the JSON message carrying them (about 1 KiB).
var (
	chTS      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	chPayload = strings.Repeat("x", 940)
)

func chKind(i int) string { return [...]string{"click", "view", "purchase", "signup"}[i%4] }

func chJSON(i int) []byte {
	return fmt.Appendf(nil, `{"id":%d,"ts":"2026-01-02T03:04:05Z","kind":%q,"payload":%q}`, i, chKind(i), chPayload)
}

// measurePlain inserts n rows in batches of size with clickhouse-go, in process.
func (s chServer) measurePlain(ctx context.Context, n, size int) (Row, error) {
	if err := s.freshTable(ctx); err != nil {
		return Row{}, err
	}
	conn, err := s.open()
	if err != nil {
		return Row{}, err
	}
	defer conn.Close()
	cpu0, start := selfCPU(), time.Now()
	for from := 0; from < n; from += size {
		b, err := conn.PrepareBatch(ctx, "INSERT INTO "+chTable+" (id, ts, kind, payload)")
		if err != nil {
			return Row{}, err
		}
		for i := from; i < min(from+size, n); i++ {
			if err := b.Append(uint64(i), chTS, chKind(i), chPayload); err != nil {
				return Row{}, err
			}
		}
		if err := b.Send(); err != nil {
			return Row{}, err
		}
	}
	elapsed, cpu := time.Since(start), selfCPU()-cpu0
	return Row{Variant: chPlainVariant, Msgs: n, Rate: float64(n) / elapsed.Seconds(), CPUMicros: float64(cpu.Microseconds()) / float64(n)}, nil
}

// measureSink publishes n messages, then runs the sink until the table holds them all.
func (s chServer) measureSink(ctx context.Context, bin string, n, size int) (Row, error) {
	if err := s.freshTable(ctx); err != nil {
		return Row{}, err
	}
	const topic = "/default/bench-ch"
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: 20000})
	if err != nil {
		return Row{}, err
	}
	defer broker.Close()
	if err := fillTopic(ctx, broker.URL(), topic, "ch-sink-1", "ch-sink", n, func(i int) danube.ProducerMessage {
		return danube.ProducerMessage{Payload: bytes.Clone(chJSON(i))}
	}); err != nil {
		return Row{}, err
	}
	conn, err := s.open()
	if err != nil {
		return Row{}, err
	}
	defer conn.Close()
	host, port, _ := strings.Cut(s.native, ":")
	start := time.Now()
	sink, err := startChild(bin, []string{
		"DANUBE_SERVICE_URL=" + broker.URL(), "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=ch-sink", "CONNECTOR_NAME=ch-sink-1",
		"CH_HOST=" + host, "CH_PORT=" + port, "CH_DATABASE=" + s.db, "CH_TABLE=" + chTable, "CH_USER=" + s.user, "CH_PASSWORD=" + s.password,
		fmt.Sprintf("BATCH_SIZE=%d", size), "BATCH_TIMEOUT_MS=100", "FLUSH_INTERVAL_MS=0",
		"METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text", "LOG_LEVEL=warn", "SHUTDOWN_TIMEOUT_MS=5000",
	})
	if err != nil {
		return Row{}, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var count uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+chTable).Scan(&count); err != nil {
			_ = sink.stop()
			return Row{}, err
		}
		if count >= uint64(n) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = sink.stop()
			return Row{}, fmt.Errorf("%d of %d rows inserted\n%s", count, n, sink.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if err := sink.stop(); err != nil {
		return Row{}, err
	}
	return Row{Variant: chSinkVariant, Msgs: n, Rate: float64(n) / elapsed.Seconds(), CPUMicros: sink.cpuMicros(n), RSSMiB: sink.rss}, nil
}
