package deploytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chsink"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
	"github.com/danube-messaging/danube-connect-go/services/source-webhook/webhook"
)

// external are the metric names the kit queries that no connector exports, and who does.
var external = map[string]string{
	"up":                                     "Prometheus, for every scrape target",
	"kube_pod_container_status_ready":        "kube-state-metrics (the readiness Kubernetes probes on /readyz)",
	"danube_subscription_lag_messages":       "the Danube broker (v0.15)",
	"danube_subscription_pending_redelivery": "the Danube broker (v0.15)",
	"danube_subscription_terminal_blocked":   "the Danube broker (v0.15)",
}

// owners say which connector run exports a name, by prefix (the longest matching wins); every
// other name must come from the run of sink-http, which needs nothing but the development broker.
var owners = map[string]string{
	"chsink_":              "sink-clickhouse",
	"connector_source_lag": "source-postgres",
	"mqtt_":                "source-mqtt",
	"webhook_":             "source-webhook",
}

func ownerOf(name string) string {
	best, owner := "", "sink-http"
	for prefix, o := range owners {
		if strings.HasPrefix(name, prefix) && len(prefix) > len(best) {
			best, owner = prefix, o
		}
	}
	return owner
}

// kitQueries returns every PromQL expression of the dashboard and the alert rules, by where it is.
func kitQueries(t *testing.T) map[string]string {
	t.Helper()
	queries := map[string]string{}
	raw, err := os.ReadFile(deployPath("observability", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("dashboard: panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("dashboard: panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("dashboard: panel %q, query %s is empty", p.Title, tg.RefID)
				}
				queries[fmt.Sprintf("dashboard panel %q query %s", p.Title, tg.RefID)] = tg.Expr
			}
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_]\w*\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		sub := labelValues.FindStringSubmatch(q)
		if sub == nil {
			t.Errorf("dashboard: variable %s: want label_values(<selector>, <label>), got %q", v.Name, q)
			continue
		}
		queries["dashboard variable "+v.Name] = sub[1]
	}

	raw, err = os.ReadFile(deployPath("observability", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("prometheus-rules.yaml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || alerts[r.Alert] {
				t.Errorf("rules: group %s: alert name %q missing or repeated", g.Name, r.Alert)
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("rules: %s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rules: %s lacks a summary or description", r.Alert)
			}
			if _, err := time.ParseDuration(cmpOr(r.For, "0s")); err != nil {
				t.Errorf("rules: %s: for %q: %v", r.Alert, r.For, err)
			}
			queries["alert "+r.Alert] = r.Expr
		}
	}
	if len(alerts) == 0 || len(queries) < 10 {
		t.Fatalf("found only %d alerts and %d queries", len(alerts), len(queries))
	}
	return queries
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// TestObservabilityMetricsAreExported: every metric the Grafana dashboard and the alert rules
// query is one a running connector exports (or, for the few listed in external, one Prometheus,
// kube-state-metrics or the broker does). The connectors run for real in this process through
// runtime.Main, as their main functions run them, against the development broker and the real
// external systems; their /metrics pages are scraped once they have processed records, failed
// one and dead-lettered it, so every series exists. A run whose external system is unavailable
// is skipped with the reason (unless CI_REQUIRE_INTEGRATION=1), and so are the names only it
// exports.
func TestObservabilityMetricsAreExported(t *testing.T) {
	queries := kitQueries(t)
	wanted := map[string][]string{} // metric name -> where it is queried
	for where, expr := range queries {
		names, err := deploytest.MetricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s queries no metric: %q", where, expr)
		}
		for _, n := range names {
			wanted[n] = append(wanted[n], where)
		}
	}

	exported := map[string]map[string]bool{} // run -> names
	skipped := map[string]string{}           // run -> why
	for run, scrape := range map[string]func(t *testing.T) map[string]bool{
		"sink-http":       scrapeSinkHTTP,
		"sink-clickhouse": scrapeSinkClickHouse,
		"source-postgres": scrapeSourcePostgres,
		"source-mqtt":     scrapeSourceMQTT,
		"source-webhook":  scrapeSourceWebhook,
	} {
		ok := t.Run(run, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Skipped() {
					skipped[run] = "was skipped: see its log above"
				}
			})
			exported[run] = scrape(t)
		})
		if !ok {
			t.Fatalf("the %s run failed", run)
		}
	}

	var unverified []string
	for _, name := range slices.Sorted(maps.Keys(wanted)) {
		if _, ok := external[name]; ok {
			continue
		}
		owner := ownerOf(name)
		if why, ok := skipped[owner]; ok {
			unverified = append(unverified, name+" ("+owner+" "+why+")")
			continue
		}
		if !exported[owner][name] {
			t.Errorf("%s is queried by %s but %s does not export it; it exports:\n%s", name, strings.Join(wanted[name], ", "),
				owner, strings.Join(slices.Sorted(maps.Keys(exported[owner])), "\n"))
		}
	}
	if len(unverified) > 0 && !t.Failed() {
		t.Skipf("not verified, their connector did not run: %s", strings.Join(unverified, ", "))
	}
}

