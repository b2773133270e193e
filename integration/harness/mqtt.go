package harness

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// MQTTImage is the image of the MQTT broker container.
const MQTTImage = "eclipse-mosquitto:2.0"

// mosquittoConf allows anonymous clients and lifts the in-flight limit:
// with the default of 20, a QoS 2 publisher with more than 20 messages
// outstanding silently loses messages.
const mosquittoConf = `listener 1883
allow_anonymous true
max_inflight_messages 0
max_queued_messages 0
persistence false
`

// MQTTEndpoint is an MQTT broker. Tests isolate themselves by topics under
// a [Name].
type MQTTEndpoint struct {
	// URL is the broker as paho's AddBroker takes it: tcp://host:port.
	URL string
	// Source says where the broker came from and, when known, which
	// server it is, for test logs.
	Source string
}

var mqttServer shared[MQTTEndpoint]

// MQTT returns an MQTT broker that allows anonymous clients (see the package
// doc for the order of choice).
func MQTT(t testing.TB) MQTTEndpoint {
	t.Helper()
	return resolve(t, "MQTT broker", EnvMQTTURL, mqttFromEnv, &mqttServer, startMQTT)
}

func mqttFromEnv() (MQTTEndpoint, error) {
	raw := os.Getenv(EnvMQTTURL)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt") || u.Port() == "" {
		return MQTTEndpoint{}, fmt.Errorf("%q is not a tcp://host:port URL", raw)
	}
	if err := checkReachable(EnvMQTTURL, u.Host); err != nil {
		return MQTTEndpoint{}, err
	}
	source := EnvMQTTURL + "=" + raw
	if server := os.Getenv(EnvMQTTServer); server != "" {
		source += " (" + server + ")"
	}
	return MQTTEndpoint{URL: raw, Source: source}, nil
}

func startMQTT(ctx context.Context) (MQTTEndpoint, error) {
	c, err := run(ctx, MQTTImage,
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader(mosquittoConf),
			ContainerFilePath: "/mosquitto/config/mosquitto.conf",
			FileMode:          0o644,
		}),
		testcontainers.WithExposedPorts("1883/tcp"),
		testcontainers.WithWaitStrategy(wait.ForAll(
			wait.ForLog(" running"),
			wait.ForListeningPort("1883/tcp"),
		)),
	)
	if err != nil {
		return MQTTEndpoint{}, err
	}
	addr, err := c.PortEndpoint(ctx, "1883/tcp", "tcp")
	if err != nil {
		return MQTTEndpoint{}, fmt.Errorf("mqtt container port: %w", err)
	}
	return MQTTEndpoint{URL: addr, Source: "container " + MQTTImage}, nil
}
