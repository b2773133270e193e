package sourcepostgres

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// hashKey is mask_pii's HMAC key (HASH_KEY_FILE): at least 16 bytes.
const hashKey = "integration-test-hmac-key-0123456789"

func hmacHex(s string) string {
	h := hmac.New(sha256.New, []byte(hashKey))
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// chainEnv is the environment of a source-postgres whose events go through the chain:
// unwrap (defaults: deletes dropped, op attribute), mask_pii (email hashed) and only_eu (a filter
// on region that fails on a NULL region), one topic per table, failures to dlq.
func chainEnv(t *testing.T, pg harness.PostgresEndpoint, brokerURL, dlq string) map[string]string {
	t.Helper()
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "hash-key")
	if err := os.WriteFile(keyFile, []byte(hashKey), 0o644); err != nil { // the image's user reads it
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return map[string]string{
		"DANUBE_SERVICE_URL": brokerURL, "DANUBE_TOPIC": "/default/cdc", "TOPIC_TEMPLATE": "/default/pg-{schema}-{table}",
		"DLQ_TOPIC": dlq, "CONNECTOR_NAME": "cdc-chain",
		"PG_HOST": u.Hostname(), "PG_PORT": u.Port(), "PG_DATABASE": pg.Database, "PG_USER": u.User.Username(),
		"PG_PASSWORD": pw, "PG_SSLMODE": "disable", "SLOT_NAME": pg.Database, "PUBLICATION_NAME": "pub",
		"TABLE_WHITELIST": "customers", "LOG_LEVEL": "info", "LOG_FORMAT": "text", "RETRY_BACKOFF_MS": "20",
		"RETRY_MAX_BACKOFF_MS": "200", "POLL_INTERVAL_MS": "20", "HEARTBEAT_INTERVAL_MS": "200",
		"TRANSFORMS":                       "unwrap,mask_pii,only_eu",
		"TRANSFORM_MASK_PII_TYPE":          "mask",
		"TRANSFORM_MASK_PII_FIELDS":        "email",
		"TRANSFORM_MASK_PII_MODE":          "hash",
		"TRANSFORM_MASK_PII_HASH_KEY_FILE": keyFile,
		"TRANSFORM_ONLY_EU_TYPE":           "filter",
		"TRANSFORM_ONLY_EU_EXPR":           `payload.region.startsWith("eu-")`,
	}
}

// TestTransformChainUnwrapMaskFilter is issue 24's source acceptance run: the binary, configured by
// environment only, unwraps source-postgres's events, hashes the email and keeps the EU rows.
// Exactly the EU rows' upserts (snapshot and stream) reach the table's topic, as bare rows with
// the email hashed and the operation in the op attribute; a delete (unwrap drops deletes by
// default) and every non-EU change are absent; the row whose NULL region makes the filter fail is
// dead-lettered as the original event with the step in its reason, and the stream goes on; and
// the slot is confirmed past trailing changes that were all filtered out. No restart, so no
// duplicates are allowed.
func TestTransformChainUnwrapMaskFilter(t *testing.T) {
	pg := harness.Postgres(t)
	exec1(t, pg.DSN, "CREATE TABLE customers (id int PRIMARY KEY, email text, region text)")
	exec1(t, pg.DSN, "INSERT INTO customers VALUES (1, 'ann@example.eu', 'eu-west'), (2, 'bob@example.com', 'us-east')")

	b := runtimetest.StartBroker(t)
	const topic, dlq = "/default/pg-public-customers", "/default/cdc-dlq"
	runtimetest.CreateTopic(t, b, topic)
	runtimetest.CreateTopic(t, b, dlq)
	rows, dead := runtimetest.Collect(t, b, topic, "reader"), runtimetest.Collect(t, b, dlq, "dlq-reader")
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-postgres", Env: chainEnv(t, pg, b.URL(), dlq)})
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.Timeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs())
	}

	for _, sql := range []string{
		"INSERT INTO customers VALUES (3, 'cid@example.eu', 'eu-central'), (4, 'dan@example.com', 'us-west')",
		"UPDATE customers SET email = 'ann@example.org' WHERE id = 1",
		"UPDATE customers SET email = 'bob@example.org' WHERE id = 2",
		"DELETE FROM customers WHERE id = 3",
		"INSERT INTO customers VALUES (5, 'eve@example.eu', NULL)", // only_eu fails on it
		"INSERT INTO customers VALUES (6, 'fay@example.eu', 'eu-north')",
		// Trailing changes that are all filtered out: the slot must still be confirmed past them.
		"INSERT INTO customers VALUES (7, 'gus@example.com', 'us-east')",
		"UPDATE customers SET region = 'ap-south' WHERE id = 4",
	} {
		exec1(t, pg.DSN, sql)
	}
	// The insert position, past the last commit record: pg_current_wal_lsn (the write position)
	// lags behind it on a server with synchronous_commit=off, as the local test server runs.
	var lsn string
	queryRow(t, pg.DSN, &lsn, "SELECT pg_current_wal_insert_lsn()::text")
	waitConfirmed(t, pg.DSN, pg.Database, lsn)

	checkRows(t, untilSentinel(t, b, rows, topic))
	checkDeadLetter(t, untilSentinel(t, b, dead, dlq), topic)
	checkTransformMetrics(t, c)
	stop(t, c)
}

