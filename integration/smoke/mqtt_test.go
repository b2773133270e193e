package smoke

import (
	"fmt"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const mqttTimeout = 20 * time.Second

// TestMQTTPublishReceive publishes at QoS 1 and 2 and receives every
// message at the QoS it was sent with, as the MQTT source will. Each QoS
// sends more messages than Mosquitto's default in-flight window of 20,
// which loses QoS 2 messages unless max_inflight_messages is lifted.
func TestMQTTPublishReceive(t *testing.T) {
	ep := harness.MQTT(t)
	prefix := harness.Name(t)

	sub := connectMQTT(t, ep, prefix+"_sub")
	defer sub.Disconnect(250)
	t.Logf("server: %s", ep.Source)

	received := make(chan mqtt.Message, 100)
	subscribe(t, sub, prefix+"/#", 2, func(_ mqtt.Client, m mqtt.Message) { received <- m })

	pub := connectMQTT(t, ep, prefix+"_pub")
	defer pub.Disconnect(250)

	const perQoS = 30
	for _, qos := range []byte{1, 2} {
		topic := fmt.Sprintf("%s/qos%d", prefix, qos)
		tokens := make([]mqtt.Token, perQoS)
		for i := range perQoS {
			tokens[i] = pub.Publish(topic, qos, false, fmt.Sprintf("msg-%d", i))
		}
		for i, tok := range tokens {
			if !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
				t.Fatalf("publish %s #%d at QoS %d: timed out or failed: %v", topic, i, qos, tok.Error())
			}
		}
		for i := range perQoS {
			select {
			case m := <-received:
				want := fmt.Sprintf("msg-%d", i)
				if m.Topic() != topic || string(m.Payload()) != want || m.Qos() != qos {
					t.Fatalf("received %s %q at QoS %d, want %s %q at QoS %d", m.Topic(), m.Payload(), m.Qos(), topic, want, qos)
				}
			case <-time.After(mqttTimeout):
				t.Fatalf("QoS %d: received %d of %d messages", qos, i, perQoS)
			}
		}
	}
	if tok := sub.Unsubscribe(prefix + "/#"); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
		t.Errorf("unsubscribe: %v", tok.Error())
	}
}

func connectMQTT(t *testing.T, ep harness.MQTTEndpoint, clientID string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker(ep.URL).
		SetClientID(clientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(mqttTimeout)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
		t.Fatalf("connect to %s: timed out or failed: %v", ep.Source, tok.Error())
	}
	return c
}

func subscribe(t *testing.T, c mqtt.Client, filter string, qos byte, h mqtt.MessageHandler) {
	t.Helper()
	tok := c.Subscribe(filter, qos, h)
	if !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe %s at QoS %d: timed out or failed: %v", filter, qos, tok.Error())
	}
	if granted := tok.(*mqtt.SubscribeToken).Result()[filter]; granted != qos {
		t.Fatalf("subscribe %s: granted QoS %d, want %d", filter, granted, qos)
	}
}
