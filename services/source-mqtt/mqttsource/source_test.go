package mqttsource_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// TestServerAcksOnlyAfterDanube: a device's QoS 1 and QoS 2 publish completes (PUBACK, resp. the
// PUBREC/PUBREL/PUBCOMP flow) only after Danube acknowledged the message: when each token completes,
// the runtime has already counted that many records acknowledged by Danube.
func TestServerAcksOnlyAfterDanube(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/acks"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := runtimetest.SourceConfig(b, "mqtt-acks", topic)
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "#="+topic)
	c.ServerTCPAddr, c.ServerAnonymous = addr, true
	r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
	dev := connect(t, "tcp://"+addr, "device-acks", false)
	processed := `connector_records_processed_total{connector="mqtt-acks"}`
	n := 0
	for _, qos := range []byte{1, 2} {
		for i := range 5 {
			tok := dev.Publish(fmt.Sprintf("sensors/q%d", qos), qos, false, fmt.Appendf(nil, "q%d-%d", qos, i))
			if !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			n++
			if got := r.Metric(t, processed); got < float64(n) {
				t.Fatalf("QoS %d publish %d confirmed to the device with %v records acked by Danube, want %d", qos, i, got, n)
			}
		}
	}
	col.WaitFor(t, "10 messages", func(ms []*danube.Message) bool { return len(ms) >= 10 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServerMessages: payload unchanged, attributes, routing key, first-match mapping to several
// Danube topics, MQTT 5 user properties are not sent by a 3.1.1 device; unmapped and oversized
// messages are acknowledged and counted, never published.
func TestServerMessages(t *testing.T) {
	b := runtimetest.StartBroker(t)
	temp, other := "/default/temp", "/default/other"
	runtimetest.CreateTopic(t, b, temp)
	runtimetest.CreateTopic(t, b, other)
	colTemp, colOther := runtimetest.Collect(t, b, temp, "reader"), runtimetest.Collect(t, b, other, "reader")
	cfg := runtimetest.SourceConfig(b, "mqtt-msgs", temp)
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "factory/+/temp="+temp+";factory/#="+other)
	c.ServerTCPAddr, c.MaxPayload = addr, 100
	c.ServerUsers = config.NewSecret("dev:pw")
	tel, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	src, err := mqttsource.New(c, runtime.NewResources(&c.Common, runtime.WithTelemetry(tel)))
	if err != nil {
		t.Fatal(err)
	}
	r := runtimetest.StartSource(t, cfg, src, true)
	dev := connect(t, "tcp://"+addr, "device-msgs", false, func(o *paho.ClientOptions) { o.SetUsername("dev").SetPassword("pw") })
	binary := []byte{0, 1, 2, 0xff}
	publish(t, dev, 0, func([]byte) string { return "factory/l1/temp" }, []byte("q0"))
	publish(t, dev, 1, func([]byte) string { return "elsewhere/x" }, []byte("unmapped"))
	publish(t, dev, 1, func([]byte) string { return "factory/l1/temp" }, bytes.Repeat([]byte("x"), 101))
	publish(t, dev, 2, func([]byte) string { return "factory/l2/temp" }, binary)
	publish(t, dev, 1, func([]byte) string { return "factory/l1/humidity" }, []byte("h"))

	got := colTemp.WaitFor(t, "2 messages", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	if string(got[0].Payload) != "q0" { // different device topics: no order between them
		got[0], got[1] = got[1], got[0]
	}
	if len(got) != 2 || string(got[0].Payload) != "q0" || !bytes.Equal(got[1].Payload, binary) {
		t.Fatalf("temp topic got %q, want q0 and the binary payload", colTemp.Payloads())
	}
	want := map[string]string{"mqtt.topic": "factory/l2/temp", "mqtt.qos": "2", "mqtt.retain": "false", "mqtt.dup": "false", "mqtt.client_id": "device-msgs"}
	for k, v := range want {
		if got[1].Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, got[1].Attributes[k], v, got[1].Attributes)
		}
	}
	if got[0].Attributes["mqtt.qos"] != "0" || got[1].Key != "factory/l2/temp" {
		t.Errorf("qos attribute %q, key %q", got[0].Attributes["mqtt.qos"], got[1].Key)
	}
	if o := colOther.WaitFor(t, "1 message", func(ms []*danube.Message) bool { return len(ms) >= 1 }); string(o[0].Payload) != "h" {
		t.Errorf("other topic got %q", o[0].Payload)
	}
	for reason, want := range map[string]float64{"unmapped": 1, "oversized": 1} {
		if got := metric(t, tel, dropped("mqtt-msgs", reason)); got != want {
			t.Errorf("dropped %s = %v, want %v", reason, got, want)
		}
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if all := append(colTemp.Payloads(), colOther.Payloads()...); slices.Contains(all, "unmapped") {
		t.Errorf("an unmapped message was published: %q", all)
	}
}

// TestServerRejectsBadCredentials: without the right password a device cannot connect.
func TestServerRejectsBadCredentials(t *testing.T) {
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "mqtt-auth", "/default/auth")
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "#=/default/auth")
	c.ServerTCPAddr = addr
	c.ServerUsers = config.NewSecret("dev:pw")
	r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("intruder").SetUsername("dev").SetPassword("wrong").SetConnectTimeout(mqttTimeout))
	tok := cl.Connect()
	if !tok.WaitTimeout(mqttTimeout) || tok.Error() == nil || !strings.Contains(tok.Error().Error(), "not Authorized") {
		t.Fatalf("connect with a wrong password: %v, want not authorized", tok.Error())
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestClientQoSLevelsAndSharedSubscription: two replicas share "$share/<group>/..." on the real
// broker; QoS 0, 1 and 2 publishes all arrive in Danube, each handled by one of the replicas, and
// both replicas took part.
func TestClientQoSLevelsAndSharedSubscription(t *testing.T) {
	ep := harness.MQTT(t)
	name := harness.Name(t)
	b := runtimetest.StartBroker(t)
	topic := "/default/shared"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	var runs []*runtimetest.Running
	for i := range 2 {
		cfg := runtimetest.SourceConfig(b, fmt.Sprintf("replica%d", i), topic)
		c := baseConfig(cfg, mqttsource.ClientMode, "$share/"+name+"/"+name+"/#="+topic)
		c.BrokerURLs, c.ClientID, c.QoS = []config.URL{config.URL(ep.URL)}, fmt.Sprintf("%s-%d", name, i), 2
		t.Cleanup(func() { forgetSession(t, ep.URL, c.ClientID) })
		runs = append(runs, runtimetest.StartSource(t, cfg, newSource(t, c), true))
	}
	pub := connect(t, ep.URL, name+"-pub", false)
	var want []string
	for qos := range byte(3) {
		var ps [][]byte
		for i := range 20 {
			ps = append(ps, fmt.Appendf(nil, "q%d-%d", qos, i))
			want = append(want, string(ps[len(ps)-1]))
		}
		publish(t, pub, qos, func(p []byte) string { return name + "/dev" + string(p[len(p)-1]) }, ps...)
	}
	got := col.WaitFor(t, "all 60 payloads", func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	})
	for _, m := range got {
		if q := m.Attributes["mqtt.qos"]; q != string(m.Payload[1]) {
			t.Errorf("%s delivered with mqtt.qos=%s", m.Payload, q)
		}
	}
	for i, r := range runs {
		if n := r.Metric(t, fmt.Sprintf(`connector_records_processed_total{connector="replica%d"}`, i)); n < 1 {
			t.Errorf("replica %d published %v messages; a shared subscription should spread them", i, n)
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// dropped is the Prometheus series of mqtt_messages_dropped_total for connector and reason.
func dropped(connector, reason string) string {
	return fmt.Sprintf(`mqtt_messages_dropped_total{connector=%q,reason=%q}`, connector, reason)
}

// metric returns the value of series on tel's /metrics, -1 when absent.
func metric(t *testing.T, tel *telemetry.Server, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}
