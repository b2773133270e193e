package mqttsource_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// mqtt5Device is a minimal MQTT 5 client over TCP, written with mochi's packet codec (the module
// has no MQTT 5 client library; paho.mqtt.golang speaks 3.1.1).
type mqtt5Device struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialMQTT5(t *testing.T, addr, clientID string) *mqtt5Device {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, mqttTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	d := &mqtt5Device{t: t, conn: conn, r: bufio.NewReader(conn)}
	d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
	}})
	if ack := d.read(); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("MQTT 5 CONNECT answered with packet type %d, reason 0x%x", ack.FixedHeader.Type, ack.ReasonCode)
	}
	return d
}

func (d *mqtt5Device) send(pk packets.Packet) {
	d.t.Helper()
	pk.ProtocolVersion = 5
	pk.Mods.AllowResponseInfo = true // else mochi's encoder leaves out the response topic and correlation data
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		pk.FixedHeader.Qos = 1 // PUBREL's fixed header flags are 0010
		err = pk.PubrelEncode(&buf)
	default:
		d.t.Fatalf("send: packet type %d not supported here", pk.FixedHeader.Type)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	_ = d.conn.SetWriteDeadline(time.Now().Add(mqttTimeout))
	if _, err := d.conn.Write(buf.Bytes()); err != nil {
		d.t.Fatal(err)
	}
}

// read returns the next packet from the server (CONNACK, PUBACK, PUBREC or PUBCOMP).
func (d *mqtt5Device) read() packets.Packet {
	d.t.Helper()
	_ = d.conn.SetReadDeadline(time.Now().Add(mqttTimeout))
	hb, err := d.r.ReadByte()
	if err != nil {
		d.t.Fatalf("read from the MQTT server: %v", err)
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		d.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(d.r)
	if err != nil {
		d.t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(d.r, body); err != nil {
		d.t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	default:
		d.t.Fatalf("unexpected packet type %d from the MQTT server", pk.FixedHeader.Type)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	return pk
}

// TestServerMQTT5Properties: an MQTT 5 device publishes to the embedded server with user
// properties, content type, response topic, correlation data and the payload format indicator;
// they reach Danube as mqtt.user.<key>, mqtt.content_type, mqtt.response_topic,
// mqtt.correlation_data (base64) and mqtt.payload_format, beside the usual attributes. The QoS 1
// PUBACK and the QoS 2 PUBREC come only after Danube acknowledged the message.
func TestServerMQTT5Properties(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/mqtt5"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := runtimetest.SourceConfig(b, "mqtt5", topic)
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "sensors/#="+topic)
	c.ServerTCPAddr, c.ServerAnonymous = addr, true
	r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
	dev := dialMQTT5(t, addr, "dev5")
	processed := `connector_records_processed_total{connector="mqtt5"}`

	dev.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
		TopicName: "sensors/dev5/temp", Payload: []byte(`{"t":21.5}`),
		Properties: packets.Properties{
			User:        []packets.UserProperty{{Key: "site", Val: "plant-7"}, {Key: "unit", Val: "celsius"}},
			ContentType: "application/json", ResponseTopic: "replies/dev5", CorrelationData: []byte{0, 1, 2, 0xff},
			PayloadFormat: 1, PayloadFormatFlag: true,
		},
	})
	if ack := dev.read(); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 1 || ack.ReasonCode != 0 {
		t.Fatalf("QoS 1 publish answered with type %d id %d reason 0x%x, want PUBACK 1 success", ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode)
	}
	if n := r.Metric(t, processed); n < 1 {
		t.Fatalf("PUBACK sent with %v records acked by Danube, want 1", n)
	}
	dev.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, PacketID: 2,
		TopicName: "sensors/dev5/door", Payload: []byte("open"),
		Properties: packets.Properties{User: []packets.UserProperty{{Key: "site", Val: "plant-8"}}},
	})
	if rec := dev.read(); rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != 2 {
		t.Fatalf("QoS 2 publish answered with type %d id %d, want PUBREC 2", rec.FixedHeader.Type, rec.PacketID)
	}
	if n := r.Metric(t, processed); n < 2 {
		t.Fatalf("PUBREC sent with %v records acked by Danube, want 2", n)
	}
	dev.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: 2})
	if comp := dev.read(); comp.FixedHeader.Type != packets.Pubcomp || comp.PacketID != 2 {
		t.Fatalf("PUBREL answered with type %d id %d, want PUBCOMP 2", comp.FixedHeader.Type, comp.PacketID)
	}

	got := col.WaitFor(t, "2 messages", func(ms []*danube.Message) bool { return len(ms) >= 2 })
	byTopic := map[string]*danube.Message{}
	for _, m := range got {
		byTopic[m.Attributes["mqtt.topic"]] = m
	}
	checkAttrs(t, byTopic["sensors/dev5/temp"], map[string]string{
		"mqtt.topic": "sensors/dev5/temp", "mqtt.qos": "1", "mqtt.retain": "false", "mqtt.dup": "false", "mqtt.client_id": "dev5",
		"mqtt.user.site": "plant-7", "mqtt.user.unit": "celsius", "mqtt.content_type": "application/json",
		"mqtt.response_topic": "replies/dev5", "mqtt.correlation_data": "AAEC/w==", "mqtt.payload_format": "utf-8",
	}, `{"t":21.5}`)
	checkAttrs(t, byTopic["sensors/dev5/door"], map[string]string{
		"mqtt.topic": "sensors/dev5/door", "mqtt.qos": "2", "mqtt.retain": "false", "mqtt.dup": "false", "mqtt.client_id": "dev5",
		"mqtt.user.site": "plant-8",
	}, "open")
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// checkAttrs compares m's payload and its whole attribute set (telemetry's traceparent aside).
func checkAttrs(t *testing.T, m *danube.Message, want map[string]string, payload string) {
	t.Helper()
	if m == nil {
		t.Fatalf("no message with attributes %v", want)
	}
	if string(m.Payload) != payload {
		t.Errorf("payload %q, want %q", m.Payload, payload)
	}
	got := map[string]string{}
	for k, v := range m.Attributes {
		if k != "traceparent" && k != "tracestate" {
			got[k] = v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attributes\n got %v\nwant %v", got, want)
	}
}
