package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// modulePath is the Go module of the services; a connector's main package is
// modulePath/services/<service>.
const modulePath = "github.com/danube-messaging/danube-connect-go"

// connectorStopTimeout bounds Kill, and Stop when its context has no
// deadline: a connector stops within its SHUTDOWN_TIMEOUT_MS (default 10 s).
const connectorStopTimeout = 30 * time.Second

// ConnectorSpec says which connector service to run and how.
type ConnectorSpec struct {
	// Service is the service's directory under services/: "sink-http",
	// "source-mqtt", ...
	Service string
	// Env is the connector's whole environment, as a deployment sets it:
	// nothing is inherited from the test process (a process also gets PATH
	// and HOME). METRICS_ADDR is set to a free loopback port unless Env
	// has it. A value that is an absolute path of an existing file (a
	// *_FILE secret, a TLS certificate) is copied into a container at the
	// same path.
	Env map[string]string
	// Args are the command-line arguments, for example --help; none by
	// default, as in a deployment.
	Args []string
}

// ImageEnv is the variable that names the container image to test instead
// of the binary of service: IT_<SERVICE>_IMAGE, for example
// IT_SINK_HTTP_IMAGE for sink-http.
func ImageEnv(service string) string {
	return "IT_" + strings.ToUpper(strings.ReplaceAll(service, "-", "_")) + "_IMAGE"
}

// Connector is one connector service under test, running as a process of
// its binary or, when IT_<SERVICE>_IMAGE names an image, as a container of
// that image: the artefact that gets promoted. Both behave the same towards
// the test: the container shares the host's network, so loopback addresses
// of in-process brokers and local servers reach it, and its own ports are
// on the host's loopback.
//
// A Connector is killed and removed when its test ends; its output is
// logged if the test failed. Its methods are safe for concurrent use.
type Connector struct {
	service string
	metrics string // host:port of /metrics, /readyz; "" when disabled
	run     runner
}

// runner is a way of running a connector: a process or a container.
type runner interface {
	start(ctx context.Context) error
	kill(ctx context.Context) error
	stop(ctx context.Context) error
	wait(ctx context.Context) error
	running() bool
	logs(ctx context.Context) string
	remove(ctx context.Context) error
	String() string
}

// StartConnector starts spec.Service and returns at once (see
// [Connector.WaitReady]). It builds the service's binary on first use in the
// test binary, or runs the image that IT_<SERVICE>_IMAGE names with
// testcontainers-go. With an image named but no healthy Docker engine, the
// test is skipped, or fails under CI_REQUIRE_INTEGRATION=1.
func StartConnector(t testing.TB, spec ConnectorSpec) *Connector {
	t.Helper()
	if !serviceName.MatchString(spec.Service) {
		t.Fatalf("harness: connector service %q is not a directory name under services/", spec.Service)
	}
	env := maps.Clone(spec.Env)
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["METRICS_ADDR"]; !ok {
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatalf("harness: a port for METRICS_ADDR: %v", err)
		}
		env["METRICS_ADDR"] = addr
	}
	c := &Connector{service: spec.Service, metrics: metricsHostPort(env["METRICS_ADDR"])}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if image := os.Getenv(ImageEnv(spec.Service)); image != "" {
		if err := dockerHealthy(); err != nil {
			imageUnavailable(t, ImageEnv(spec.Service), image, spec.Service, err)
			return nil
		}
		r, err := newContainerRunner(ctx, image, env, spec.Args)
		if r != nil {
			c.run = r
			t.Cleanup(func() { c.cleanup(t) })
		}
		if err != nil {
			t.Fatalf("harness: %s: %v", spec.Service, err)
		}
	} else {
		bin, err := serviceBinary(spec.Service)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		c.run = newProcessRunner(bin, env, spec.Args)
		if err := c.run.start(ctx); err != nil {
			t.Fatalf("harness: start %s: %v", c.run, err)
		}
		t.Cleanup(func() { c.cleanup(t) })
	}
	t.Logf("harness: %s runs as %s", spec.Service, c.run)
	return c
}

