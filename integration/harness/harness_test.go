package harness

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

var nameRE = regexp.MustCompile(`^[a-z0-9_]{1,50}$`)

func TestName(t *testing.T) {
	a, b := Name(t), Name(t)
	if a == b {
		t.Errorf("Name returned %q twice; want a random suffix", a)
	}
	if !strings.HasPrefix(a, "it_testname_") || !nameRE.MatchString(a) {
		t.Errorf("Name = %q, want it_testname_<8 hex> of [a-z0-9_]", a)
	}
	t.Run("Sub Test/with-ÄÖ punctuation!!", func(t *testing.T) {
		n := Name(t)
		if !strings.HasPrefix(n, "it_testname_sub_test_with_punctuation_") || !nameRE.MatchString(n) {
			t.Errorf("Name = %q, want it_testname_sub_test_with_punctuation_<8 hex>", n)
		}
	})
	t.Run(strings.Repeat("long", 30), func(t *testing.T) {
		n := Name(t)
		if len(n) != 50 || !nameRE.MatchString(n) {
			t.Errorf("Name = %q (%d bytes), want 50 bytes of [a-z0-9_]", n, len(n))
		}
	})
}

// recorder is a reporter that records the decision instead of ending the
// test.
type recorder struct{ skipped, fatal string }

func (r *recorder) Helper()                      {}
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }

func TestUnavailableSkipsByDefault(t *testing.T) {
	t.Setenv(EnvRequire, "")
	var r recorder
	unavailable(&r, "PostgreSQL", EnvPostgresDSN, errors.New("no socket"))
	want := "harness: no PostgreSQL: set IT_POSTGRES_DSN or provide a healthy Docker engine; testcontainers: no socket"
	if r.skipped != want || r.fatal != "" {
		t.Errorf("skipped %q, fatal %q; want skipped %q", r.skipped, r.fatal, want)
	}
}

func TestUnavailableFailsWhenRequired(t *testing.T) {
	t.Setenv(EnvRequire, "1")
	var r recorder
	unavailable(&r, "Kafka", EnvKafkaBootstrap, errors.New("no socket"))
	want := "harness: Kafka required (CI_REQUIRE_INTEGRATION=1) but unavailable: set IT_KAFKA_BOOTSTRAP (tools/itservers/itservers.sh start writes it) or provide a healthy Docker engine; testcontainers: no socket"
	if r.fatal != want || r.skipped != "" {
		t.Errorf("fatal %q, skipped %q; want fatal %q", r.fatal, r.skipped, want)
	}
}

func TestPostgresWithDatabase(t *testing.T) {
	ep, err := PostgresEndpoint{DSN: "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", Source: "s"}.withDatabase("it_x")
	if err != nil {
		t.Fatal(err)
	}
	want := PostgresEndpoint{
		DSN:            "postgres://u:p@127.0.0.1:5432/it_x?sslmode=disable",
		ReplicationDSN: "postgres://u:p@127.0.0.1:5432/it_x?replication=database&sslmode=disable",
		Database:       "it_x",
		Source:         "s",
	}
	if ep != want {
		t.Errorf("withDatabase = %+v, want %+v", ep, want)
	}
}

