package main

import (
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chsink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReadmeVariablesMatchHelp keeps README.md's configuration table identical to --help.
func TestReadmeVariablesMatchHelp(t *testing.T) {
	var cfg chsink.Config
	configtest.ReadmeMatchesHelp(t, "README.md", "sink-clickhouse", &cfg, &cfg.Common)
}

// TestDefaultBatchIsTheDesigns: without BATCH_SIZE and BATCH_TIMEOUT_MS the sink batches as the
// design says (up to 10,000 rows or 1 second per INSERT), not the runtime's generic one record.
func TestDefaultBatchIsTheDesigns(t *testing.T) {
	cfg := configtest.Load[chsink.Config](t, []string{"DANUBE_SERVICE_URL=http://danube:6650", "DANUBE_TOPIC=/default/events",
		"SUBSCRIPTION_NAME=ch", "CONNECTOR_NAME=ch-1", "CH_HOST=clickhouse", "CH_TABLE=events"})
	if cfg.BatchSize != 10000 || cfg.BatchTimeout.D().Milliseconds() != 1000 {
		t.Fatalf("BATCH_SIZE %d, BATCH_TIMEOUT_MS %v, want 10000 and 1000", cfg.BatchSize, cfg.BatchTimeout)
	}
}

// designBlock returns the image and environment of the connector-clickhouse-sink service of
// docs/connectors.md's sink-clickhouse section, parsed as written.
func designBlock(t *testing.T) (image string, environ []string) {
	t.Helper()
	return configtest.MarkdownComposeEnv(t, "../../docs/connectors.md", "sink-clickhouse", "connector-clickhouse-sink")
}

// TestDesignComposeConfigLoads loads the design's docker-compose block for this connector, exactly
// as docs/connectors.md lists it, through the real configuration path.
func TestDesignComposeConfigLoads(t *testing.T) {
	image, environ := designBlock(t)
	if image != "danube-connect/sink-clickhouse:v0.1" {
		t.Fatalf("image %q", image)
	}
	cfg := configtest.Load[chsink.Config](t, environ)
	if cfg.Host != "clickhouse" || cfg.Port != 9000 || cfg.Database != "analytics" || cfg.Table != "events" ||
		cfg.User != "default" || cfg.Password.IsSet() || cfg.BatchSize != 10000 || cfg.BatchTimeout.D().Milliseconds() != 1000 ||
		cfg.FlushInterval.D().Milliseconds() != 5000 || cfg.SubscriptionType != danube.Exclusive {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestDeployComposeConfigLoads checks that deploy/sink-clickhouse's compose file carries the
// design's block unchanged and loads.
func TestDeployComposeConfigLoads(t *testing.T) {
	image, environ := configtest.ComposeEnv(t, "../../deploy/sink-clickhouse/docker-compose.yml", "connector-clickhouse-sink")
	_, wantEnviron := designBlock(t)
	if image != "ghcr.io/danube-messaging/danube-connect/sink-clickhouse:v0.1.0" || !slices.Equal(environ, wantEnviron) {
		t.Fatalf("deploy service %s %q differs from the design's environment %q (or is not the published image)", image, environ, wantEnviron)
	}
	configtest.Load[chsink.Config](t, environ)
}

// TestDeployKubernetesConfigLoads loads the Deployment's environment; the mounted password file is
// stood in for by a temporary file.
func TestDeployKubernetesConfigLoads(t *testing.T) {
	environ := deploytest.KubernetesEnv(t, "../../deploy/sink-clickhouse/kubernetes.yaml", "sink-clickhouse",
		map[string]string{"metadata.name": "sink-clickhouse-7d9f-abcde"})
	secret := configtest.TempFile(t, "password", "s3cret\n")
	cfg := configtest.Load[chsink.Config](t, configtest.StandInFiles(environ, secret))
	if cfg.Password.Reveal() != "s3cret" || cfg.BatchSize != 10000 || !cfg.TLS || cfg.Port != 9440 || cfg.DanubeAdminURL == "" {
		t.Fatalf("loaded %+v", cfg)
	}
}
