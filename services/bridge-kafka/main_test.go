package main

import (
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/mapping"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReadmeVariablesMatchHelp keeps README.md's configuration table identical to --help.
func TestReadmeVariablesMatchHelp(t *testing.T) {
	var cfg bridge.Config
	configtest.ReadmeMatchesHelp(t, "README.md", "bridge-kafka", &cfg, &cfg.Common)
}

// TestDeployComposeConfigLoads loads the bridge's environment from deploy/bridge-kafka's
// docker-compose file through the real configuration path.
func TestDeployComposeConfigLoads(t *testing.T) {
	image, environ := configtest.ComposeEnv(t, "../../deploy/bridge-kafka/docker-compose.yml", "connector-kafka-bridge")
	if image != "ghcr.io/danube-messaging/danube-connect/bridge-kafka:v0.1.0" {
		t.Fatalf("the connector-kafka-bridge service's image is %q", image)
	}
	cfg := configtest.Load[bridge.Config](t, environ)
	wantImports := []mapping.Route{{Kafka: "orders", Danube: "/default/orders"}, {Kafka: "payments", Danube: "/default/payments"}}
	if !slices.Equal(cfg.Import.Mappings.Routes, wantImports) || !slices.Equal(cfg.Export.Mappings.Routes, []mapping.Route{{Kafka: "shipments", Danube: "/default/shipments"}}) ||
		cfg.Import.GroupID != "danube-bridge" || cfg.Import.Start != "earliest" || cfg.Export.DLQTopic != "/default/shipments-dlq" {
		t.Fatalf("loaded %+v", cfg)
	}
}

// TestDeployKubernetesConfigLoads loads the Deployment's environment the same way; the pod name
// (CONNECTOR_NAME's fieldRef) and the mounted secret file are stood in for.
func TestDeployKubernetesConfigLoads(t *testing.T) {
	environ := deploytest.KubernetesEnv(t, "../../deploy/bridge-kafka/kubernetes.yaml", "bridge-kafka",
		map[string]string{"metadata.name": "bridge-kafka-7d9f-abcde"})
	secret := configtest.TempFile(t, "password", "s3cret\n")
	cfg := configtest.Load[bridge.Config](t, configtest.StandInFiles(environ, secret))
	if cfg.Kafka.SASLPassword.Reveal() != "s3cret" || len(cfg.Import.Mappings.Routes) != 2 || cfg.Export.AckTimeout.D().Seconds() != 120 {
		t.Fatalf("loaded %+v", cfg)
	}
}
