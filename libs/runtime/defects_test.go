package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesink"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// mainWith runs runtime.Main on a valid environment plus extra, with run in place of a connector.
func mainWith(t *testing.T, extra []string, run func(context.Context, ...runtime.Option) error) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cfg := &filesink.Config{}
	code := runtime.Main(context.Background(), nil, append(append([]string{}, validEnv...), extra...), &out, &errOut, cfg, &cfg.Common, run)
	return code, errOut.String()
}

func noRun(context.Context, ...runtime.Option) error { return nil }

// METRICS_ADDR= (set, empty) disables the metrics server as --help says, instead of taking :9090.
func TestEmptyMetricsAddrDisables(t *testing.T) {
	code, log := mainWith(t, []string{"METRICS_ADDR="}, noRun)
	if code != runtime.ExitOK || strings.Contains(log, "serving /metrics") || !strings.Contains(log, `"METRICS_ADDR":""`) {
		t.Fatalf("exit %d, log:\n%s", code, log)
	}
}

// A bad METRICS_ADDR and missing Danube TLS files are configuration problems, reported with the
// others at once (exit 2), not failures at run time.
func TestBadListenAddrAndMissingTLSFilesAreConfigProblems(t *testing.T) {
	code, log := mainWith(t, []string{"METRICS_ADDR=notanaddr", "DANUBE_CA_FILE=/nonexistent/ca.pem",
		"DANUBE_CERT_FILE=/nonexistent/cert.pem", "DANUBE_KEY_FILE=/nonexistent/key.pem", "BATCH_SIZE=0"}, noRun)
	want := `invalid configuration (5 problems):
  DANUBE_CA_FILE="/nonexistent/ca.pem": cannot read: no such file or directory
  DANUBE_CERT_FILE="/nonexistent/cert.pem": cannot read: no such file or directory
  DANUBE_KEY_FILE="/nonexistent/key.pem": cannot read: no such file or directory
  METRICS_ADDR="notanaddr": want host:port or :port
  BATCH_SIZE="0": must be 1 to 10000 (the broker's largest window)
`
	if code != runtime.ExitConfig || log != want {
		t.Fatalf("exit %d:\n%s\nwant:\n%s", code, log, want)
	}
}

// A variable that looks like a misspelt known one is warned about, naming the likely one.
func TestMisspeltVariablesAreWarned(t *testing.T) {
	code, log := mainWith(t, []string{"SUBSCRIPTON_TYPE=Shared", "DANUBE_TOKEN_FIEL=/run/token", "HOME=/root"}, noRun)
	for _, want := range []string{
		"SUBSCRIPTON_TYPE is not a variable of this connector; did you mean SUBSCRIPTION_TYPE?",
		"DANUBE_TOKEN_FIEL is not a variable of this connector; did you mean DANUBE_TOKEN_FILE?",
	} {
		if code != runtime.ExitOK || !strings.Contains(log, want) {
			t.Errorf("exit %d, log lacks %q:\n%s", code, want, log)
		}
	}
	if strings.Contains(log, "HOME") {
		t.Errorf("an unrelated variable was warned about:\n%s", log)
	}
}

// SIGTERM (the context ending) is logged at once, while the connector still finishes its work.
func TestStoppingIsLoggedAtOnce(t *testing.T) {
	var out, errOut runtimetest.SyncBuffer
	cfg := &filesink.Config{}
	ctx, cancel := context.WithCancel(context.Background())
	logged := make(chan bool, 1)
	done := make(chan int, 1)
	go func() {
		done <- runtime.Main(ctx, nil, validEnv, &out, &errOut, cfg, &cfg.Common, func(ctx context.Context, _ ...runtime.Option) error {
			<-ctx.Done()
			deadline := time.Now().Add(runtimetest.Timeout)
			for !strings.Contains(errOut.String(), "stopping: no new deliveries") && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			logged <- strings.Contains(errOut.String(), "stopping: no new deliveries")
			return nil
		})
	}()
	cancel()
	if !<-logged {
		t.Fatalf("no stopping line while the connector was still finishing:\n%s", errOut.String())
	}
	if code := <-done; code != runtime.ExitOK {
		t.Fatalf("exit %d", code)
	}
}

// After SIGTERM no new delivery attempt starts: a record in its retry wait is left unacked (Danube
// redelivers it) instead of being retried until SHUTDOWN_TIMEOUT_MS.
func TestNoRetryAfterStop(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/no-retry-after-stop"
	runtimetest.CreateTopic(t, b, topic)
	cfg := runtimetest.SinkConfig(b, "no-retry", topic)
	cfg.MaxRetries, cfg.ShutdownTimeout = -1, config.Millis(5*time.Second)
	cfg.RetryBackoff, cfg.RetryMaxBackoff = config.Millis(20*time.Millisecond), config.Millis(20*time.Millisecond)
	var calls atomic.Int64
	s := &countingDown{calls: &calls}
	r := runtimetest.StartSink(t, cfg, s)
	runtimetest.Produce(t, b, topic, runtimetest.Payloads("x")...)
	waitUntil(t, "the first attempts", func() bool { return calls.Load() >= 2 })
	atStop := calls.Load()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n > atStop+1 {
		t.Fatalf("%d attempts after the stop, want at most the one in progress", n-atStop)
	}
	if st, _ := b.SubscriptionStats(topic, cfg.SubscriptionName); st.Backlog == 0 && st.Unacked == 0 && st.PendingRedelivery == 0 {
		t.Fatalf("the failing record was settled: %+v", st)
	}
}

// countingDown fails every write retryably and counts the attempts.
type countingDown struct {
	runtime.SinkBase
	calls *atomic.Int64
}

func (c *countingDown) Process(context.Context, *runtime.SinkRecord) error {
	c.calls.Add(1)
	return runtime.Retryable(errors.New("503"))
}

// A misspelt required variable is named with the hint, not only "required, but not set".
func TestMisspeltRequiredVariableIsHinted(t *testing.T) {
	var env []string
	for _, kv := range validEnv {
		if !strings.HasPrefix(kv, "CONNECTOR_NAME=") {
			env = append(env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cfg := &filesink.Config{}
	code := runtime.Main(context.Background(), nil, append(env, "CONNECTRO_NAME=x"), &out, &errOut, cfg, &cfg.Common, noRun)
	want := "CONNECTOR_NAME: required, but not set (CONNECTRO_NAME is set: did you mean CONNECTOR_NAME?)"
	if code != runtime.ExitConfig || !strings.Contains(errOut.String(), want) {
		t.Fatalf("exit %d, output lacks %q:\n%s", code, want, errOut.String())
	}
}
