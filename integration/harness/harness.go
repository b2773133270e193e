// Package harness hands integration tests a ready endpoint of a real external
// system — PostgreSQL, ClickHouse, Kafka, MQTT, Danube — with one call, on machines
// with Docker and on machines without it.
//
// Each function picks its server in this order:
//
//  1. the IT_* environment variable, if set (tools/itservers/itservers.sh
//     starts local servers and writes these variables);
//  2. a testcontainers-go container, started once per test binary and shared
//     by its tests, when a Docker engine is healthy;
//  3. otherwise the test is skipped — or fails, when CI_REQUIRE_INTEGRATION=1,
//     so that a CI run which was meant to exercise real servers cannot pass
//     by skipping them.
//
// Every endpoint comes with isolation for the calling test (its own database,
// or a name from [Name] for topics), removed when the test ends.
//
// Packages that use the harness call [Main] from TestMain so that shared
// containers are terminated and leaked goroutines reported.
package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
)

// The environment variables the harness reads. tools/itservers/itservers.sh
// writes all of them but the optional ones.
const (
	// EnvRequire, when "1", turns a missing endpoint into a test failure.
	EnvRequire = "CI_REQUIRE_INTEGRATION"

	// EnvPostgresDSN is a postgres:// URL of a superuser on a server with
	// wal_level=logical.
	EnvPostgresDSN = "IT_POSTGRES_DSN"

	// EnvClickHouseNativeAddr and EnvClickHouseHTTPAddr are host:port of
	// ClickHouse's native and HTTP interfaces; both must be set.
	EnvClickHouseNativeAddr = "IT_CLICKHOUSE_NATIVE_ADDR"
	EnvClickHouseHTTPAddr   = "IT_CLICKHOUSE_HTTP_ADDR"
	// EnvClickHouseUser and EnvClickHousePassword are optional credentials
	// (default: user "default" with an empty password).
	EnvClickHouseUser     = "IT_CLICKHOUSE_USER"
	EnvClickHousePassword = "IT_CLICKHOUSE_PASSWORD"

	// EnvKafkaBootstrap is a comma-separated list of host:port.
	EnvKafkaBootstrap = "IT_KAFKA_BOOTSTRAP"
	// EnvKafkaServer optionally names the Kafka server and its version for
	// test logs, because the Kafka protocol does not report it.
	EnvKafkaServer = "IT_KAFKA_SERVER"

	// EnvMQTTURL is the broker URL as paho takes it: tcp://host:port.
	EnvMQTTURL = "IT_MQTT_URL"
	// EnvMQTTServer optionally names the broker and its version for test
	// logs (Mosquitto's retained $SYS/broker/version expires after 60 s).
	EnvMQTTServer = "IT_MQTT_SERVER"

	// EnvDanubeURL is a Danube service URL (http://host:6650 or https://...)
	// of a real broker or a standalone development broker.
	EnvDanubeURL = "IT_DANUBE_URL"
)

// dialTimeout bounds the reachability check of endpoints given by address.
const dialTimeout = 5 * time.Second

// Name returns a name unique to the calling test and to this run, made only
// of [a-z0-9_], at most 50 bytes, so that it is a valid PostgreSQL and
// ClickHouse identifier, Kafka topic and MQTT topic level. The random suffix
// keeps leftovers of an aborted run and repeated runs (-count) apart.
func Name(t testing.TB) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("it_")
	lastUnderscore := true
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			sb.WriteRune(r)
			lastUnderscore = false
		case !lastUnderscore:
			sb.WriteByte('_')
			lastUnderscore = true
		}
	}
	base := strings.TrimSuffix(sb.String(), "_")
	const maxLen, suffixLen = 50, 9 // "_" + 8 hex digits
	if len(base) > maxLen-suffixLen {
		base = strings.TrimSuffix(base[:maxLen-suffixLen], "_")
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("harness: random name suffix: %v", err)
	}
	return base + "_" + hex.EncodeToString(b[:])
}

// reporter is the part of testing.TB that decides between skip and failure;
// an interface so that the decision can be tested.
type reporter interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// unavailable ends the test because system has neither envVar set nor a
// healthy Docker engine: a skip, or a failure under CI_REQUIRE_INTEGRATION=1.
func unavailable(t reporter, system, envVar string, dockerErr error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("harness: %s required (%s=1) but unavailable: set %s (tools/itservers/itservers.sh start writes it) or provide a healthy Docker engine; testcontainers: %v",
			system, EnvRequire, envVar, dockerErr)
		return
	}
	t.Skipf("harness: no %s: set %s or provide a healthy Docker engine; testcontainers: %v", system, envVar, dockerErr)
}

// checkReachable dials each host:port of an endpoint given by the
// environment, so that a stale IT_* variable fails at once with its name
// instead of as a client time-out later.
func checkReachable(envVar string, addrs ...string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s: address %q is not host:port: %w", envVar, a, err)
		}
		c, err := net.DialTimeout("tcp", a, dialTimeout)
		if err != nil {
			return fmt.Errorf("%s: %s is unreachable (is tools/itservers/itservers.sh running?): %w", envVar, a, err)
		}
		_ = c.Close() // a reachability probe: the dial succeeding is the answer
	}
	return nil
}
