package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/source-webhook/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReadmeVariablesMatchHelp keeps README.md's configuration table identical to --help.
func TestReadmeVariablesMatchHelp(t *testing.T) {
	var cfg webhook.Config
	configtest.ReadmeMatchesHelp(t, "README.md", "source-webhook", &cfg, &cfg.Common)
}

// TestDeployComposeConfigLoads loads deploy/source-webhook's connector service through the real
// configuration path (the key and secret files are the example next to it).
func TestDeployComposeConfigLoads(t *testing.T) {
	image, environ := configtest.ComposeEnv(t, "../../deploy/source-webhook/docker-compose.yml", "connector-webhook")
	if image != "ghcr.io/danube-messaging/danube-connect/source-webhook:v0.1.0" {
		t.Fatalf("image %q, want ghcr.io/danube-messaging/danube-connect/source-webhook:v0.1.0", image)
	}
	cfg := configtest.Load[webhook.Config](t, configtest.StandInFiles(environ, "../../deploy/source-webhook/api_keys.example"))
	if cfg.Addr != ":8080" || !strings.Contains(cfg.Routes, "/hooks/github=/default/github auth=github") {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestDeployKubernetesConfigLoads loads the Deployment's environment the same way; the pod name and
// the mounted files are stood in for.
func TestDeployKubernetesConfigLoads(t *testing.T) {
	environ := deploytest.KubernetesEnv(t, "../../deploy/source-webhook/kubernetes.yaml", "source-webhook",
		map[string]string{"metadata.name": "source-webhook-7d9f-abcde"})
	keys := configtest.TempFile(t, "api-keys", "k1\nk2\n")
	cfg := configtest.Load[webhook.Config](t, configtest.StandInFiles(environ, keys))
	if cfg.ConnectorName != "source-webhook-7d9f-abcde" || cfg.APIKeysFile != keys {
		t.Fatalf("loaded %+v", cfg)
	}
}

// run runs the connector's main with env and args, without starting anything (the config is the
// subject), and returns the exit code and everything printed.
func run(args, env []string) (int, string) {
	var out, errOut bytes.Buffer
	var cfg webhook.Config
	code := runtime.Main(context.Background(), args, env, &out, &errOut, &cfg, &cfg.Common,
		func(context.Context, ...runtime.Option) error { return nil })
	return code, out.String() + errOut.String()
}

// TestBadConfigListsEveryProblem: the service stops at startup (exit 2) naming every bad variable
// and value at once, and never shows the signing secret.
func TestBadConfigListsEveryProblem(t *testing.T) {
	code, out := run(nil, []string{"DANUBE_SERVICE_URL=localhost:6650", "CONNECTOR_NAME=wh", "WEBHOOK_HMAC_SECRET=s3cretPW",
		"WEBHOOK_ROUTES=/a=/default/a auth=stripe tolerance_ms=x;/b", "WEBHOOK_RATE_LIMIT=fast", "WEBHOOK_ACK_TIMEOUT_MS=90000"})
	if code != runtime.ExitConfig {
		t.Fatalf("exit %d, want %d:\n%s", code, runtime.ExitConfig, out)
	}
	for _, want := range []string{
		`DANUBE_SERVICE_URL="localhost:6650"`, `option tolerance_ms=x`, `/b names no topic and DANUBE_TOPIC is not set`,
		`WEBHOOK_RATE_LIMIT="fast": want a number`, `WEBHOOK_WRITE_TIMEOUT_MS="60000": must be above WEBHOOK_ACK_TIMEOUT_MS=90000`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cretPW") {
		t.Errorf("the output shows the secret:\n%s", out)
	}
}

// TestSecretNotShown: --print-config and the starting log line redact the signing secret.
func TestSecretNotShown(t *testing.T) {
	env := []string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=wh", "METRICS_ADDR=", "LOG_FORMAT=text",
		"WEBHOOK_ROUTES=/gh=/default/gh auth=github", "WEBHOOK_HMAC_SECRET=s3cretPW"}
	for _, args := range [][]string{{"--print-config"}, nil} {
		code, out := run(args, env)
		if code != runtime.ExitOK || !strings.Contains(out, "WEBHOOK_HMAC_SECRET") || strings.Contains(out, "s3cretPW") {
			t.Errorf("%v: exit %d, want 0, the variable named and its value redacted:\n%s", args, code, out)
		}
	}
}