// imageUnavailable ends a test whose image (a connector's, the broker's) cannot run for want of
// Docker: a skip, or a failure under CI_REQUIRE_INTEGRATION=1 so that a CI
// run meant to test the image cannot pass without it.
func imageUnavailable(t reporter, envVar, image, what string, dockerErr error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("harness: %s=%s names the image of %s to test, but Docker is unavailable (%s=1, so this fails): provide a healthy Docker engine or unset %s; testcontainers: %v",
			envVar, image, what, EnvRequire, envVar, dockerErr)
		return
	}
	t.Skipf("harness: %s=%s needs a healthy Docker engine; testcontainers: %v", envVar, image, dockerErr)
}

// cleanup kills the connector, logs its output if the test failed and
// removes its container.
func (c *Connector) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), connectorStopTimeout)
	defer cancel()
	if err := c.run.kill(ctx); err != nil {
		t.Errorf("harness: kill %s: %v", c.run, err)
	}
	if t.Failed() {
		t.Logf("harness: output of %s:\n%s", c.run, c.run.logs(ctx))
	}
	if err := c.run.remove(ctx); err != nil {
		t.Errorf("harness: remove %s: %v", c.run, err)
	}
}

// String says what runs: the binary's path or the container's image.
func (c *Connector) String() string { return c.service + " (" + c.run.String() + ")" }

// Kill ends the connector at once with SIGKILL (a container kill), the way a
// crash or an OOM kill ends it, and waits until it is gone. Killing a
// connector that has exited does nothing.
func (c *Connector) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), connectorStopTimeout)
	defer cancel()
	return c.run.kill(ctx)
}

// Stop asks the connector to shut down with SIGTERM (a container stop) and
// waits until it exits, as an orchestrator does; it kills the connector when
// ctx ends first (the container's stop timeout is ctx's deadline, 30 s
// without one). It returns the run's exit error: nil for status 0.
func (c *Connector) Stop(ctx context.Context) error { return c.run.stop(ctx) }

// Restart stops the connector if it runs (see [Connector.Stop]; its exit
// status is not reported) and starts it again with the same environment and
// arguments: after a Kill, the restart of a crashed service.
func (c *Connector) Restart(ctx context.Context) error {
	if c.run.running() {
		var exit *ExitError
		if err := c.run.stop(ctx); err != nil && !errors.As(err, &exit) {
			return err
		}
	}
	return c.run.start(ctx)
}

// Wait waits until the current run exits and returns its exit error: nil
// for status 0, an [*ExitError] otherwise, or ctx's error if ctx ends first.
func (c *Connector) Wait(ctx context.Context) error { return c.run.wait(ctx) }

// Running reports whether the connector runs.
func (c *Connector) Running() bool { return c.run.running() }

// Logs returns what the connector wrote to stdout and stderr so far, over
// all its runs.
func (c *Connector) Logs() string {
	ctx, cancel := context.WithTimeout(context.Background(), connectorStopTimeout)
	defer cancel()
	return c.run.logs(ctx)
}

// MetricsURL is the connector's Prometheus endpoint, http://host:port/metrics,
// or "" when METRICS_ADDR disables it or names no fixed port.
func (c *Connector) MetricsURL() string { return c.url("/metrics") }

// ReadyzURL is the connector's readiness endpoint, http://host:port/readyz,
// or "" like [Connector.MetricsURL].
func (c *Connector) ReadyzURL() string { return c.url("/readyz") }

func (c *Connector) url(path string) string {
	if c.metrics == "" {
		return ""
	}
	return "http://" + c.metrics + path
}