// closedPort returns a 127.0.0.1 address that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestFromEnvRejectsBadValues(t *testing.T) {
	closed := closedPort(t)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		fromEnv func() error
		want    string // regexp
	}{{
		name:    "postgres not a URL",
		env:     map[string]string{EnvPostgresDSN: "host=x port=5432"},
		fromEnv: func() error { _, err := postgresFromEnv(); return err },
		want:    `^"host=x port=5432" is not a postgres://user@host:port/db URL$`,
	}, {
		name:    "postgres unreachable",
		env:     map[string]string{EnvPostgresDSN: "postgres://postgres@" + closed + "/postgres"},
		fromEnv: func() error { _, err := postgresFromEnv(); return err },
		want:    `^IT_POSTGRES_DSN: ` + regexp.QuoteMeta(closed) + ` is unreachable \(is tools/itservers/itservers.sh running\?\): .*connection refused$`,
	}, {
		name:    "clickhouse without HTTP address",
		env:     map[string]string{EnvClickHouseNativeAddr: closed, EnvClickHouseHTTPAddr: ""},
		fromEnv: func() error { _, err := clickHouseFromEnv(); return err },
		want:    `^IT_CLICKHOUSE_NATIVE_ADDR is set but IT_CLICKHOUSE_HTTP_ADDR is not; set both$`,
	}, {
		name:    "kafka not host:port",
		env:     map[string]string{EnvKafkaBootstrap: "localhost"},
		fromEnv: func() error { _, err := kafkaFromEnv(); return err },
		want:    `^IT_KAFKA_BOOTSTRAP: address "localhost" is not host:port: `,
	}, {
		name:    "kafka second broker unreachable",
		env:     map[string]string{EnvKafkaBootstrap: closed + ", " + closed},
		fromEnv: func() error { _, err := kafkaFromEnv(); return err },
		want:    `^IT_KAFKA_BOOTSTRAP: ` + regexp.QuoteMeta(closed) + ` is unreachable`,
	}, {
		name:    "mqtt wrong scheme",
		env:     map[string]string{EnvMQTTURL: "http://127.0.0.1:1883"},
		fromEnv: func() error { _, err := mqttFromEnv(); return err },
		want:    `^"http://127.0.0.1:1883" is not a tcp://host:port URL$`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := tc.fromEnv()
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Errorf("error = %v, want match for %s", err, tc.want)
			}
		})
	}
}

// TestFromEnvReachable takes endpoints from the environment as given, with
// the optional server names in Source.
func TestFromEnvReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()

	t.Setenv(EnvKafkaBootstrap, addr+" , "+addr)
	t.Setenv(EnvKafkaServer, "Apache Kafka 4.1.0")
	k, err := kafkaFromEnv()
	if want := (KafkaEndpoint{Bootstrap: addr + "," + addr, Source: "IT_KAFKA_BOOTSTRAP=" + addr + " , " + addr + " (Apache Kafka 4.1.0)"}); err != nil || k != want {
		t.Errorf("kafkaFromEnv = %+v, %v; want %+v", k, err, want)
	}

	t.Setenv(EnvMQTTURL, "tcp://"+addr)
	t.Setenv(EnvMQTTServer, "")
	m, err := mqttFromEnv()
	if want := (MQTTEndpoint{URL: "tcp://" + addr, Source: "IT_MQTT_URL=tcp://" + addr}); err != nil || m != want {
		t.Errorf("mqttFromEnv = %+v, %v; want %+v", m, err, want)
	}

	t.Setenv(EnvClickHouseNativeAddr, addr)
	t.Setenv(EnvClickHouseHTTPAddr, addr)
	t.Setenv(EnvClickHouseUser, "")
	t.Setenv(EnvClickHousePassword, "")
	c, err := clickHouseFromEnv()
	if want := (ClickHouseEndpoint{NativeAddr: addr, HTTPAddr: addr, Username: "default",
		Source: "IT_CLICKHOUSE_NATIVE_ADDR=" + addr + ", IT_CLICKHOUSE_HTTP_ADDR=" + addr}); err != nil || c != want {
		t.Errorf("clickHouseFromEnv = %+v, %v; want %+v", c, err, want)
	}

	t.Setenv(EnvPostgresDSN, "postgres://postgres:secret@"+addr+"/postgres?sslmode=disable")
	p, err := postgresFromEnv()
	if want := (PostgresEndpoint{DSN: "postgres://postgres:secret@" + addr + "/postgres?sslmode=disable",
		Source: "IT_POSTGRES_DSN=postgres://postgres:xxxxx@" + addr + "/postgres?sslmode=disable"}); err != nil || p != want {
		t.Errorf("postgresFromEnv = %+v, %v; want %+v", p, err, want)
	}
}
