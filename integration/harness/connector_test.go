package harness

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func TestImageEnv(t *testing.T) {
	for service, want := range map[string]string{
		"sink-http":       "IT_SINK_HTTP_IMAGE",
		"source-postgres": "IT_SOURCE_POSTGRES_IMAGE",
		"bridge-kafka":    "IT_BRIDGE_KAFKA_IMAGE",
	} {
		if got := ImageEnv(service); got != want {
			t.Errorf("ImageEnv(%q) = %q, want %q", service, got, want)
		}
	}
}

// TestProcessEnvIsExactlyTheSpec: the process gets the spec's environment
// plus PATH and HOME, nothing else of the test process.
func TestProcessEnvIsExactlyTheSpec(t *testing.T) {
	t.Setenv("IT_SHOULD_NOT_LEAK", "1")
	p := newProcessRunner("/bin/true", map[string]string{"B": "2", "A": "1"}, nil)
	want := []string{"A=1", "B=2", "HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH")}
	slices.Sort(want)
	if !slices.Equal(p.env, want) {
		t.Errorf("env = %q, want %q", p.env, want)
	}
	p = newProcessRunner("/bin/true", map[string]string{"PATH": "/x"}, nil)
	if !slices.Contains(p.env, "PATH=/x") || slices.Contains(p.env, "PATH="+os.Getenv("PATH")) {
		t.Errorf("env = %q: the spec's PATH must win", p.env)
	}
}

func TestMetricsHostPort(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:9100": "127.0.0.1:9100",
		":9090":          "127.0.0.1:9090",
		"0.0.0.0:9090":   "127.0.0.1:9090",
		"[::]:9090":      "127.0.0.1:9090",
		"127.0.0.1:0":    "",
		"":               "",
	} {
		if got := metricsHostPort(addr); got != want {
			t.Errorf("metricsHostPort(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestContainerFilesAreTheEnvsFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := containerFiles(map[string]string{
		"WEBHOOK_SECRET_FILE": secret, // copied
		"DATA_DIR":            dir,    // a directory: not copied
		"TARGET_URL":          "http://127.0.0.1:1/",
		"RELATIVE":            "secret",
	})
	if len(files) != 1 || files[0].HostFilePath != secret || files[0].ContainerFilePath != secret || files[0].FileMode != 0o644 {
		t.Errorf("files = %+v, want %s copied to the same path, mode 0644", files, secret)
	}
}

func TestImageWithoutDocker(t *testing.T) {
	t.Setenv(EnvRequire, "1")
	var r recorder
	imageUnavailable(&r, "IT_SINK_HTTP_IMAGE", "danube-connect/sink-http:dev", "sink-http", errors.New("no socket"))
	want := "harness: IT_SINK_HTTP_IMAGE=danube-connect/sink-http:dev names the image of sink-http to test, but Docker is unavailable (CI_REQUIRE_INTEGRATION=1, so this fails): provide a healthy Docker engine or unset IT_SINK_HTTP_IMAGE; testcontainers: no socket"
	if r.fatal != want || r.skipped != "" {
		t.Errorf("fatal %q, skipped %q; want fatal %q", r.fatal, r.skipped, want)
	}
	t.Setenv(EnvRequire, "")
	r = recorder{}
	imageUnavailable(&r, "IT_DANUBE_IMAGE", DanubeImage, "the Danube broker", errors.New("no socket"))
	want = "harness: IT_DANUBE_IMAGE=" + DanubeImage + " needs a healthy Docker engine; testcontainers: no socket"
	if r.skipped != want || r.fatal != "" {
		t.Errorf("skipped %q, fatal %q; want skipped %q", r.skipped, r.fatal, want)
	}
}

