package mqttsource_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

func TestMain(m *testing.M) { harness.Main(m) }

const mqttTimeout = 20 * time.Second

// baseConfig is a connector config for runtime settings cfg with test-friendly MQTT settings.
func baseConfig(cfg *runtime.SourceConfig, mode mqttsource.Mode, mappings string) *mqttsource.Config {
	return &mqttsource.Config{
		SourceConfig: *cfg, Mode: mode, Mappings: mappings, MaxPayload: 1 << 20, QoS: 1,
		KeepAlive: config.Millis(30 * time.Second), ConnectTimeout: config.Millis(10 * time.Second),
		ServerConnectTimeout: config.Millis(10 * time.Second), ServerMaxClients: 1000,
	}
}

func newSource(t *testing.T, c *mqttsource.Config) runtime.SourceConnector[mqttsource.Seq] {
	t.Helper()
	src, err := mqttsource.New(c, runtime.NewResources(&c.Common))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// connect returns a paho client of url (clean session unless a session is asked for) closed at cleanup.
func connect(t testing.TB, url, id string, persistent bool, opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(!persistent).
		SetAutoReconnect(false).SetConnectTimeout(mqttTimeout)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
		t.Fatalf("connect %s to %s: %v", id, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// forgetSession removes the broker's persistent session of id (a clean-session connect does that).
func forgetSession(t testing.TB, url, id string) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).SetConnectTimeout(mqttTimeout))
	if tok := c.Connect(); tok.WaitTimeout(mqttTimeout) && tok.Error() == nil {
		c.Disconnect(100)
	}
}

// publish sends payloads in order at qos and waits for the broker's (or the embedded server's)
// acknowledgement of each; topic gives each payload's MQTT topic.
func publish(t testing.TB, c paho.Client, qos byte, topic func(p []byte) string, payloads ...[]byte) {
	t.Helper()
	toks := make([]paho.Token, len(payloads))
	for i, p := range payloads {
		toks[i] = c.Publish(topic(p), qos, false, p)
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
			t.Fatalf("publish %q: timed out or failed: %v", payloads[i], tok.Error())
		}
	}
}

// index reads i back from a suite payload "n=<i>".
func index(p []byte) int {
	i, _ := strconv.Atoi(strings.TrimPrefix(string(p), "n="))
	return i
}

// TestClientConformance runs the runtime's source conformance suite in client mode against the real
// MQTT broker: QoS 1, persistent session, one MQTT topic per device key.
func TestClientConformance(t *testing.T) {
	ep := harness.MQTT(t)
	base := harness.Name(t)
	var gen atomic.Int64
	prefix := func() string { return fmt.Sprintf("%s/%d", base, gen.Load()) }
	clientID := func() string { return fmt.Sprintf("%s-%d", base, gen.Load()) }
	topic := func(i int) string { return fmt.Sprintf("%s/dev%d/temp", prefix(), i%3) }
	pub := connect(t, ep.URL, base+"-pub", false)
	t.Cleanup(func() {
		for g := range gen.Load() + 1 {
			forgetSession(t, ep.URL, fmt.Sprintf("%s-%d", base, g))
		}
	})
	harnessSuite(t, suite{
		New: func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector[mqttsource.Seq] {
			c := baseConfig(cfg, mqttsource.ClientMode, prefix()+"/+/temp="+cfg.Topic)
			c.BrokerURLs, c.ClientID = []config.URL{config.URL(ep.URL)}, clientID()
			return newSource(t, c)
		},
		Emit: func(t *testing.T, payloads ...[]byte) {
			publish(t, pub, 1, func(p []byte) string { return topic(index(p)) }, payloads...)
		},
		Reset: func(*testing.T) { gen.Add(1) },
		Key:   topic,
	})
}

// TestServerConformance runs the suite in server mode: a device publishes QoS 1 to the embedded
// server, whose PUBACK (the publish token completing) comes only after Danube acked. The device
// keeps a persistent session and reconnects, as a device must for at-least-once: what the server
// has not acknowledged when it stops is sent again to the next instance. Emit returns once each
// message is acknowledged or handed to the runtime (while Danube is down no PUBACK comes).
func TestServerConformance(t *testing.T) {
	base := harness.Name(t)
	var addr string
	var gen atomic.Int64
	var dev paho.Client
	var polled atomic.Int64 // records the instances of the current case handed to the runtime
	var emitted int64
	topic := func(i int) string { return fmt.Sprintf("dev%d/temp", i%3) }
	harnessSuite(t, suite{
		New: func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector[mqttsource.Seq] {
			c := baseConfig(cfg, mqttsource.ServerMode, "+/temp="+cfg.Topic)
			c.ServerTCPAddr, c.ServerAnonymous = addr, true
			return counting{newSource(t, c), &polled}
		},
		Emit: func(t *testing.T, payloads ...[]byte) {
			if dev == nil {
				dev = newDevice(t, "tcp://"+addr, fmt.Sprintf("%s-dev-%d", base, gen.Load()), "").c
			}
			var toks []paho.Token
			for _, p := range payloads {
				toks = append(toks, dev.Publish(topic(index(p)), 1, false, p))
			}
			emitted += int64(len(payloads))
			acked := func() bool {
				return !slices.ContainsFunc(toks, func(tok paho.Token) bool {
					select {
					case <-tok.Done():
						return false
					default:
						return true
					}
				})
			}
			deadline := time.Now().Add(2 * mqttTimeout)
			for !acked() && polled.Load() < emitted {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d messages neither acknowledged nor handed to the runtime after %v", emitted-polled.Load(), emitted, 2*mqttTimeout)
				}
				time.Sleep(5 * time.Millisecond)
			}
		},
		Reset: func(t *testing.T) { addr, dev, emitted = harness.FreeAddr(t), nil, 0; polled.Store(0); gen.Add(1) },
		Key:   topic,
	})
}

// counting counts the records its connector hands to the runtime.
type counting struct {
	runtime.SourceConnector[mqttsource.Seq]
	n *atomic.Int64
}

func (c counting) Poll(ctx context.Context) ([]runtime.SourceRecord[mqttsource.Seq], error) {
	recs, err := c.SourceConnector.Poll(ctx)
	c.n.Add(int64(len(recs)))
	return recs, err
}
