package chsink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

func TestMain(m *testing.M) { harness.Main(m) }

// exec runs statements over the HTTP interface (no driver involved).
func exec(t testing.TB, ep harness.ClickHouseEndpoint, queries ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range queries {
		if err := ep.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// reader opens a native connection for reading rows back; closed at cleanup.
func reader(t testing.TB, ep harness.ClickHouseEndpoint) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ep.NativeAddr},
		Auth: clickhouse.Auth{Database: ep.Database, Username: ep.Username, Password: ep.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// serverVersion returns the server's major and minor version.
func serverVersion(t testing.TB, conn clickhouse.Conn) (int, int) {
	t.Helper()
	v, err := conn.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	return int(v.Version.Major), int(v.Version.Minor)
}

// strings reads one column of text per row (the query selects it).
func queryStrings(t testing.TB, conn clickhouse.Conn, query string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// loadConfig builds the connector's config through config.Load, as in production: envDefault
// values apply. FLUSH_INTERVAL_MS is 0 so that tests do not wait between inserts.
func loadConfig(t testing.TB, ep harness.ClickHouseEndpoint, table string, env ...string) *Config {
	t.Helper()
	host, port, _ := strings.Cut(ep.NativeAddr, ":")
	var cfg Config
	environ := append([]string{
		"DANUBE_SERVICE_URL=http://unused:6650", "DANUBE_TOPIC=/default/unused", "SUBSCRIPTION_NAME=unused", "CONNECTOR_NAME=unused",
		"CH_HOST=" + host, "CH_PORT=" + port, "CH_DATABASE=" + ep.Database, "CH_TABLE=" + table,
		"CH_USER=" + ep.Username, "CH_PASSWORD=" + ep.Password, "FLUSH_INTERVAL_MS=0",
	}, env...)
	if err := config.Load(&cfg, environ); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// newSink builds the connector for cfg with the runtime part sc (nil: cfg's own).
func newSink(t testing.TB, cfg *Config, sc *runtime.SinkConfig, opts ...runtime.Option) runtime.SinkConnector {
	t.Helper()
	c := *cfg
	if sc != nil {
		c.SinkConfig = *sc
	}
	conn, err := New(&c, runtime.NewResources(&c.Common, opts...))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// initialized returns an initialized *Sink, shut down at cleanup.
func initialized(t testing.TB, cfg *Config) *Sink {
	t.Helper()
	s := newSink(t, cfg, nil).(*Sink)
	if err := s.Initialize(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func jsonRow(i int) []byte { return fmt.Appendf(nil, `{"id":%d,"name":"n-%d"}`, i, i) }
