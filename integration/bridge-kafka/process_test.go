package bridgekafka_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
)

// This file is the package's process helper: one bridge-kafka process per call, configured only by
// its environment. It is meant to give way to a shared harness helper for connector processes.

// connector is one bridge-kafka process; Restart starts a new one with the same environment.
type connector struct {
	t       *testing.T
	env     []string
	metrics string // host:port of /metrics, /healthz, /readyz

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer // output of every process so far
	done chan struct{} // closed when cmd exited
}

// startConnector starts the bridge with env (plus METRICS_ADDR on a free port) and waits until
// /readyz answers 200. The process is stopped (SIGTERM) at cleanup; its output is logged when the
// test failed.
func startConnector(t *testing.T, env ...string) *connector {
	t.Helper()
	c := launch(t, env...)
	c.WaitReady()
	return c
}

// launch starts the bridge as startConnector does, without waiting for it to be ready.
func launch(t *testing.T, env ...string) *connector {
	t.Helper()
	c := &connector{t: t, metrics: harness.FreeAddr(t), out: &bytes.Buffer{}}
	c.env = append(slices.Clone(env), "METRICS_ADDR="+c.metrics)
	c.start()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("bridge-kafka output:\n%s", c.Logs())
		}
	})
	return c
}

func (c *connector) start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := exec.Command(binary)
	cmd.Env = c.env // only the configuration: nothing inherited
	w := &lockedWriter{mu: &c.mu, b: c.out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Kill sends SIGKILL and waits until the process is gone.
func (c *connector) Kill() {
	c.t.Helper()
	_ = c.cmd.Process.Kill()
	<-c.done
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("bridge did not die of SIGKILL: %v", c.cmd.ProcessState)
	}
}

// Stop sends SIGTERM and expects a clean exit (status 0); safe to call twice.
func (c *connector) Stop() {
	c.t.Helper()
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		c.t.Errorf("bridge did not stop within 60 s of SIGTERM")
		return
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Errorf("bridge exited with %v after SIGTERM", c.cmd.ProcessState)
	}
}

// Wait waits up to 2 minutes for the process to exit by itself and returns its exit code.
func (c *connector) Wait() int {
	c.t.Helper()
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(2 * time.Minute):
		c.t.Fatalf("bridge still running after 2 minutes:\n%s", c.Logs())
		return 0
	}
}

// Restart starts a new process with the same environment and waits until it is ready.
func (c *connector) Restart() {
	c.t.Helper()
	c.start()
	c.WaitReady()
}

// Logs returns the output of every process so far.
func (c *connector) Logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// Ready reports /readyz: nil on 200, else the status and body, or the error of a request that
// took longer than 5 s.
func (c *connector) Ready() error { return c.ReadyWithin(5 * time.Second) }

// ReadyWithin is Ready with a request timeout, as a readiness probe has.
func (c *connector) ReadyWithin(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.metrics+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz %d: %s", resp.StatusCode, bytes.TrimSpace(body.Bytes()))
	}
	return nil
}

// WaitReady waits until /readyz answers 200 (or the process exits).
func (c *connector) WaitReady() {
	c.t.Helper()
	_ = c.waitReady(true)
}

// WaitNotReady waits until /readyz answers anything but 200 and returns that answer.
func (c *connector) WaitNotReady() error {
	c.t.Helper()
	return c.waitReady(false)
}

// waitNotReadyWith waits up to 2 minutes until /readyz answers anything but 200 with an answer
// ok accepts, and returns that answer.
func (c *connector) waitNotReadyWith(ok func(error) bool) error {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := c.WaitNotReady()
		if ok(err) {
			return err
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("/readyz did not give the expected answer within 2 minutes (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *connector) waitReady(want bool) error {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := c.Ready()
		if (err == nil) == want {
			return err
		}
		select {
		case <-c.done:
			c.t.Fatalf("bridge exited (%v) while waiting for readiness %v:\n%s", c.cmd.ProcessState, want, c.Logs())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("/readyz did not turn %v within 2 minutes (last: %v)", want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
