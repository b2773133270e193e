package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
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

// TestSecretPropertiesRedacted: the values of secret librdkafka properties given in
// KAFKA_*_PROPERTIES appear neither in --print-config nor in the starting log line; the other
// properties do.
func TestSecretPropertiesRedacted(t *testing.T) {
	const secret = "TOPSECRET"
	props := "ssl.key.pem=-----BEGIN PRIVATE KEY-----" + secret + ";sasl.oauthbearer.config=principal=me extension_x=" + secret +
		";ssl.keystore.password=" + secret + ";sasl.oauthbearer.client.secret=" + secret + ";linger.ms=7"
	environ := []string{"DANUBE_SERVICE_URL=http://127.0.0.1:1", "CONNECTOR_NAME=bridge", "METRICS_ADDR=", "LOG_FORMAT=text",
		"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1", "EXPORT_MAPPINGS=/default/a=a", "KAFKA_PRODUCER_PROPERTIES=" + props,
		"IMPORT_MAPPINGS=b=/default/b", "KAFKA_GROUP_ID=g", "KAFKA_CONSUMER_PROPERTIES=" + props}
	for _, args := range [][]string{{"--print-config"}, nil} {
		var out bytes.Buffer
		var cfg bridge.Config
		code := runtime.Main(context.Background(), args, environ, &out, &out, &cfg, &cfg.Common,
			func(context.Context, ...runtime.Option) error { return nil })
		if code != runtime.ExitOK || strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "linger.ms=7") ||
			!strings.Contains(out.String(), "ssl.key.pem=") {
			t.Errorf("%v: exit %d, want %d, the properties without their secret values:\n%s", args, code, runtime.ExitOK, out.String())
		}
	}
}