// untilSentinel returns what col received from topic before a sentinel published now. Everything
// the connector published is in the topic before that: Danube acked it before the slot was
// confirmed past it.
func untilSentinel(t *testing.T, b runtimetest.Broker, col *runtimetest.Collector, topic string) []*danube.Message {
	t.Helper()
	runtimetest.Produce(t, b, topic, danube.ProducerMessage{Payload: []byte("sentinel")})
	got := col.WaitFor(t, "the sentinel on "+topic, func(ms []*danube.Message) bool {
		return len(ms) > 0 && string(ms[len(ms)-1].Payload) == "sentinel"
	})
	return got[:len(got)-1]
}

// waitConfirmed waits until slot's confirmed_flush_lsn is at least lsn (a bound on the wait, not
// a timing assertion).
func waitConfirmed(t *testing.T, dsn, slot, lsn string) {
	t.Helper()
	deadline := time.Now().Add(runtimetest.Timeout)
	for {
		var done bool
		queryRow(t, dsn, &done, "SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2", lsn, slot)
		if done {
			return
		}
		if time.Now().After(deadline) {
			var at string
			queryRow(t, dsn, &at, "SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1", slot)
			t.Fatalf("slot %s confirmed to %s, not past the filtered-out changes at %s", slot, at, lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRows asserts that ms are exactly the EU rows' upserts, bare, hashed, with their op.
func checkRows(t *testing.T, ms []*danube.Message) {
	t.Helper()
	row := func(id int, email, region string) map[string]any {
		return map[string]any{"id": json.Number(strconv.Itoa(id)), "email": hmacHex(email), "region": region}
	}
	want := map[string]map[string]any{ // op and id → row
		"READ 1":   row(1, "ann@example.eu", "eu-west"),
		"INSERT 3": row(3, "cid@example.eu", "eu-central"),
		"UPDATE 1": row(1, "ann@example.org", "eu-west"),
		"INSERT 6": row(6, "fay@example.eu", "eu-north"),
	}
	got := map[string]map[string]any{}
	for _, m := range ms {
		var r map[string]any
		d := json.NewDecoder(strings.NewReader(string(m.Payload)))
		d.UseNumber()
		if err := d.Decode(&r); err != nil {
			t.Fatalf("%q is not a JSON object: %v", m.Payload, err)
		}
		k := m.Attributes["op"] + " " + m.Key
		if _, dup := got[k]; dup {
			t.Errorf("%s (%s) arrived twice", k, m.Payload)
		}
		got[k] = r
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows in the topic (op and key → row):\n got %v\nwant %v", got, want)
	}
}

// checkDeadLetter asserts that ms is the row only_eu failed on, as the connector built it.
func checkDeadLetter(t *testing.T, ms []*danube.Message, topic string) {
	t.Helper()
	if len(ms) != 1 {
		t.Fatalf("%d dead letters, want 1: %q", len(ms), payloads(ms))
	}
	m := ms[0]
	// As the steps before only_eu left it: unwrapped, and the email masked (it must not reach
	// Danube in clear, not even in a dead letter).
	if want := `{"id":5,"email":"` + hmacHex("eve@example.eu") + `","region":null}`; string(m.Payload) != want {
		t.Fatalf("dead letter %s, want %s", m.Payload, want)
	}
	reason := m.Attributes["x-failure-reason"]
	if !strings.HasPrefix(reason, `transform "only_eu" (filter): `) || m.Attributes["x-original-topic"] != topic ||
		m.Attributes["x-connector"] != "cdc-chain" || m.Key != "5" || m.Attributes["op"] != "INSERT" {
		t.Fatalf("dead letter key %q, attributes %v", m.Key, m.Attributes)
	}
	t.Logf("dead letter reason: %s", reason)
}

func payloads(ms []*danube.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

// checkTransformMetrics asserts the steps' counts on /metrics: eleven events (two snapshot rows,
// nine streamed changes); unwrap dropped the delete; only_eu kept the four EU upserts, dropped
// the five non-EU changes and failed on the NULL region.
func checkTransformMetrics(t *testing.T, c *harness.Connector) {
	t.Helper()
	got := transformCounts(t, c.MetricsURL())
	want := map[string]float64{
		"unwrap in": 11, "unwrap out": 10, "unwrap dropped": 1, "unwrap failed": 0,
		"mask_pii in": 10, "mask_pii out": 10, "mask_pii dropped": 0, "mask_pii failed": 0,
		"only_eu in": 10, "only_eu out": 4, "only_eu dropped": 5, "only_eu failed": 1,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("connector_transform_records_total (step result → count):\n got %v\nwant %v", got, want)
	}
}

// transformCounts scrapes connector_transform_records_total: "step result" → count.
func transformCounts(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<22))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "connector_transform_records_total{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(line, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		out[label(labels, "step")+" "+label(labels, "result")] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// label returns the value of name in a Prometheus label list (values without quotes or commas).
func label(labels, name string) string {
	for kv := range strings.SplitSeq(labels, ",") {
		if v, ok := strings.CutPrefix(kv, name+`="`); ok {
			return strings.TrimSuffix(v, `"`)
		}
	}
	return ""
}