// probeHTTP keeps no idle connections, so that none outlives a test and trips
// goleak.
var probeHTTP = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Readiness returns the status and body of the connector's /readyz now.
func (c *Connector) Readiness(ctx context.Context) (status int, body string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ReadyzURL(), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := probeHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitReady waits until the connector's /readyz answers 200. It fails at once
// when the connector exits, and when ctx ends.
func (c *Connector) WaitReady(ctx context.Context) error {
	u := c.ReadyzURL()
	if u == "" {
		return fmt.Errorf("%s: METRICS_ADDR names no fixed port, so readiness cannot be probed", c)
	}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := probeHTTP.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		last = err
		if !c.run.running() {
			if err := c.run.wait(ctx); err != nil {
				return fmt.Errorf("%s exited before it was ready: %w", c, err)
			}
			return fmt.Errorf("%s exited with status 0 before it was ready", c)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last probe: %w)", c, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ExitError is a run of a connector that ended with a non-zero status.
type ExitError struct {
	// Code is the exit status; 128+n when signal n ended the run, as shells
	// and Docker report it (137 after SIGKILL).
	Code int
}

func (e *ExitError) Error() string {
	if s := e.Signal(); s != 0 {
		return fmt.Sprintf("exit status %d (%v)", e.Code, s)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Signal is the signal that ended the run, or 0 when it exited.
func (e *ExitError) Signal() syscall.Signal {
	if e.Code > 128 && e.Code < 128+65 {
		return syscall.Signal(e.Code - 128)
	}
	return 0
}

// exitError converts an exit status to the error Wait returns.
func exitError(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// FreeAddr returns 127.0.0.1:port of a port free right now, for a server a test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// freeLoopbackAddr returns 127.0.0.1:port of a port free right now, from 30000–32767: below
// Linux's ephemeral range (32768 up), so that no server a test starts on port 0, nor an outgoing
// connection, takes it while the server it was chosen for is down (a restart test), and above the
// fixed ports of tools/itservers.
func freeLoopbackAddr() (string, error) {
	const lo, n = 30000, 2768
	var err error
	for range 100 {
		var l net.Listener
		if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(n)))); err == nil {
			defer l.Close()
			return l.Addr().String(), nil
		}
	}
	return "", fmt.Errorf("no free port in %d-%d: %w", lo, lo+n-1, err)
}

// metricsHostPort is where the host reaches a server listening on addr, or
// "" when addr is empty or has no fixed port.
func metricsHostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// The binaries built by this test binary, per service.
var builds struct {
	mu sync.Mutex
	m  map[string]*serviceBuild
}

type serviceBuild struct {
	once sync.Once
	path string
	err  error
}

// serviceBinary builds the service once per test binary. The binary lives in
// the user's cache directory under a name unique to the module's directory,
// replaced atomically, so that test binaries running at the same time never
// execute a half-written file and runs leave one binary per service behind.
func serviceBinary(service string) (string, error) {
	builds.mu.Lock()
	if builds.m == nil {
		builds.m = map[string]*serviceBuild{}
	}
	b := builds.m[service]
	if b == nil {
		b = &serviceBuild{}
		builds.m[service] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(service) })
	return b.path, b.err
}

func goBuild(service string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	modDir := filepath.Dir(strings.TrimSpace(string(out)))
	sum := sha256.Sum256([]byte(modDir))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "danube-connect-it", hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, service+".*.tmp")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename; left only by a failed build
	build := exec.Command("go", "build", "-o", tmp.Name(), modulePath+"/services/"+service)
	build.Dir = modDir
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", service, err, out)
	}
	bin := filepath.Join(dir, service)
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// processRunner runs the binary; one goroutine per run waits for the
// process, so that every state change is observed exactly once.
type processRunner struct {
	bin  string
	args []string
	env  []string
	out  runtimetest.SyncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run ended; err is then set
	err  error
	runs int
}

func newProcessRunner(bin string, env map[string]string, args []string) *processRunner {
	p := &processRunner{bin: bin, args: args}
	for _, k := range []string{"PATH", "HOME"} {
		if _, ok := env[k]; !ok {
			p.env = append(p.env, k+"="+os.Getenv(k))
		}
	}
	for k, v := range env {
		p.env = append(p.env, k+"="+v)
	}
	slices.Sort(p.env)
	return p
}

func (p *processRunner) String() string { return "process " + p.bin }

func (p *processRunner) start(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return errors.New("already running")
		}
	}
	if p.runs > 0 {
		fmt.Fprintf(&p.out, "--- harness: run %d ---\n", p.runs+1)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		return err
	}
	p.runs++
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code := ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			err = exitError(code)
		}
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// current returns the current run's process and its done channel.
func (p *processRunner) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

