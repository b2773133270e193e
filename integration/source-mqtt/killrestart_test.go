// Package sourcemqtt runs the built source-mqtt binary (or its image, IT_SOURCE_MQTT_IMAGE) end to
// end: real MQTT broker, development Danube broker, kill -9 of the connector with QoS 1 and QoS 2
// messages in flight.
package sourcemqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// TestMain runs the tests, then terminates any container they started and checks for leaked
// goroutines. With IT_SOURCE_MQTT_IMAGE set the connector runs as that container image instead of
// the binary (see harness.StartConnector).
func TestMain(m *testing.M) { harness.Main(m) }

const timeout = 60 * time.Second

// start runs the connector (process or container) with exactly env and waits until it is ready.
func start(t *testing.T, env []string) *harness.Connector {
	t.Helper()
	m := map[string]string{"LOG_LEVEL": "warn", "LOG_FORMAT": "text"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	c := harness.StartConnector(t, harness.ConnectorSpec{Service: "source-mqtt", Env: m})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func kill(t *testing.T, c *harness.Connector) {
	t.Helper()
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
}

// TestKillWithMessagesInFlight publishes QoS 1 and QoS 2 messages, kills the connector with -9
// while they stream through it, restarts it and checks that every message reached Danube: those
// whose PUBACK/PUBREC had not gone out are resent by the MQTT broker from the persistent session.
func TestKillWithMessagesInFlight(t *testing.T) {
	ep := harness.MQTT(t)
	name := harness.Name(t)
	b := runtimetest.StartBroker(t)
	topic := "/default/killed"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	env := []string{
		"DANUBE_SERVICE_URL=" + b.URL(), "CONNECTOR_NAME=" + name, "DANUBE_TOPIC=" + topic,
		"MQTT_BROKER_URL=" + ep.URL, "MQTT_CLIENT_ID=" + name, "MQTT_QOS=2",
		"MQTT_TOPIC_MAPPINGS=" + name + "/#=" + topic, "MAX_IN_FLIGHT=50",
		"RETRY_BACKOFF_MS=50", "RETRY_MAX_BACKOFF_MS=500",
	}
	t.Cleanup(func() {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(ep.URL).SetClientID(name).SetCleanSession(true))
		if tok := c.Connect(); tok.WaitTimeout(timeout) && tok.Error() == nil {
			c.Disconnect(100)
		}
	})
	conn := start(t, env)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(ep.URL).SetClientID(name + "-pub").SetCleanSession(true))
	if tok := pub.Connect(); !tok.WaitTimeout(timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	const n = 2000
	published := make(chan error, 1)
	go func() {
		var toks []paho.Token
		for i := range n {
			qos := byte(1 + i%2)
			p := fmt.Sprintf("m%d", i)
			toks = append(toks, pub.Publish(fmt.Sprintf("%s/dev%d", name, i%7), qos, false, p))
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(timeout) || tok.Error() != nil {
				published <- fmt.Errorf("publish: %w", tok.Error())
				return
			}
		}
		published <- nil
	}()
	// kill as soon as messages flow: the rest are in flight or queued at the broker
	col.WaitFor(t, "the first messages", func(ms []*danube.Message) bool { return len(ms) >= 100 })
	kill(t, conn)
	before := len(col.Messages())
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	start(t, env)
	got := col.WaitFor(t, "every message", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		return len(seen) == n
	})
	t.Logf("killed after %d of %d messages had reached Danube; after the restart %d messages arrived (%d duplicates)",
		before, n, len(got), len(got)-n)
}

// TestServerKillWithMessagesInFlight: a device with a persistent session publishes QoS 1 and 2 to
// the embedded server; the connector is killed with -9 mid-stream and restarted on the same port;
// the device reconnects and resends what was not acknowledged, so every message reaches Danube.
func TestServerKillWithMessagesInFlight(t *testing.T) {
	name := harness.Name(t)
	b := runtimetest.StartBroker(t)
	topic := "/default/killed-server"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	addr := harness.FreeAddr(t)
	env := []string{
		"DANUBE_SERVICE_URL=" + b.URL(), "CONNECTOR_NAME=" + name, "DANUBE_TOPIC=" + topic,
		"MQTT_MODE=server", "MQTT_SERVER_TCP_ADDR=" + addr, "MQTT_SERVER_ALLOW_ANONYMOUS=true",
		"MQTT_TOPIC_MAPPINGS=#=" + topic, "MAX_IN_FLIGHT=50",
	}
	conn := start(t, env)
	dev := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(name + "-dev").
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).SetConnectRetry(true))
	if tok := dev.Connect(); !tok.WaitTimeout(timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dev.Disconnect(100)
	const n = 1000
	toks := make([]paho.Token, 0, n)
	for i := range n {
		toks = append(toks, dev.Publish(fmt.Sprintf("dev/%d", i%7), byte(1+i%2), false, fmt.Sprintf("m%d", i)))
	}
	col.WaitFor(t, "the first messages", func(ms []*danube.Message) bool { return len(ms) >= 50 })
	kill(t, conn)
	before := len(col.Messages())
	start(t, env)
	for _, tok := range toks {
		if !tok.WaitTimeout(timeout) || tok.Error() != nil {
			t.Fatalf("publish: timed out or failed: %v", tok.Error())
		}
	}
	got := col.WaitFor(t, "every message", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		return len(seen) == n
	})
	t.Logf("killed after %d of %d messages had reached Danube; after the restart %d messages arrived (%d duplicates)",
		before, n, len(got), len(got)-n)
}