// runFunc runs one connector process (runtime.Main) until ctx ends and returns its exit code.
type runFunc func(ctx context.Context, environ []string, stderr io.Writer) int

// sinkMain is runtime.MainSink's body without the process around it.
func sinkMain[C any, PC interface {
	*C
	Sink() *runtime.SinkConfig
}](newConnector func(PC, runtime.Resources) (runtime.SinkConnector, error)) runFunc {
	return func(ctx context.Context, environ []string, stderr io.Writer) int {
		cfg := PC(new(C))
		return runtime.Main(ctx, nil, environ, io.Discard, stderr, cfg, &cfg.Sink().Common,
			func(ctx context.Context, opts ...runtime.Option) error {
				conn, err := newConnector(cfg, runtime.NewResources(&cfg.Sink().Common, opts...))
				if err != nil {
					return err
				}
				return runtime.RunSink(ctx, cfg.Sink(), conn, opts...)
			})
	}
}

// sourceMain is runtime.MainSource's body without the process around it.
func sourceMain[C any, PC interface {
	*C
	Source() *runtime.SourceConfig
}, P any](newConnector func(PC, runtime.Resources) (runtime.SourceConnector[P], error)) runFunc {
	return func(ctx context.Context, environ []string, stderr io.Writer) int {
		cfg := PC(new(C))
		return runtime.Main(ctx, nil, environ, io.Discard, stderr, cfg, &cfg.Source().Common,
			func(ctx context.Context, opts ...runtime.Option) error {
				conn, err := newConnector(cfg, runtime.NewResources(&cfg.Source().Common, opts...))
				if err != nil {
					return err
				}
				return runtime.RunSource(ctx, cfg.Source(), conn, opts...)
			})
	}
}

// logBuffer is the connector's stderr, read while it runs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// connector is a running connector process.
type connector struct {
	metrics string // http://host:port of its METRICS_ADDR
	log     *logBuffer
	done    chan int
}

// noKeepAlive keeps no idle connections that would outlive the test (goleak).
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// waitTimeout bounds every wait for a connector (generous: the machine is shared and -race is slow).
const waitTimeout = 2 * time.Minute

// start runs the connector with environ (plus METRICS_ADDR on a free loopback port) until the
// test ends, when it must stop cleanly (exit 0), and waits until /readyz answers 200.
func start(t *testing.T, run runFunc, environ []string) *connector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &connector{log: &logBuffer{}, done: make(chan int, 1)}
	go func() { c.done <- run(ctx, append(environ, "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=json"), c.log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-c.done; code != runtime.ExitOK {
			t.Errorf("the connector exited %d:\n%s", code, c.log.String())
		}
	})
	deadline := time.Now().Add(waitTimeout)
	for c.metrics == "" {
		for line := range strings.Lines(c.log.String()) {
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving /metrics, /healthz, /readyz" {
				c.metrics = "http://" + entry.Addr
			}
		}
		c.sleep(t, deadline, "serve /metrics")
	}
	for {
		if code, _ := c.get(t, "/readyz"); code == http.StatusOK {
			return c
		}
		c.sleep(t, deadline, "become ready")
	}
}

// sleep waits a moment, failing t if the connector exited or the deadline passed.
func (c *connector) sleep(t *testing.T, deadline time.Time, what string) {
	t.Helper()
	select {
	case code := <-c.done:
		c.done <- code
		t.Fatalf("the connector exited %d before it could %s:\n%s", code, what, c.log.String())
	case <-time.After(20 * time.Millisecond):
	}
	if time.Now().After(deadline) {
		t.Fatalf("the connector did not %s within %v:\n%s", what, waitTimeout, c.log.String())
	}
}

