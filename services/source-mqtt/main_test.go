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
			return c.Mode == mqttsource.ClientMode && c.BrokerURLs[0].Reveal() == "tcp://mosquitto:1883" && c.QoS == 1 && !c.CleanSession
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

// TestBrokerPasswordNotShown: a password in MQTT_BROKER_URL shows neither in --print-config, nor in
// the starting log line, nor in a configuration error; the rest of the URL does.
func TestBrokerPasswordNotShown(t *testing.T) {
	env := []string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=gw", "METRICS_ADDR=", "LOG_FORMAT=text",
		"MQTT_TOPIC_MAPPINGS=a/#=/default/a", "MQTT_BROKER_URL=tcp://user:s3cretPW@broker:1883,ssl://u2:0ther%21PW@b2:8883"}
	run := func(args []string, env []string) (int, string) {
		var out, errOut bytes.Buffer
		var cfg mqttsource.Config
		code := runtime.Main(context.Background(), args, env, &out, &errOut, &cfg, &cfg.Common,
			func(context.Context, ...runtime.Option) error { return nil })
		return code, out.String() + errOut.String()
	}
	for _, args := range [][]string{{"--print-config"}, nil} {
		code, out := run(args, env)
		if code != runtime.ExitOK || !strings.Contains(out, "tcp://user:[REDACTED]@broker:1883") || !strings.Contains(out, "ssl://u2:[REDACTED]@b2:8883") {
			t.Errorf("%v: exit %d, want 0 and the redacted URLs in:\n%s", args, code, out)
		}
		if strings.Contains(out, "s3cretPW") || strings.Contains(out, "0ther") {
			t.Errorf("%v shows a password:\n%s", args, out)
		}
	}
	code, out := run(nil, append(env, "MQTT_BROKER_URL=http://user:s3cretPW@broker:1883"))
	if code != runtime.ExitConfig || !strings.Contains(out, `MQTT_BROKER_URL="http://user:[REDACTED]@broker:1883": want tcp://`) || strings.Contains(out, "s3cretPW") {
		t.Errorf("bad URL: exit %d, want 2 and the redacted URL in:\n%s", code, out)
	}
}
