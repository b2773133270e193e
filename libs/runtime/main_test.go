package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesink"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func TestMain(m *testing.M) {
	// Re-executed as a connector process by the signal tests.
	if os.Getenv("RUNTIME_TEST_MAIN_SINK") == "1" {
		os.Args = os.Args[:1]
		runtime.MainSink(filesink.New)
	}
	goleak.VerifyTestMain(m)
}

func runMain(t *testing.T, args, environ []string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cfg := &filesink.Config{}
	code := runtime.Main(context.Background(), args, environ, &out, &errOut, cfg, &cfg.Common,
		func(context.Context, ...runtime.Option) error { return errors.New("must not run") })
	return code, out.String(), errOut.String()
}

func TestMainHelpListsEveryVariable(t *testing.T) {
	code, out, _ := runMain(t, []string{"--help"}, []string{})
	if code != runtime.ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"DANUBE_SERVICE_URL             string          (required)   Danube broker URL, http://host:6650 or https://host:6650\n",
		"DANUBE_TOKEN_FILE              string          -            file holding the JWT, re-read when it changes (rotation without restart)\n",
		"SUBSCRIPTION_TYPE              string          Exclusive    Exclusive, Shared, Failover or KeyShared\n",
		"RETRY_POLICY                   string          exponential  backoff growth between retries: linear or exponential (every wait is jittered into [d/2, d])\n",
		"BATCH_TIMEOUT_MS               milliseconds    1000         flush a partial batch this long after its first record\n",
		"LOG_FORMAT                     string          json         json or text\n",
		"OUTPUT_PATH                    string          (required)   JSON-lines file the messages are appended to\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

var validEnv = []string{
	"DANUBE_SERVICE_URL=http://127.0.0.1:1", "CONNECTOR_NAME=c", "DANUBE_TOPIC=/default/t",
	"SUBSCRIPTION_NAME=s", "OUTPUT_PATH=/tmp/x", "DANUBE_TOKEN=supersecret",
}

func TestMainPrintConfigRedacts(t *testing.T) {
	code, out, errOut := runMain(t, []string{"--print-config"}, validEnv)
	if code != runtime.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "supersecret") || !strings.Contains(out, "DANUBE_TOKEN=[REDACTED]\n") ||
		!strings.Contains(out, "SUBSCRIPTION_TYPE=Exclusive\n") || !strings.Contains(out, "RETRY_POLICY=exponential\n") {
		t.Fatalf("print-config:\n%s", out)
	}
}

