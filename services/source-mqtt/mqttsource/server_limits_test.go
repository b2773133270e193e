package mqttsource_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// observed is a connector whose log lines and metrics a test reads.
type observed struct {
	src  runtime.SourceConnector[mqttsource.Seq]
	logs *logBuffer
	tel  *telemetry.Server
	name string
}

// waitConnections waits until mqtt_server_connections is n.
func (o observed) waitConnections(t *testing.T, n int) {
	t.Helper()
	want := fmt.Sprintf("mqtt_server_connections{connector=%q} %d", o.name, n)
	deadline := time.Now().Add(mqttTimeout)
	for {
		rec := httptest.NewRecorder()
		o.tel.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if strings.Contains(rec.Body.String(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, rec.Body.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newObserved(t *testing.T, c *mqttsource.Config) observed {
	t.Helper()
	tel, err := telemetry.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	src, err := mqttsource.New(c, runtime.NewResources(&c.Common, runtime.WithTelemetry(tel), runtime.WithLogger(slogText(logs))))
	if err != nil {
		t.Fatal(err)
	}
	return observed{src: src, logs: logs, tel: tel, name: c.ConnectorName}
}

// TestServerOversizedPayloadFromPersistentSession: a device with a persistent session publishes a
// payload far above MQTT_MAX_PAYLOAD_BYTES (and above the 64 KiB of slack mochi was given before),
// then 10 normal messages. The oversized one is acknowledged and counted, not published, and the
// device's next 10 messages all arrive: the device is not disconnected into resending it forever.
func TestServerOversizedPayloadFromPersistentSession(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/oversized"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := runtimetest.SourceConfig(b, "mqtt-oversized", topic)
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "#="+topic)
	c.ServerTCPAddr, c.ServerAnonymous, c.MaxPayload = addr, true, 1000
	o := newObserved(t, c)
	r := runtimetest.StartSource(t, cfg, o.src, true)
	dev := newDevice(t, "tcp://"+addr, "device-oversized", "sensors")
	if tok := dev.c.Publish("sensors/big", 1, false, bytes.Repeat([]byte("x"), 3<<20)); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
		t.Fatalf("the 3 MiB publish was not acknowledged: %v", tok.Error())
	}
	dev.publish(10)
	dev.confirmed(t)
	if dups := distinct(t, col, 10); dups != 0 {
		t.Errorf("%d duplicates: the device was disconnected and resent", dups)
	}
	if got := metric(t, o.tel, dropped("mqtt-oversized", "oversized")); got != 1 {
		t.Errorf("dropped oversized = %v, want 1", got)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := o.logs.count("MQTT payload above MQTT_MAX_PAYLOAD_BYTES"); n != 1 {
		t.Errorf("%d oversized warnings, want 1:\n%s", n, o.logs.String())
	}
}

// TestServerSysPublishAcknowledged: a device's QoS 1 and QoS 2 publishes to $SYS topics (which
// mochi ignores) are acknowledged, counted as dropped and not published.
func TestServerSysPublishAcknowledged(t *testing.T) {
	b := runtimetest.StartBroker(t)
	topic := "/default/sys"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := runtimetest.SourceConfig(b, "mqtt-sys", topic)
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "$SYS/#="+topic+";#="+topic)
	c.ServerTCPAddr, c.ServerAnonymous = addr, true
	o := newObserved(t, c)
	r := runtimetest.StartSource(t, cfg, o.src, true)
	dev := connect(t, "tcp://"+addr, "device-sys", false)
	publish(t, dev, 1, func([]byte) string { return "$SYS/broker/fake" }, []byte("q1"))
	publish(t, dev, 2, func([]byte) string { return "$sys/other" }, []byte("q2"))
	publish(t, dev, 1, func([]byte) string { return "sensors/after" }, []byte("after"))
	col.WaitFor(t, "the message after", func(ms []*danube.Message) bool { return len(ms) >= 1 })
	if got := metric(t, o.tel, dropped("mqtt-sys", "sys")); got != 2 {
		t.Errorf("dropped sys = %v, want 2", got)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := col.Payloads(); len(got) != 1 || got[0] != "after" {
		t.Errorf("published %q, want only \"after\"", got)
	}
}

// TestServerConnectDeadline: a socket that never sends CONNECT is closed after
// MQTT_SERVER_CONNECT_TIMEOUT_MS, and one that announces a CONNECT larger than a CONNECT may be is
// closed at once; a device that logs in is not affected by the deadline.
func TestServerConnectDeadline(t *testing.T) {
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "mqtt-deadline", "/default/deadline")
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "#=/default/deadline")
	c.ServerTCPAddr, c.ServerAnonymous, c.ServerConnectTimeout = addr, true, config.Millis(300*time.Millisecond)
	o := newObserved(t, c)
	r := runtimetest.StartSource(t, cfg, o.src, true)

	silent := dial(t, addr)
	if err := closedByServer(silent); err != nil {
		t.Errorf("silent socket: %v", err)
	}
	huge := dial(t, addr)
	if _, err := huge.Write([]byte{0x10, 0xff, 0xff, 0xff, 0x7f}); err != nil { // CONNECT of 256 MiB
		t.Fatal(err)
	}
	if err := closedByServer(huge); err != nil {
		t.Errorf("socket announcing a huge CONNECT: %v", err)
	}
	dev := connect(t, "tcp://"+addr, "device-deadline", false)
	time.Sleep(3 * time.Duration(c.ServerConnectTimeout)) // longer than the deadline: it must not apply after the login
	publish(t, dev, 1, func([]byte) string { return "sensors/x" }, []byte("still connected"))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := o.logs.count("no CONNECT within MQTT_SERVER_CONNECT_TIMEOUT_MS"); n != 1 {
		t.Errorf("%d connect-deadline warnings, want 1:\n%s", n, o.logs.String())
	}
}

// TestServerClientLimit: with MQTT_SERVER_MAX_CLIENTS=2, two sockets that have not even sent
// CONNECT fill the server: a device's connection is refused until one of them goes.
func TestServerClientLimit(t *testing.T) {
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "mqtt-limit", "/default/limit")
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "#=/default/limit")
	c.ServerTCPAddr, c.ServerAnonymous, c.ServerMaxClients = addr, true, 2
	o := newObserved(t, c)
	r := runtimetest.StartSource(t, cfg, o.src, true)
	idle := []net.Conn{dial(t, addr), dial(t, addr)}
	o.waitConnections(t, 2) // the server counted both before the device tries
	waitLog(t, o.logs, "MQTT connection refused: MQTT_SERVER_MAX_CLIENTS connections are open", func() {
		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("device-over").SetConnectTimeout(mqttTimeout))
		if tok := cl.Connect(); tok.WaitTimeout(mqttTimeout) && tok.Error() == nil {
			cl.Disconnect(0)
			t.Fatal("a third connection was accepted with MQTT_SERVER_MAX_CLIENTS=2")
		}
	})
	_ = idle[0].Close()
	deadline := time.Now().Add(mqttTimeout)
	for { // the server notices the closed socket, then has room again
		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("device-room").SetConnectTimeout(mqttTimeout))
		if tok := cl.Connect(); tok.WaitTimeout(mqttTimeout) && tok.Error() == nil {
			cl.Disconnect(100)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no room after a connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServerLogsName: a refused login is logged naming the client id, the user and the address
// (never the password); a device that goes away is not a WARN with an empty message.
func TestServerLogsName(t *testing.T) {
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "mqtt-logs", "/default/logs")
	addr := harness.FreeAddr(t)
	c := baseConfig(cfg, mqttsource.ServerMode, "#=/default/logs")
	c.ServerTCPAddr, c.ServerUsers = addr, config.NewSecret("dev:pw")
	o := newObserved(t, c)
	r := runtimetest.StartSource(t, cfg, o.src, true)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("intruder").SetUsername("dev").SetPassword("wr0ng").SetConnectTimeout(mqttTimeout))
	if tok := cl.Connect(); !tok.WaitTimeout(mqttTimeout) || tok.Error() == nil {
		t.Fatalf("connect with a wrong password: %v, want refused", tok.Error())
	}
	dev := connect(t, "tcp://"+addr, "device-logs", false, func(o *paho.ClientOptions) { o.SetUsername("dev").SetPassword("pw") })
	publish(t, dev, 1, func([]byte) string { return "sensors/x" }, []byte("m"))
	dev.Disconnect(100)                                                                // a clean DISCONNECT
	waitLog(t, o.logs, "MQTT connection closed", func() { _ = dial(t, addr).Close() }) // a socket that just goes
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	logs := o.logs.String()
	for _, want := range []string{"client_id=intruder", "user=dev", "remote=127.0.0.1:", "listener=tcp"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the refused login's log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "wr0ng") {
		t.Errorf("the log shows the password:\n%s", logs)
	}
	if strings.Contains(logs, `msg=""`) {
		t.Errorf("a log line without a message:\n%s", logs)
	}
}