// TestConnectorHelpAndBadConfig runs sink-http with arguments and a bad
// environment: --help exits 0, an invalid configuration exits 2 naming the
// missing variable.
func TestConnectorHelpAndBadConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	help := StartConnector(t, ConnectorSpec{Service: "sink-http", Args: []string{"--help"}})
	if err := help.Wait(ctx); err != nil {
		t.Fatalf("--help: %v\n%s", err, help.Logs())
	}
	if !strings.Contains(help.Logs(), "TARGET_URL") {
		t.Errorf("--help does not list TARGET_URL:\n%s", help.Logs())
	}
	bad := StartConnector(t, ConnectorSpec{Service: "sink-http", Env: map[string]string{"TARGET_URL": "ftp://x"}})
	var exit *ExitError
	if err := bad.Wait(ctx); !errors.As(err, &exit) || exit.Code != 2 || exit.Signal() != 0 {
		t.Fatalf("bad config: %v, want exit status 2\n%s", err, bad.Logs())
	}
	if !strings.Contains(bad.Logs(), "DANUBE_SERVICE_URL: required, but not set") {
		t.Errorf("bad config output:\n%s", bad.Logs())
	}
	if err := bad.WaitReady(ctx); err == nil || !strings.HasSuffix(err.Error(), "exited before it was ready: exit status 2") {
		t.Errorf("WaitReady after the exit: %v", err)
	}
	if bad.Running() {
		t.Error("Running after the exit")
	}
}

// TestConnectorLifecycle runs sink-http against Danube (the broker IT_DANUBE_*
// names, else the development broker) with a secret in a *_FILE: ready,
// delivering, scraped; SIGTERM exits 0; a restart delivers again; SIGKILL
// reports 137; Wait and Running agree. With IT_SINK_HTTP_IMAGE set it tests
// the image instead of the binary.
func TestConnectorLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ep := Danube(t)
	topic := "/default/" + Name(t)
	signed := make(chan string, 1000)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		signed <- r.Header.Get("Webhook-Signature")
	}))
	defer rc.Close()
	secret := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secret, []byte("a-test-secret-of-32-bytes-length"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DANUBE_SERVICE_URL": ep.URL, "DANUBE_TOPIC": topic, "SUBSCRIPTION_NAME": "lifecycle",
		"CONNECTOR_NAME": "lifecycle-1", "TARGET_URL": rc.URL, "WEBHOOK_SECRET_FILE": secret,
		"LOG_FORMAT": "text", "SHUTDOWN_TIMEOUT_MS": "5000",
	}
	if ep.AdminURL != "" {
		env["DANUBE_ADMIN_URL"] = ep.AdminURL
	}
	c := StartConnector(t, ConnectorSpec{Service: "sink-http", Env: env})
	if !strings.HasPrefix(c.MetricsURL(), "http://127.0.0.1:") || !strings.HasSuffix(c.ReadyzURL(), "/readyz") {
		t.Fatalf("MetricsURL %q, ReadyzURL %q: want a free loopback port", c.MetricsURL(), c.ReadyzURL())
	}

	client, err := danube.NewClient(ep.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "p-" + Name(t), Dispatch: danube.Reliable})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// delivered waits until a message sent now reaches the receiver, signed.
	delivered := func(what string) {
		t.Helper()
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if _, err := prod.Send(ctx, danube.ProducerMessage{Payload: []byte(what)}); err != nil {
			t.Fatal(err)
		}
		select {
		case sig := <-signed:
			if !strings.HasPrefix(sig, "v1,") {
				t.Fatalf("%s: Webhook-Signature %q; the secret file was not read", what, sig)
			}
		case <-ctx.Done():
			t.Fatalf("%s: nothing delivered\n%s", what, c.Logs())
		}
	}
	delivered("first run")

	resp, err := probeHTTP.Get(c.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "# TYPE") {
		t.Errorf("GET %s: %s\n%.300s", c.MetricsURL(), resp.Status, body)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v, want a clean exit\n%s", err, c.Logs())
	}
	if c.Running() {
		t.Fatal("Running after Stop")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	delivered("second run")

	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *ExitError
	if err := c.Wait(ctx); !errors.As(err, &exit) || exit.Code != 137 || exit.Signal() != syscall.SIGKILL {
		t.Fatalf("after Kill: %v, want exit status 137 (killed)", err)
	}
	if err := c.Kill(); err != nil {
		t.Errorf("Kill after the exit: %v", err)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	delivered("after the kill")
	t.Logf("%s: stopped, restarted, killed and restarted", c)
}

// TestConnectorImages checks every connector image named by an
// IT_<SERVICE>_IMAGE variable (GitHub's images and release workflows set one,
// .github/scripts/contract-test.sh): the harness runs a container of it, not
// the binary, and the image answers --help with its variables, exit 0. With
// no image named it is skipped; TestConnectorLifecycle and the suites then
// run the binaries.
func TestConnectorImages(t *testing.T) {
	dirs, err := os.ReadDir("../../services")
	if err != nil {
		t.Fatal(err)
	}
	var tested int
	for _, d := range dirs {
		service := d.Name()
		image := os.Getenv(ImageEnv(service))
		if _, err := os.Stat(filepath.Join("../../services", service, "main.go")); err != nil || image == "" {
			continue
		}
		tested++
		t.Run(service, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := StartConnector(t, ConnectorSpec{Service: service, Args: []string{"--help"}})
			if !strings.HasPrefix(c.String(), service+" (container "+image+" ") {
				t.Errorf("connector %s: want a container of %s", c, image)
			}
			if err := c.Wait(ctx); err != nil || !strings.Contains(c.Logs(), "DANUBE_SERVICE_URL") {
				t.Errorf("--help in %s: %v, want exit 0 and the variables\n%s", image, err, c.Logs())
			}
		})
	}
	if tested == 0 {
		t.Skip("no IT_<SERVICE>_IMAGE is set: images are tested where they are built (GitHub's images and release workflows, .github/scripts/contract-test.sh)")
	}
}