func TestMainReportsAllConfigErrors(t *testing.T) {
	code, _, errOut := runMain(t, nil, []string{"DANUBE_SERVICE_URL=tcp://x", "BATCH_SIZE=0", "SUBSCRIPTION_TYPE=fanout",
		"RETRY_POLICY=fib", "LOG_FORMAT=xml", "DANUBE_TOPIC=/default/t", "SUBSCRIPTION_NAME=s", "OUTPUT_PATH=/x", "CONNECTOR_NAME=c"})
	want := `invalid configuration (5 problems):
  RETRY_POLICY="fib": want "linear" or "exponential"
  LOG_FORMAT="xml": want "json" or "text"
  SUBSCRIPTION_TYPE="fanout": want Exclusive, Shared, Failover or KeyShared
  DANUBE_SERVICE_URL="tcp://x": want http://host:port or https://host:port
  BATCH_SIZE="0": must be 1 to 10000 (the broker's largest window)
`
	if code != runtime.ExitConfig || errOut != want {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	code, _, errOut = runMain(t, nil, []string{"DANUBE_SERVICE_URL=tcp://x", "BATCH_SIZE=0", "SUBSCRIPTION_TYPE=fanout",
		"DANUBE_TOPIC=default/t", "SUBSCRIPTION_NAME=s", "OUTPUT_PATH=/x"})
	want = `invalid configuration (5 problems):
  CONNECTOR_NAME: required, but not set
  SUBSCRIPTION_TYPE="fanout": want Exclusive, Shared, Failover or KeyShared
  DANUBE_SERVICE_URL="tcp://x": want http://host:port or https://host:port
  BATCH_SIZE="0": must be 1 to 10000 (the broker's largest window)
  DANUBE_TOPIC="default/t": want /namespace/topic
`
	if code != runtime.ExitConfig || errOut != want {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if code, _, errOut = runMain(t, []string{"--verbose"}, nil); code != runtime.ExitConfig || !strings.Contains(errOut, `unknown argument "--verbose"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestMainDeadLetterPolicyNeedsTopic(t *testing.T) {
	code, _, errOut := runMain(t, nil, append([]string{"RETRY_EXHAUSTED=dlq", "LIVENESS_TIMEOUT_MS=-1"}, validEnv...))
	want := `invalid configuration (2 problems):
  LIVENESS_TIMEOUT_MS="-1": want a non-negative integer number of milliseconds
  DLQ_TOPIC: required when RETRY_EXHAUSTED=dlq
`
	if code != runtime.ExitConfig || errOut != want {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if code, _, errOut = runMain(t, []string{"--print-config"}, append([]string{"RETRY_EXHAUSTED=dlq", "DLQ_TOPIC=/default/dead"}, validEnv...)); code != runtime.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// The real process: SIGTERM drains and exits 0; a fatal error exits 1.
func TestMainProcessExitCodes(t *testing.T) {
	b := runtimetest.StartBroker(t)
	runtimetest.CreateTopic(t, b, "/default/proc")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	start := func(extra ...string) (*exec.Cmd, *runtimetest.SyncBuffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RUNTIME_TEST_MAIN_SINK=1", "DANUBE_SERVICE_URL="+b.URL(), "CONNECTOR_NAME=proc",
			"DANUBE_TOPIC=/default/proc", "SUBSCRIPTION_NAME=proc", "OUTPUT_PATH="+out, "METRICS_ADDR=127.0.0.1:0",
			"BATCH_SIZE=100", "BATCH_TIMEOUT_MS=3600000", "BATCH_IDLE_MS=0", "RETRY_BACKOFF_MS=5", "LOG_FORMAT=text")
		cmd.Env = append(cmd.Env, extra...)
		stderr := &runtimetest.SyncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, stderr
	}
	waitLog := func(stderr *runtimetest.SyncBuffer, cmd *exec.Cmd, what string) {
		deadline := time.Now().Add(runtimetest.Timeout)
		for !strings.Contains(stderr.String(), what) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("no %q in:\n%s", what, stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	cmd, stderr := start()
	waitLog(stderr, cmd, "sink started")
	// The connector logs through the runtime's logger (LOG_FORMAT=text, tagged with its name).
	waitLog(stderr, cmd, `level=INFO msg="appending messages" connector=proc path=`+out+"\n")
	waitLog(stderr, cmd, "serving /metrics")
	runtimetest.Produce(t, b, "/default/proc", runtimetest.Payloads(`{"a":1}`, `{"a":2}`)...)
	// Wait until both messages sit in the pending batch (size 100, an hour, no idle cut: only the drain flushes it).
	addr := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(stderr.String())
	if addr == nil {
		t.Fatalf("no metrics address in:\n%s", stderr)
	}
	deadline := time.Now().Add(runtimetest.Timeout)
	for !strings.Contains(scrape(t, "http://"+addr[1]+"/metrics"), `connector_records_received_total{connector="proc"} 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("sink never received 2 messages:\n%s", stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b, _ := os.ReadFile(out); len(b) > 0 {
		t.Fatalf("written before the drain: %q", b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr)
	}
	if got, _ := os.ReadFile(out); string(got) != "{\"a\":1}\n{\"a\":2}\n" {
		t.Fatalf("drained output %q\n%s", got, stderr)
	}

	cmd, stderr = start("RETRY_EXHAUSTED=stop", "BATCH_SIZE=1", "MAX_RETRIES=0")
	waitLog(stderr, cmd, "sink started")
	runtimetest.Produce(t, b, "/default/proc", runtimetest.Payloads("not json")...)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != runtime.ExitFatal {
		t.Fatalf("want exit %d, got %v\n%s", runtime.ExitFatal, err, stderr)
	}
	if !strings.Contains(stderr.String(), "RETRY_EXHAUSTED=stop") {
		t.Fatalf("stderr:\n%s", stderr)
	}
}

func scrape(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Without GOMEMLIMIT DefaultMemoryLimit sets the limit; with it, the operator's value stands.
func TestDefaultMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	runtime.DefaultMemoryLimit(40 << 20)
	if got := debug.SetMemoryLimit(-1); got != 40<<20 {
		t.Fatalf("limit without GOMEMLIMIT = %d, want %d", got, 40<<20)
	}
	t.Setenv("GOMEMLIMIT", "100MiB") // read by the Go runtime at start; here it only has to be set
	debug.SetMemoryLimit(100 << 20)
	runtime.DefaultMemoryLimit(40 << 20)
	if got := debug.SetMemoryLimit(-1); got != 100<<20 {
		t.Fatalf("limit with GOMEMLIMIT=100MiB = %d, want it kept", got)
	}
}