func (p *processRunner) running() bool {
	_, done := p.current()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (p *processRunner) signal(s os.Signal) error {
	cmd, _ := p.current()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (p *processRunner) wait(ctx context.Context) error {
	_, done := p.current()
	if done == nil {
		return errors.New("never started")
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *processRunner) kill(ctx context.Context) error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if err := p.wait(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

func (p *processRunner) stop(ctx context.Context) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectorStopTimeout)
		defer cancel()
	}
	err := p.wait(ctx)
	if ctx.Err() != nil {
		killCtx, cancel := context.WithTimeout(context.Background(), connectorStopTimeout)
		defer cancel()
		_ = p.kill(killCtx)
		return fmt.Errorf("no exit after SIGTERM, killed: %w", ctx.Err())
	}
	return err
}

func (p *processRunner) logs(context.Context) string { return p.out.String() }

func (p *processRunner) remove(context.Context) error { return nil }

// containerRunner runs the image with the host's network.
type containerRunner struct {
	image string
	c     *onceContainer
}

// onceContainer terminates its container once: at the end of its test, and
// again (doing nothing) when [Main] terminates every tracked container.
type onceContainer struct {
	*testcontainers.DockerContainer
	once sync.Once
	err  error
}

func (o *onceContainer) Terminate(ctx context.Context, opts ...testcontainers.TerminateOption) error {
	o.once.Do(func() { o.err = o.DockerContainer.Terminate(ctx, opts...) })
	return o.err
}

func newContainerRunner(ctx context.Context, image string, env map[string]string, args []string) (*containerRunner, error) {
	files := containerFiles(env)
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(env),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
	}
	if len(files) > 0 {
		opts = append(opts, testcontainers.WithFiles(files...))
	}
	if len(args) > 0 {
		opts = append(opts, testcontainers.WithCmd(args...))
	}
	c, err := testcontainers.Run(ctx, image, opts...)
	var r *containerRunner
	if c != nil {
		r = &containerRunner{image: image, c: &onceContainer{DockerContainer: c}}
		track(r.c)
	}
	if err != nil {
		return r, fmt.Errorf("run container %s: %w", image, err)
	}
	return r, nil
}

// containerFiles are the files env points to (absolute paths of regular
// files: *_FILE secrets, TLS files), copied into the container at the same
// paths and readable by the image's non-root user whatever their mode on the
// host: they are test fixtures.
func containerFiles(env map[string]string) []testcontainers.ContainerFile {
	var files []testcontainers.ContainerFile
	for _, v := range env {
		if !filepath.IsAbs(v) {
			continue
		}
		if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
			files = append(files, testcontainers.ContainerFile{HostFilePath: v, ContainerFilePath: v, FileMode: 0o644})
		}
	}
	return files
}

func (r *containerRunner) String() string {
	return "container " + r.image + " " + shortID(r.c.GetContainerID())
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (r *containerRunner) start(ctx context.Context) error {
	if r.running() {
		return errors.New("already running")
	}
	return r.c.Start(ctx)
}

func (r *containerRunner) state(ctx context.Context) (*container.State, error) {
	return r.c.State(ctx)
}

func (r *containerRunner) running() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.state(ctx)
	return err == nil && s.Running
}

func (r *containerRunner) wait(ctx context.Context) error {
	for {
		s, err := r.state(ctx)
		if err != nil {
			return err
		}
		if !s.Running && !s.Restarting {
			return exitError(s.ExitCode)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *containerRunner) kill(ctx context.Context) error {
	if !r.running() {
		return nil
	}
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	if _, err := dc.ContainerKill(ctx, r.c.GetContainerID(), client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil && r.running() {
		return err // else it exited meanwhile
	}
	if err := r.wait(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

func (r *containerRunner) stop(ctx context.Context) error {
	// The engine kills the container after timeout; leave the API call
	// time to return before ctx ends.
	timeout := connectorStopTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d)-2*time.Second, time.Second)
	}
	if err := r.c.Stop(ctx, &timeout); err != nil {
		return err
	}
	return r.wait(ctx)
}

func (r *containerRunner) logs(ctx context.Context) string {
	rc, err := r.c.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(no logs: %v)", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil && !errors.Is(err, io.EOF) {
		return string(b) + fmt.Sprintf("\n(reading logs: %v)", err)
	}
	return string(b)
}

func (r *containerRunner) remove(ctx context.Context) error {
	return testcontainers.TerminateContainer(r.c, testcontainers.StopContext(ctx))
}
