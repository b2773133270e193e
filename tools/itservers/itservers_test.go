// Package itservers tests itservers.sh, the script that runs the external
// systems of the integration suites on machines without Docker: it starts
// the real servers on random ports in a state directory of its own.
package itservers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// script runs itservers.sh with args and the environment env.
func script(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"itservers.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// freePorts returns n ports on 127.0.0.1 that were free a moment ago. They are taken below the
// kernel's ephemeral range (32768 and up by default): a port another test's listener on
// 127.0.0.1:0 can be handed, after a server here released it, would make "nothing listens after
// stop" fail for that other test's listener.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("no %d free ports in 10000-32767", n)
		}
		port := 10000 + rand.IntN(22768)
		if slices.Contains(ports, port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		ports = append(ports, port)
	}
	return ports
}

// stateDir is a fresh state directory the postgres user can enter.
func stateDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		// This project's CI and machines run as root; GitHub's runners do
		// not, and they use containers instead of this script.
		t.Skip("itservers.sh needs root: it installs Debian packages and starts PostgreSQL as user postgres")
	}
	dir, err := os.MkdirTemp("/tmp", "itservers-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("env file: %v", err)
	}
	vars := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := regexp.MustCompile(`^export (IT_[A-Z_]+)='([^']*)'$`)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("env file line %q is not export IT_X='value'", sc.Text())
		}
		vars[m[1]] = m[2]
	}
	return vars
}

func pids(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	for _, s := range []string{"postgres", "clickhouse", "mqtt", "kafka"} {
		b, err := os.ReadFile(filepath.Join(dir, s+".pid"))
		if err == nil {
			got[s] = strings.TrimSpace(string(b))
		}
	}
	return got
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// TestStartRestartStop starts all four servers, checks the env file and
// that each listens, restarts them with a second start (which fetches no
// Kafka artifacts: they are cached), and stops them twice.
func TestStartRestartStop(t *testing.T) {
	dir := stateDir(t)
	p := freePorts(t, 6)
	env := []string{
		"IT_STATE_DIR=" + dir,
		fmt.Sprintf("IT_PG_PORT=%d", p[0]),
		fmt.Sprintf("IT_CH_TCP_PORT=%d", p[1]),
		fmt.Sprintf("IT_CH_HTTP_PORT=%d", p[2]),
		fmt.Sprintf("IT_MQTT_PORT=%d", p[3]),
		fmt.Sprintf("IT_KAFKA_PORT=%d", p[4]),
		fmt.Sprintf("IT_KAFKA_CONTROLLER_PORT=%d", p[5]),
	}
	envFile := filepath.Join(dir, "out", "it.env")
	t.Cleanup(func() { script(t, env, "stop") }) //nolint:errcheck // best effort after a failure

	_, stderr, err := script(t, env, "start", envFile)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"postgres ready on", "PostgreSQL) 15",
		"clickhouse ready on", "ClickHouse 18.16",
		"mosquitto ready on", "mosquitto version 2.",
		"kafka ready on", "Apache Kafka 4.", "KRaft",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("start log lacks %q:\n%s", want, stderr)
		}
	}

	vars := readEnvFile(t, envFile)
	want := map[string]string{
		"IT_POSTGRES_DSN":           fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p[0]),
		"IT_CLICKHOUSE_NATIVE_ADDR": fmt.Sprintf("127.0.0.1:%d", p[1]),
		"IT_CLICKHOUSE_HTTP_ADDR":   fmt.Sprintf("127.0.0.1:%d", p[2]),
		"IT_MQTT_URL":               fmt.Sprintf("tcp://127.0.0.1:%d", p[3]),
		"IT_KAFKA_BOOTSTRAP":        fmt.Sprintf("127.0.0.1:%d", p[4]),
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	if !regexp.MustCompile(`^Apache Kafka 4\.\d+\.\d+ \(commit [0-9a-f]+, KRaft`).MatchString(vars["IT_KAFKA_SERVER"]) ||
		!strings.HasPrefix(vars["IT_MQTT_SERVER"], "mosquitto version ") {
		t.Errorf("IT_KAFKA_SERVER = %q, IT_MQTT_SERVER = %q; want Apache Kafka 4.x.y (commit ..., KRaft ...), mosquitto version ...",
			vars["IT_KAFKA_SERVER"], vars["IT_MQTT_SERVER"])
	}
	for i, port := range p {
		if err := dial(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Errorf("port %d (#%d) after start: %v", port, i, err)
		}
	}
	status, _, err := script(t, env, "status")
	if err != nil || strings.Count(status, ": running (pid ") != 4 {
		t.Errorf("status = %q, %v; want 4 running", status, err)
	}

	// A second start restarts everything with new processes.
	before := pids(t, dir)
	if _, stderr, err := script(t, env, "start", envFile); err != nil {
		t.Fatalf("second start: %v\n%s", err, stderr)
	} else if strings.Contains(stderr, "fetching ") || !strings.Contains(stderr, "kafka ready on") {
		t.Errorf("second start fetched Kafka again or did not start it:\n%s", stderr)
	}
	after := pids(t, dir)
	for s, pid := range before {
		if after[s] == "" || after[s] == pid {
			t.Errorf("%s pid %q after restart, was %q; want a new process", s, after[s], pid)
		}
	}

	for i := range 2 {
		if _, stderr, err := script(t, env, "stop"); err != nil {
			t.Fatalf("stop #%d: %v\n%s", i+1, err, stderr)
		}
	}
	if left := pids(t, dir); len(left) != 0 {
		t.Errorf("pid files left after stop: %v", left)
	}
	for i, port := range p {
		if err := dial(fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			t.Errorf("port %d (#%d) still accepts connections after stop", port, i)
		}
	}
}

// TestStartRefusesBusyPort checks every port before starting anything and
// names the variable that moves a busy one.
func TestStartRefusesBusyPort(t *testing.T) {
	dir := stateDir(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	p := freePorts(t, 5)
	env := []string{
		"IT_STATE_DIR=" + dir,
		fmt.Sprintf("IT_PG_PORT=%d", p[0]),
		fmt.Sprintf("IT_CH_TCP_PORT=%d", p[1]),
		fmt.Sprintf("IT_CH_HTTP_PORT=%d", p[2]),
		fmt.Sprintf("IT_MQTT_PORT=%d", p[3]),
		fmt.Sprintf("IT_KAFKA_PORT=%d", port),
		fmt.Sprintf("IT_KAFKA_CONTROLLER_PORT=%d", p[4]),
	}
	_, stderr, err := script(t, env, "start", filepath.Join(dir, "env"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("start with a busy port: %v, want exit status 1\n%s", err, stderr)
	}
	want := fmt.Sprintf("itservers: error: kafka: port 127.0.0.1:%d is already in use by another process; choose another with IT_KAFKA_PORT=PORT", port)
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	if strings.Contains(stderr, "ready on") {
		t.Errorf("a server started before the port check:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "env")); !os.IsNotExist(err) {
		t.Errorf("env file written after a failed start: %v", err)
	}
}

// TestUsage names the commands on a wrong one.
func TestUsage(t *testing.T) {
	_, stderr, err := script(t, nil, "launch")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("unknown command: %v, want exit status 1", err)
	}
	if !strings.Contains(stderr, "usage: itservers.sh start [ENVFILE] | stop | status | run CMD [ARG...]") {
		t.Errorf("stderr = %q, want the usage", stderr)
	}
}
