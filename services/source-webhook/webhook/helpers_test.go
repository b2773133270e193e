package webhook

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// loadConfig loads a Config from env (with the required runtime variables filled in) and replaces
// its runtime part with the suite's millisecond timers on broker b.
func loadConfig(t *testing.T, b runtimetest.Broker, name, topic string, env ...string) *Config {
	t.Helper()
	var cfg Config
	environ := append([]string{"DANUBE_SERVICE_URL=" + b.URL(), "CONNECTOR_NAME=" + name, "WEBHOOK_ADDR=127.0.0.1:0"}, env...)
	if err := config.Load(&cfg, environ); err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.SourceConfig = *runtimetest.SourceConfig(b, name, topic)
	return &cfg
}

// running is a connector run with its HTTP address.
type running struct {
	*runtimetest.Running
	src *Source
	url string
}

// start runs a source for cfg until the test ends and returns it once ready.
func start(t *testing.T, cfg *Config) *running {
	t.Helper()
	src, err := newSource(cfg, runtime.NewResources(&cfg.Common))
	if err != nil {
		t.Fatal(err)
	}
	r := runtimetest.StartSource[Seq](t, &cfg.SourceConfig, src, true)
	return &running{Running: r, src: src, url: "http://" + src.listenAddr()}
}

// response is an answer as a test sees it.
type response struct {
	code int
	body string
	hdr  http.Header
}

var client = &http.Client{Timeout: 30 * time.Second}

// post sends body to url with the headers (name, value pairs).
func post(t *testing.T, url, contentType, body string, headers ...string) response {
	t.Helper()
	return do(t, http.MethodPost, url, contentType, body, headers...)
}

func do(t *testing.T, method, url, contentType, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(bytes.TrimSpace(b)), hdr: resp.Header}
}

// want fails the test unless r has status code and its body contains each of parts.
func (r response) want(t *testing.T, what string, code int, parts ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: answered %d %s, want %d", what, r.code, r.body, code)
	}
	for _, p := range parts {
		if !strings.Contains(r.body, p) {
			t.Fatalf("%s: answer %q does not contain %q", what, r.body, p)
		}
	}
}

// topicFor returns a unique topic for the test and a collector on it.
func topicFor(t *testing.T, b runtimetest.Broker, name string) (string, *runtimetest.Collector) {
	t.Helper()
	topic := "/default/" + name + "-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	runtimetest.CreateTopic(t, b, topic)
	return topic, runtimetest.Collect(t, b, topic, "probe")
}
