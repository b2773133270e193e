package sinkhttp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

var baseEnv = []string{"DANUBE_SERVICE_URL=http://b:6650", "DANUBE_TOPIC=/default/t", "SUBSCRIPTION_NAME=s", "CONNECTOR_NAME=c"}

// Credentials in TARGET_URL (user:password, a token in the query) never reach the startup log,
// --print-config or an error message; the request still carries them.
func TestTargetURLCredentialsAreRedacted(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r }))
	defer srv.Close()
	target := strings.Replace(srv.URL, "http://", "http://alice:hunter2@", 1) + "/hook?token=s3cr3t&team=ops"
	var cfg Config
	if err := config.Load(&cfg, append([]string{"TARGET_URL=" + target}, baseEnv...)); err != nil {
		t.Fatal(err)
	}
	var printed, logged bytes.Buffer
	if err := config.Print(&printed, &cfg); err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", config.LogValue(&cfg))
	for where, text := range map[string]string{"--print-config": printed.String(), "startup log": logged.String()} {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "s3cr3t") || !strings.Contains(text, "alice:[REDACTED]@") ||
			!strings.Contains(text, "token=[REDACTED]") || !strings.Contains(text, "team=ops") {
			t.Errorf("%s shows the credentials or hides too much:\n%s", where, text)
		}
	}
	conn, err := New(&cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Shutdown(context.Background())
	if err := conn.sender.Deliver(context.Background(), []webhook.Message{{Topic: "/default/t", Payload: []byte("x")}})[0]; err != nil {
		t.Fatal(err)
	}
	if u, p, _ := got.BasicAuth(); u != "alice" || p != "hunter2" || got.URL.Query().Get("token") != "s3cr3t" {
		t.Fatalf("the request lost its credentials: %v %q", got.URL, u)
	}
	// An endpoint that cannot be reached: the error names the URL without its secrets.
	cfg.TargetURL = config.URL("http://alice:hunter2@127.0.0.1:1/hook?token=s3cr3t")
	down, err := New(&cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer down.Shutdown(context.Background())
	derr := down.sender.Deliver(context.Background(), []webhook.Message{{Topic: "/default/t", Payload: []byte("x")}})[0]
	if derr == nil || strings.Contains(derr.Error(), "hunter2") || strings.Contains(derr.Error(), "s3cr3t") {
		t.Fatalf("delivery error %v", derr)
	}
}

// A token or password with a newline (copied from a file) is a configuration problem, named
// without its value, instead of an endpoint that fails every request.
func TestCredentialWithNewlineIsRejected(t *testing.T) {
	var cfg Config
	err := config.Load(&cfg, append([]string{"TARGET_URL=http://x", "AUTH_BEARER_TOKEN=abc\ndef", "HTTP_HEADERS=X-Api-Key:k1\nk2"}, baseEnv...))
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got %v", err)
	}
	want := `invalid configuration (2 problems):
  HTTP_HEADERS="[REDACTED]": the value of pair 1 contains a control character
  AUTH_BEARER_TOKEN="[REDACTED]": contains a control character (U+000A at byte 3): a newline copied from a file?`
	if err.Error() != want || strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "k1") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}
