package main

import (
	"testing"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
)

// TestReadmeVariablesMatchHelp keeps README.md's configuration table identical to --help.
func TestReadmeVariablesMatchHelp(t *testing.T) {
	var cfg sinkhttp.Config
	configtest.ReadmeMatchesHelp(t, "README.md", "sink-http", &cfg, &cfg.Common)
}

// TestDeployComposeConfigLoads loads the connector's environment from deploy/sink-http's
// docker-compose file (the reference block of docs/connectors.md, as written) through the real
// configuration path.
func TestDeployComposeConfigLoads(t *testing.T) {
	image, environ := configtest.ComposeEnv(t, "../../deploy/sink-http/docker-compose.yml", "connector-http-sink")
	if image != "ghcr.io/danube-messaging/danube-connect/sink-http:v0.1.0" {
		t.Fatalf("the connector-http-sink service's image is %q, not the design's", image)
	}
	cfg := configtest.Load[sinkhttp.Config](t, environ)
	if cfg.TargetURL != "https://hooks.slack.com/services/YOUR/WEBHOOK/URL" || cfg.SubscriptionType != danube.Exclusive ||
		cfg.Timeout.D().Milliseconds() != 5000 || cfg.MaxRetries != 3 || cfg.RetryBackoff.D().Milliseconds() != 1000 {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestDeployKubernetesConfigLoads loads the Deployment's environment the same way; the secret file
// it mounts is stood in for by a temporary file.
func TestDeployKubernetesConfigLoads(t *testing.T) {
	environ := deploytest.KubernetesEnv(t, "../../deploy/sink-http/kubernetes.yaml", "sink-http",
		map[string]string{"metadata.name": "sink-http-7d9f-abcde"})
	secret := configtest.TempFile(t, "webhook-secret", "whsec_c2VjcmV0\n")
	cfg := configtest.Load[sinkhttp.Config](t, configtest.StandInFiles(environ, secret))
	if cfg.WebhookSecret.Reveal() != "whsec_c2VjcmV0" || cfg.MaxInFlight != 8 || cfg.DLQTopic != "/default/notifications-dlq" {
		t.Fatalf("loaded %+v", cfg)
	}
}