// TestDanubeAdminURLFromEnv: IT_DANUBE_ADMIN_URL comes with IT_DANUBE_URL's
// endpoint and is checked the same way.
func TestDanubeAdminURLFromEnv(t *testing.T) {
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Setenv(EnvDanubeURL, b.URL())
	t.Setenv(EnvDanubeAdminURL, b.URL()) // any reachable http URL
	ep := Danube(t)
	if ep.AdminURL != b.URL() || ep.Source != EnvDanubeURL+"="+b.URL()+", "+EnvDanubeAdminURL+"="+b.URL() {
		t.Errorf("endpoint %+v: want the admin URL from %s", ep, EnvDanubeAdminURL)
	}
	t.Setenv(EnvDanubeAdminURL, "127.0.0.1:1")
	if _, err := danubeFromEnv(b.URL()); err == nil || err.Error() != `IT_DANUBE_ADMIN_URL: "127.0.0.1:1" is not an http(s)://host:port service URL` {
		t.Errorf("bad admin URL: %v", err)
	}
}

// TestDanubeImage runs the official broker image as Danube(t) does with
// IT_DANUBE_IMAGE (GitHub's real-broker job): a message round trip through
// it, and its admin port listening.
func TestDanubeImage(t *testing.T) {
	image := os.Getenv(EnvDanubeImage)
	if image == "" || os.Getenv(EnvDanubeURL) != "" {
		t.Skipf("%s is not set (or %s overrides it): the broker container runs in GitHub's real-broker job", EnvDanubeImage, EnvDanubeURL)
	}
	ep := Danube(t)
	if ep.Broker != nil || ep.Source != "container "+image || !strings.HasPrefix(ep.URL, "http://127.0.0.1:") || !strings.HasPrefix(ep.AdminURL, "http://127.0.0.1:") {
		t.Fatalf("endpoint %+v: want a container of %s on loopback", ep, image)
	}
	if err := checkServiceURL(EnvDanubeAdminURL, ep.AdminURL); err != nil {
		t.Error(err)
	}
	roundTrip(t, ep)
	if again := Danube(t); again != ep {
		t.Errorf("second Danube(t) = %+v, want the shared container %+v", again, ep)
	}
}