// slogText logs to w in text form, debug lines included.
func slogText(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, mqttTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer waits (at most mqttTimeout) for the server to close c.
func closedByServer(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(mqttTimeout))
	n, err := c.Read(make([]byte, 16))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("still open after %v", mqttTimeout)
	case err == nil:
		return fmt.Errorf("the server sent %d bytes, want the connection closed", n)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "reset"):
		return nil
	}
	return err
}

// waitLog runs f, then waits until the log has a line containing s.
func waitLog(t *testing.T, logs *logBuffer, s string, f func()) {
	t.Helper()
	f()
	deadline := time.Now().Add(mqttTimeout)
	for logs.count(s) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q after %v:\n%s", s, mqttTimeout, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRecordDanubeRefusesGoesToDLQ: a payload under MQTT_MAX_PAYLOAD_BYTES but over Danube's 4 MiB
// limit. With DLQ_TOPIC (server mode) its descriptor goes there naming the MQTT topic and the
// device, the device gets its PUBACK and the stream goes on; without (client mode) the connector
// stops with an error naming the MQTT topic.
func TestRecordDanubeRefusesGoesToDLQ(t *testing.T) {
	big := bytes.Repeat([]byte("y"), danube.MaxMessageSize+1<<19)
	t.Run("ServerWithDLQ", func(t *testing.T) {
		b := runtimetest.StartBroker(t)
		topic, dlq := "/default/refused", "/default/refused-dlq"
		runtimetest.CreateTopic(t, b, topic)
		runtimetest.CreateTopic(t, b, dlq)
		col, dead := runtimetest.Collect(t, b, topic, "reader"), runtimetest.Collect(t, b, dlq, "reader")
		cfg := runtimetest.SourceConfig(b, "mqtt-refused", topic)
		cfg.DLQTopic = dlq
		addr := harness.FreeAddr(t)
		c := baseConfig(cfg, mqttsource.ServerMode, "#="+topic)
		c.ServerTCPAddr, c.ServerAnonymous, c.MaxPayload = addr, true, 8<<20
		r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
		dev := connect(t, "tcp://"+addr, "device-refused", false)
		if tok := dev.Publish("sensors/big", 1, false, big); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
			t.Fatalf("the %d-byte publish was not acknowledged: %v", len(big), tok.Error())
		}
		publish(t, dev, 1, func([]byte) string { return "sensors/small" }, []byte("after"))
		col.WaitFor(t, "the message after", func(ms []*danube.Message) bool { return len(ms) == 1 })
		d := dead.WaitFor(t, "the descriptor", func(ms []*danube.Message) bool { return len(ms) == 1 })[0]
		for _, want := range []string{`"origin":"MQTT topic sensors/big from client device-refused"`, fmt.Sprintf(`"size":%d`, len(big)), `"mqtt.topic":"sensors/big"`} {
			if !strings.Contains(string(d.Payload), want) {
				t.Errorf("descriptor lacks %s: %.600s", want, d.Payload)
			}
		}
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ClientWithoutDLQ", func(t *testing.T) {
		ep := harness.MQTT(t)
		name := harness.Name(t)
		b := runtimetest.StartBroker(t)
		topic := "/default/refused"
		runtimetest.CreateTopic(t, b, topic)
		cfg := runtimetest.SourceConfig(b, "mqtt-refused", topic)
		c := baseConfig(cfg, mqttsource.ClientMode, name+"/#="+topic)
		c.BrokerURLs, c.ClientID, c.MaxPayload = []config.URL{config.URL(ep.URL)}, name, 8<<20
		t.Cleanup(func() { forgetSession(t, ep.URL, name) })
		r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
		pub := connect(t, ep.URL, name+"-pub", false)
		if tok := pub.Publish(name+"/big", 1, false, big); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		want := fmt.Sprintf("MQTT topic %s/big (received by client %s)", name, name)
		if err := r.Wait(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "set DLQ_TOPIC") {
			t.Fatalf("got %v, want an error naming %q", err, want)
		}
	})
}
