package mqttsource_test

import (
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

func load(environ ...string) (*mqttsource.Config, error) {
	var c mqttsource.Config
	err := config.Load(&c, append([]string{"DANUBE_SERVICE_URL=http://localhost:6650", "CONNECTOR_NAME=gw"}, environ...))
	return &c, err
}

func TestConfigDefaults(t *testing.T) {
	c, err := load("MQTT_BROKER_URL=tcp://a:1883, ssl://b:8883", "MQTT_TOPIC_MAPPINGS=factory/#=/iot/factory")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != mqttsource.ClientMode || c.QoS != 1 || c.CleanSession || c.Retained != mqttsource.PublishRetained ||
		len(c.BrokerURLs) != 2 || c.KeepAlive.D().Seconds() != 30 || c.MaxPayload != 1<<20 ||
		c.ServerConnectTimeout.D().Seconds() != 10 || c.ServerMaxClients != 1000 {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestConfigReportsEveryProblem: every bad variable is named with its value and the reason, at once;
// the server users secret is never echoed.
func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := load("MQTT_BROKER_URL=http://a:1883,tcp://nohost", "MQTT_QOS=3", "MQTT_TOPIC_MAPPINGS=a/#/b=/x/y;c=/bad",
		"MQTT_CERT_FILE=/nonexistent/cert.pem", "MQTT_MAX_PAYLOAD_BYTES=0")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		`MQTT_TOPIC_MAPPINGS="a/#/b=/x/y;c=/bad": "a/#/b=/x/y": MQTT filter "a/#/b": '#' must be the whole last level; "c=/bad": destination "/bad": want /namespace/topic`,
		`MQTT_MAX_PAYLOAD_BYTES="0": must be at least 1`,
		`MQTT_BROKER_URL="http://a:1883": want tcp://, ssl://, ws:// or wss://host:port`,
		`MQTT_BROKER_URL="tcp://nohost": want a host and a port`,
		`MQTT_QOS="3": want 0, 1 or 2`,
		`MQTT_CERT_FILE="/nonexistent/cert.pem": MQTT_CERT_FILE and MQTT_KEY_FILE go together`,
		`MQTT_CERT_FILE="/nonexistent/cert.pem": cannot read: no such file or directory`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	_, err = load("MQTT_MODE=server", "MQTT_TOPIC_MAPPINGS=#=/iot/all", "MQTT_SERVER_TCP_ADDR=off", "MQTT_SERVER_USERS=dev1:s3cret,broken",
		"MQTT_SERVER_MAX_CLIENTS=0", "MQTT_SERVER_CONNECT_TIMEOUT_MS=0")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		"MQTT_SERVER_TCP_ADDR: server mode needs a listener: set MQTT_SERVER_TCP_ADDR, MQTT_SERVER_TLS_ADDR or MQTT_SERVER_WS_ADDR",
		"MQTT_SERVER_USERS: entry 2: want user:password",
		`MQTT_SERVER_MAX_CLIENTS="0": must be at least 1`,
		`MQTT_SERVER_CONNECT_TIMEOUT_MS="0": must be at least 1`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error echoes the password: %v", err)
	}

	// first match wins: a filter after one that matches all its topics is dead configuration
	_, err = load("MQTT_BROKER_URL=tcp://a:1883", "MQTT_TOPIC_MAPPINGS=factory/#=/iot/factory;factory/l1/temp=/iot/temp")
	if want := `MQTT_TOPIC_MAPPINGS="factory/#=/iot/factory;factory/l1/temp=/iot/temp": "factory/l1/temp=/iot/temp": filter "factory/l1/temp" is shadowed by the earlier filter "factory/#"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("shadowed filter: %v, want %q", err, want)
	}

	_, err = load("MQTT_MODE=server", "MQTT_TOPIC_MAPPINGS=#=/iot/all")
	if err == nil || !strings.Contains(err.Error(), "MQTT_SERVER_USERS: server mode needs device credentials: set MQTT_SERVER_USERS or MQTT_SERVER_AUTH_FILE, or MQTT_SERVER_ALLOW_ANONYMOUS=true") {
		t.Errorf("server mode without credentials: %v", err)
	}
}

// TestConfigEnums: MQTT_MODE and MQTT_RETAINED take their names in any case, print them back, and
// name what they accept.
func TestConfigEnums(t *testing.T) {
	c, err := load("MQTT_BROKER_URL=tcp://a:1883", "MQTT_TOPIC_MAPPINGS=#=/iot/all", "MQTT_MODE=Client", "MQTT_RETAINED=SKIP")
	if err != nil || c.Mode != mqttsource.ClientMode || c.Retained != mqttsource.SkipRetained ||
		c.Mode.String() != "client" || c.Retained.String() != "skip" || mqttsource.ServerMode.String() != "server" {
		t.Fatalf("%v %v: %v", c.Mode, c.Retained, err)
	}
	_, err = load("MQTT_BROKER_URL=tcp://a:1883", "MQTT_TOPIC_MAPPINGS=#=/iot/all", "MQTT_MODE=proxy", "MQTT_RETAINED=drop")
	for _, want := range []string{`MQTT_MODE="proxy": want "client" or "server"`, `MQTT_RETAINED="drop": want "publish" or "skip"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
