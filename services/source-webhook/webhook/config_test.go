package webhook

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// TestMain checks that no test leaves a goroutine behind (idle client connections closed first).
func TestMain(m *testing.M) {
	code := m.Run()
	client.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func load(env ...string) (*Config, error) {
	var cfg Config
	err := config.Load(&cfg, append([]string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=wh"}, env...))
	return &cfg, err
}

// TestRoutesSyntax: methods, default topic, per-route options over the WEBHOOK_* defaults, and the
// provider's delivery id as the idempotency header.
func TestRoutesSyntax(t *testing.T) {
	cfg, err := load("DANUBE_TOPIC=/default/all", "WEBHOOK_RATE_LIMIT=5", "WEBHOOK_HMAC_SECRET=s", "WEBHOOK_HEADERS=x-a",
		"WEBHOOK_ROUTES= /hooks/orders=/default/orders ; PUT /hooks/gh=/default/github auth=github rate=0 max_body=10 types=json key=header:x-id headers=x-b,X-C ;/beacon idempotency=off types=raw,form")
	if err != nil {
		t.Fatal(err)
	}
	routes, err := cfg.routes()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(routes))
	for i, r := range routes {
		got[i] = fmt.Sprintf("%s %s=%s auth=%s rate=%v body=%d types=%s key=%s idem=%q headers=%v",
			r.Method, r.Path, r.Topic, r.Auth, r.Rate, r.MaxBody, r.Types, r.Key, r.Idempotency, r.Headers)
	}
	want := []string{
		`POST /hooks/orders=/default/orders auth=none rate=5 body=1048576 types=json,ndjson,form key= idem="Idempotency-Key" headers=[X-A]`,
		`PUT /hooks/gh=/default/github auth=github rate=0 body=10 types=json key=header:X-Id idem="X-GitHub-Delivery" headers=[X-B X-C]`,
		`POST /beacon= auth=none rate=5 body=1048576 types=form,raw key= idem="" headers=[X-A]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConfigListsEveryProblem: a bad configuration names every variable and value at once; a
// secret's value is never shown.
func TestConfigListsEveryProblem(t *testing.T) {
	_, err := load("WEBHOOK_ADDR=8080", "WEBHOOK_HMAC_SECRET=hunter2", "WEBHOOK_HMAC_SECRET_FILE=/nonexistent/secret",
		"WEBHOOK_ROUTES=GET /a=/default/a;/b=bad-topic;/c=/default/c auth=apikey;/d=/default/d rate=-1 burst=0 colour=red key=json:;/e=/default/e;/e=/default/e",
		"WEBHOOK_ACK_TIMEOUT_MS=70000", "WEBHOOK_MAX_BODY_BYTES=0", "WEBHOOK_CONTENT_TYPES=json,xml", "WEBHOOK_AUTH=basic",
		"WEBHOOK_TLS_KEY_FILE=/nonexistent/key")
	if err == nil {
		t.Fatal("loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		`WEBHOOK_ADDR="8080": want host:port`,
		`route 1 (GET /a=/default/a): method "GET": want POST, PUT or PATCH`,
		`route 2 (/b=bad-topic): topic "bad-topic"`,
		`auth=apikey needs keys_file= or WEBHOOK_API_KEYS_FILE`,
		`option rate=-1: must not be negative`, `option burst=0: must be at least 1`, `option colour=red: unknown option`,
		`option key=json:: routing key "json:"`,
		`route 6: POST /e is configured twice`,
		`WEBHOOK_HMAC_SECRET_FILE="/nonexistent/secret": set together with WEBHOOK_HMAC_SECRET`,
		`WEBHOOK_WRITE_TIMEOUT_MS="60000": must be above WEBHOOK_ACK_TIMEOUT_MS=70000`,
		`WEBHOOK_MAX_BODY_BYTES="0"`, `WEBHOOK_CONTENT_TYPES="json,xml": unknown content type "xml"`,
		`WEBHOOK_AUTH="basic"`, `WEBHOOK_TLS_KEY_FILE="/nonexistent/key": cannot read`,
		`WEBHOOK_TLS_CERT_FILE: WEBHOOK_TLS_CERT_FILE and WEBHOOK_TLS_KEY_FILE go together`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the error shows the secret:\n%s", msg)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%T, want *config.Error", err)
	}
}

// TestAuthKindText: an auth scheme is taken in any case, printed back, and an unknown one lists
// the schemes.
func TestAuthKindText(t *testing.T) {
	var a AuthKind
	if err := a.UnmarshalText([]byte("GitHub")); err != nil || a != AuthGitHub || a.String() != "github" || AuthJWT.String() != "jwt" {
		t.Fatalf("%v %v", a, err)
	}
	const want = `want "none", "apikey", "github", "stripe", "standard", "hmac" or "jwt"`
	if err := a.UnmarshalText([]byte("basic")); err == nil || err.Error() != want {
		t.Fatalf("%v, want %s", err, want)
	}
}

// TestSignedRouteNeedsASecret: a signed route without any secret, and a route without a topic
// while DANUBE_TOPIC is unset, are configuration errors.
func TestSignedRouteNeedsASecret(t *testing.T) {
	_, err := load("WEBHOOK_ROUTES=/gh auth=github")
	if err == nil || !strings.Contains(err.Error(), "route /gh has auth=github: set WEBHOOK_HMAC_SECRET") ||
		!strings.Contains(err.Error(), "/gh names no topic and DANUBE_TOPIC is not set") {
		t.Fatalf("got %v", err)
	}
	empty := t.TempDir() + "/keys"
	if err := os.WriteFile(empty, []byte("# nobody yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load("WEBHOOK_ROUTES=/k=/default/k auth=apikey keys_file=" + empty); err == nil || !strings.Contains(err.Error(), "holds no key") {
		t.Fatalf("empty key file: %v", err)
	}
}

// TestIdempotencyMemoryIsBounded: the least recently used key goes first beyond the cap, a key
// older than the window is forgotten, and a failed first attempt is forgotten at once.
func TestIdempotencyMemoryIsBounded(t *testing.T) {
	c := newIdempotency(time.Minute, 2)
	now := time.Now()
	sum := sha256.Sum256(nil)
	a, _ := c.begin("a", sum, now)
	c.finish(a, answer{status: 200}, true)
	b, _ := c.begin("b", sum, now)
	c.finish(b, answer{status: 200}, true)
	if _, first := c.begin("a", sum, now); first { // a is now the most recently used
		t.Fatal("a forgotten within the window")
	}
	c.begin("c", sum, now) // evicts b
	if c.len() != 2 {
		t.Fatalf("%d keys remembered, want the cap of 2", c.len())
	}
	if _, first := c.begin("b", sum, now); !first {
		t.Fatal("b, the least recently used, was not evicted")
	}
	if _, first := c.begin("c", sum, now.Add(time.Minute)); !first {
		t.Fatal("c remembered beyond the window")
	}
	d, _ := c.begin("d", sum, now)
	c.finish(d, answer{}, false)
	if _, first := c.begin("d", sum, now); !first {
		t.Fatal("a failed attempt is remembered: its retry would not publish")
	}
}