// get returns the status and body of path on the connector's metrics server (0 if unreachable).
func (c *connector) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := noKeepAlive.Get(c.metrics + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, ""
	}
	return resp.StatusCode, string(body)
}

// value returns the value of the sample name{connector="<connector>"...} on page, or -1.
func value(page, name, connector string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[^}]*connector="` + regexp.QuoteMeta(connector) + `"[^}]*\} (\S+)$`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	var v float64
	if _, err := fmt.Sscan(m[1], &v); err != nil {
		return -1
	}
	return v
}

// scrapeUntil scrapes /metrics until done(page) and returns the names of that page.
func (c *connector) scrapeUntil(t *testing.T, what string, done func(page string) bool) map[string]bool {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if code, page := c.get(t, "/metrics"); code == http.StatusOK && done(page) {
			return deploytest.ExposedNames(page)
		} else if time.Now().After(deadline) {
			t.Fatalf("the connector did not %s within %v; last /metrics:\n%s\nlog:\n%s", what, waitTimeout, page, c.log.String())
		}
		c.sleep(t, deadline, what)
	}
}

// publish sends payloads to topic on the broker at serviceURL.
func publish(t *testing.T, serviceURL, topic string, payloads ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client, err := danube.NewClient(serviceURL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "deploytest-producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, pl := range payloads {
		if _, err := p.Send(ctx, danube.ProducerMessage{Payload: []byte(pl)}); err != nil {
			t.Fatal(err)
		}
	}
}

// sinkDone says a sink took in n records and completed them all (written or dead-lettered), and
// has recorded its processing histogram.
func sinkDone(name string, n float64) func(string) bool {
	return func(page string) bool {
		return value(page, "connector_records_received_total", name) == n &&
			value(page, "connector_records_in_flight", name) == 0 &&
			value(page, "connector_records_dead_lettered_total", name) >= 1 &&
			strings.Contains(page, "connector_processing_duration_seconds_count{")
	}
}

// scrapeSinkHTTP runs sink-http against the development broker and an HTTP server that accepts
// every message but one, which it rejects (400: invalid data, dead-lettered). A transform step
// that only sets an attribute makes it export the transform metrics too.
func scrapeSinkHTTP(t *testing.T) map[string]bool {
	broker := harness.Danube(t)
	topic := "/default/" + harness.Name(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte("reject")) {
			http.Error(w, "rejected", http.StatusBadRequest)
		}
	}))
	t.Cleanup(target.Close)
	const name = "deploytest-http"
	c := start(t, sinkMain(sinkhttp.NewConnector), []string{
		"DANUBE_SERVICE_URL=" + broker.URL, "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=deploytest",
		"CONNECTOR_NAME=" + name, "TARGET_URL=" + target.URL, "DLQ_TOPIC=" + topic + "-dlq", "RETRY_BACKOFF_MS=10",
		"TRANSFORMS=tag", "TRANSFORM_TAG_TYPE=attributes", `TRANSFORM_TAG_EXPR={"source": "deploytest"}`,
	})
	publish(t, broker.URL, topic, "one", "reject", "three")
	return c.scrapeUntil(t, "write two messages and dead-letter one", sinkDone(name, 3))
}

// scrapeSinkClickHouse runs sink-clickhouse against the development broker and the real
// ClickHouse: two rows are inserted, one does not convert (dead-lettered).
func scrapeSinkClickHouse(t *testing.T) map[string]bool {
	ep := harness.ClickHouse(t)
	broker := harness.Danube(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ep.Exec(ctx, "CREATE TABLE "+ep.Database+".events (id UInt64, name String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(ep.NativeAddr, ":")
	topic := "/default/" + harness.Name(t)
	const name = "deploytest-clickhouse"
	c := start(t, sinkMain(chsink.New), []string{
		"DANUBE_SERVICE_URL=" + broker.URL, "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=deploytest",
		"CONNECTOR_NAME=" + name, "DLQ_TOPIC=" + topic + "-dlq", "RETRY_BACKOFF_MS=10",
		"CH_HOST=" + host, "CH_PORT=" + port, "CH_DATABASE=" + ep.Database, "CH_TABLE=events",
		"CH_USER=" + ep.Username, "CH_PASSWORD=" + ep.Password, "FLUSH_INTERVAL_MS=0",
	})
	publish(t, broker.URL, topic, `{"id":1,"name":"a"}`, `{"id":"not a number","name":"b"}`, `{"id":3,"name":"c"}`)
	return c.scrapeUntil(t, "insert two rows and dead-letter one", sinkDone(name, 3))
}

// scrapeSourcePostgres runs source-postgres against the development broker and the real
// PostgreSQL until it reports its lag.
func scrapeSourcePostgres(t *testing.T) map[string]bool {
	ep := harness.Postgres(t)
	broker := harness.Danube(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, ep.DSN)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ep.DSN)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	slot := harness.Name(t)
	const name = "deploytest-postgres"
	c := start(t, sourceMain(pgcdc.New), []string{
		"DANUBE_SERVICE_URL=" + broker.URL, "DANUBE_TOPIC=/default/" + slot, "CONNECTOR_NAME=" + name,
		"PG_HOST=" + u.Hostname(), "PG_PORT=" + cmpOr(u.Port(), "5432"), "PG_DATABASE=" + ep.Database,
		"PG_USER=" + u.User.Username(), "PG_PASSWORD=" + password, "PG_SSLMODE=disable",
		"TABLE_WHITELIST=items", "SLOT_NAME=" + slot, "PUBLICATION_NAME=" + slot, "POLL_INTERVAL_MS=50",
	})
	return c.scrapeUntil(t, "publish the snapshot and report its lag", func(page string) bool {
		return value(page, "connector_records_processed_total", name) >= 1 && value(page, "connector_source_lag", name) >= 0
	})
}

// scrapeSourceMQTT runs source-mqtt as the MQTT server devices connect to (no external system)
// and publishes one mapped message and one on a topic no mapping matches (dropped).
func scrapeSourceMQTT(t *testing.T) map[string]bool {
	broker := harness.Danube(t)
	addr := harness.FreeAddr(t)
	topic := "/default/" + harness.Name(t)
	const name = "deploytest-mqtt"
	c := start(t, sourceMain(mqttsource.New), []string{
		"DANUBE_SERVICE_URL=" + broker.URL, "CONNECTOR_NAME=" + name, "MQTT_MODE=server",
		"MQTT_SERVER_TCP_ADDR=" + addr, "MQTT_SERVER_ALLOW_ANONYMOUS=true", "MQTT_TOPIC_MAPPINGS=sensors/#=" + topic,
	})
	device := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("deploytest-device").
		SetConnectTimeout(waitTimeout).SetAutoReconnect(false))
	wait := func(tok paho.Token, what string) {
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("MQTT %s: %v", what, tok.Error())
		}
	}
	wait(device.Connect(), "connect")
	wait(device.Publish("sensors/t1", 1, false, "21.5"), "publish")
	wait(device.Publish("elsewhere/t1", 1, false, "dropped"), "publish")
	device.Disconnect(100)
	return c.scrapeUntil(t, "publish one message and drop one", func(page string) bool {
		return value(page, "connector_records_processed_total", name) == 1 && strings.Contains(page, `reason="unmapped"`)
	})
}

func scrapeSourceWebhook(t *testing.T) map[string]bool {
	broker := harness.Danube(t)
	addr := harness.FreeAddr(t)
	const name = "deploytest-webhook"
	c := start(t, sourceMain(webhook.New), []string{
		"DANUBE_SERVICE_URL=" + broker.URL, "CONNECTOR_NAME=" + name, "WEBHOOK_ADDR=" + addr,
		"WEBHOOK_ROUTES=/in=/default/" + harness.Name(t),
	})
	post := func(path string) {
		deadline := time.Now().Add(waitTimeout)
		for {
			resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(`{"n":1}`))
			if err == nil {
				_ = resp.Body.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST %s: %v", path, err)
			}
			time.Sleep(20 * time.Millisecond) // the listener opens once the connector is initialized
		}
	}
	post("/in")
	post("/nope")
	return c.scrapeUntil(t, "answer one event and one unknown path", func(page string) bool {
		return value(page, "connector_records_processed_total", name) == 1 && strings.Contains(page, `code="404"`)
	})
}
