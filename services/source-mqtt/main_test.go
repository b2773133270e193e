package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReadmeVariablesMatchHelp keeps README.md's configuration table identical to --help.
func TestReadmeVariablesMatchHelp(t *testing.T) {
	var cfg mqttsource.Config
	configtest.ReadmeMatchesHelp(t, "README.md", "source-mqtt", &cfg, &cfg.Common)
}

// TestDeployComposeConfigLoads loads both connector services of deploy/source-mqtt's compose file
// through the real configuration path (the users secret file is the example next to it).
func TestDeployComposeConfigLoads(t *testing.T) {
	for name, check := range map[string]func(*mqttsource.Config) bool{
		"connector-mqtt-source": func(c *mqttsource.Config) bool {
			return c.Mode == mqttsource.ClientMode && c.BrokerURLs[0] == "tcp://mosquitto:1883" && c.QoS == 1 && !c.CleanSession
		},
		"connector-mqtt-server": func(c *mqttsource.Config) bool {
			return c.Mode == mqttsource.ServerMode && c.ServerUsers.Reveal() == "device-1:change-me" && c.ServerTCPAddr == ":1883"
		},
	} {
		t.Run(name, func(t *testing.T) {
			image, environ := configtest.ComposeEnv(t, "../../deploy/source-mqtt/docker-compose.yml", name)
			if image != "ghcr.io/danube-messaging/danube-connect/source-mqtt:v0.1.0" {
				t.Fatalf("the %s service's image is %q, want ghcr.io/danube-messaging/danube-connect/source-mqtt:v0.1.0", name, image)
			}
			cfg := configtest.Load[mqttsource.Config](t, configtest.StandInFiles(environ, "../../deploy/source-mqtt/mqtt_users.example"))
			if !check(cfg) {
				t.Fatalf("%s loaded %+v", name, cfg)
			}
		})
	}
}

// TestDeployKubernetesConfigLoads loads the StatefulSet's environment the same way; the pod name
// and the mounted password file are stood in for.
func TestDeployKubernetesConfigLoads(t *testing.T) {
	environ := deploytest.KubernetesEnv(t, "../../deploy/source-mqtt/kubernetes.yaml", "source-mqtt",
		map[string]string{"metadata.name": "source-mqtt-0"})
	secret := configtest.TempFile(t, "mqtt-password", "s3cret\n")
	cfg := configtest.Load[mqttsource.Config](t, configtest.StandInFiles(environ, secret))
	if cfg.Password.Reveal() != "s3cret" || cfg.ClientID != "source-mqtt-0" || !strings.HasPrefix(cfg.Mappings, "$share/danube/factory/+/temp=") {
		t.Fatalf("loaded %+v", cfg)
	}
}
