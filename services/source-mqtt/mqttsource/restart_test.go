package mqttsource_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// mosquitto is a Mosquitto process of one test, with persistence in its own directory, so that a
// stop (SIGTERM: Mosquitto saves its database) and a start on the same port keep the persistent
// sessions and the messages queued in them.
type mosquitto struct {
	bin, conf, url string
	cmd            *exec.Cmd
	exited         chan struct{}
}

// startMosquitto starts a private Mosquitto on a free port. Without a mosquitto binary the test is
// skipped, or fails when CI_REQUIRE_INTEGRATION=1.
func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	if err != nil {
		if os.Getenv("CI_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("mosquitto binary needed (CI_REQUIRE_INTEGRATION=1): %v", err)
		}
		t.Skipf("mosquitto binary not found (apt install mosquitto): %v", err)
	}
	dir := t.TempDir()
	addr := harness.FreeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	conf := filepath.Join(dir, "mosquitto.conf")
	// max_inflight_messages 0, max_queued_messages 0: as the shared test server, nothing is dropped.
	body := fmt.Sprintf("listener %s %s\nallow_anonymous true\npersistence true\npersistence_location %s/\n"+
		"max_inflight_messages 0\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\n", port, host, dir)
	if os.Geteuid() == 0 {
		body += "user root\n" // otherwise Mosquitto drops to the "mosquitto" user, who cannot write dir
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{bin: bin, conf: conf, url: "tcp://" + addr}
	m.start(t)
	t.Cleanup(func() { m.stop(t) })
	return m
}

// start runs Mosquitto and waits until a client can connect.
func (m *mosquitto) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stderr = os.Stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.exited) }()
	deadline := time.Now().Add(mqttTimeout)
	for {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(m.url).SetClientID("probe").SetConnectTimeout(time.Second))
		tok := c.Connect()
		if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			return
		}
		select {
		case <-m.exited:
			t.Fatalf("mosquitto -c %s exited: %v", m.conf, m.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto on %s not accepting connections after %v: %v", m.url, mqttTimeout, tok.Error())
		}
	}
}

// stop ends Mosquitto gracefully (it writes its persistence database) and waits for it.
func (m *mosquitto) stop(t *testing.T) {
	t.Helper()
	select {
	case <-m.exited:
		return
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.exited:
	case <-time.After(mqttTimeout):
		_ = m.cmd.Process.Kill()
		<-m.exited
		t.Fatalf("mosquitto did not stop on SIGTERM within %v", mqttTimeout)
	}
}

// logBuffer collects a connector's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// device publishes numbered QoS 1 and QoS 2 messages (alternating) on a few MQTT topics, through a
// paho client with a persistent session and automatic reconnects: what it publishes while its
// server is down waits in paho's store and goes out after the reconnect.
type device struct {
	c      paho.Client
	prefix string
	mu     sync.Mutex
	toks   []paho.Token
	sent   int
}

func newDevice(t *testing.T, url, id, prefix string) *device {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false).
		SetStore(paho.NewOrderedMemoryStore()). // resends in publish order after a reconnect
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).
		SetMaxReconnectInterval(100 * time.Millisecond).SetConnectTimeout(mqttTimeout))
	if tok := c.Connect(); !tok.WaitTimeout(mqttTimeout) || tok.Error() != nil {
		t.Fatalf("connect device %s to %s: %v", id, url, tok.Error())
	}
	t.Cleanup(func() {
		c.Disconnect(100)
		forgetSession(t, url, id)
	})
	return &device{c: c, prefix: prefix}
}

// publish sends the next n messages without waiting for their acknowledgements.
func (d *device) publish(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range n {
		i := d.sent
		d.toks = append(d.toks, d.c.Publish(fmt.Sprintf("%s/dev%d", d.prefix, i%5), byte(1+i%2), false, fmt.Sprintf("m%d", i)))
		d.sent++
	}
}

// confirmed waits until the MQTT server acknowledged every message sent so far.
func (d *device) confirmed(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	toks := d.toks
	d.mu.Unlock()
	for i, tok := range toks {
		if !tok.WaitTimeout(2*mqttTimeout) || tok.Error() != nil {
			t.Fatalf("publish of m%d not acknowledged: %v", i, tok.Error())
		}
	}
}

// disconnected waits until the device's client has noticed that the MQTT server went away, so that
// what it publishes next is stored and sent after its reconnect rather than written into the dying
// connection (whose token then fails with a broken pipe although the session keeps the message).
func (d *device) disconnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * mqttTimeout)
	for d.c.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatalf("the device still sees its connection open %v after the MQTT server stopped", 2*mqttTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// distinct waits until Danube holds every payload m0..m(n-1) and returns the number of duplicates.
func distinct(t *testing.T, col *runtimetest.Collector, n int) (dups int) {
	t.Helper()
	got := col.WaitFor(t, fmt.Sprintf("all %d payloads", n), func(ms []*danube.Message) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			seen[string(m.Payload)] = true
		}
		for i := range n {
			if !seen[fmt.Sprintf("m%d", i)] {
				return false
			}
		}
		return true
	})
	return len(got) - n
}

// waitNotReady waits until the connector's readiness check fails and returns its error.
func waitNotReady(t *testing.T, r *runtimetest.Running) error {
	t.Helper()
	deadline := time.Now().Add(mqttTimeout)
	for {
		if err := r.Telemetry.Ready(context.Background()); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector still ready %v after its MQTT broker stopped", mqttTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientThroughMQTTBrokerRestart: the MQTT broker (a private Mosquitto with persistence) stops
// and starts again on the same port while a device keeps publishing QoS 1 and QoS 2 messages
// (before the stop, while it is down, after the restart). The connector, subscribed at QoS 1 or 2
// in a persistent session, is not ready while disconnected, reconnects, subscribes again and
// resumes its session: every message the device published reaches Danube, including those the
// broker had acknowledged to the device and not yet delivered to (or had not had acknowledged by)
// the connector when it stopped. Duplicates are allowed and counted.
func TestClientThroughMQTTBrokerRestart(t *testing.T) {
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("QoS%d", qos), func(t *testing.T) {
			mq := startMosquitto(t)
			b := runtimetest.StartBroker(t)
			topic := "/default/mqtt-restart"
			runtimetest.CreateTopic(t, b, topic)
			col := runtimetest.Collect(t, b, topic, "reader")
			name := fmt.Sprintf("mqtt-restart-q%d", qos)
			cfg := runtimetest.SourceConfig(b, name, topic)
			c := baseConfig(cfg, mqttsource.ClientMode, "sensors/#="+topic)
			c.BrokerURLs, c.ClientID, c.QoS, c.CleanSession = []config.URL{config.URL(mq.url)}, name, qos, false
			c.RetryBackoff, c.RetryMaxBackoff = config.Millis(20*time.Millisecond), config.Millis(100*time.Millisecond) // paho's reconnect waits
			logs := &logBuffer{}
			src, err := mqttsource.New(c, runtime.NewResources(&c.Common, runtime.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))))
			if err != nil {
				t.Fatal(err)
			}
			r := runtimetest.StartSource(t, cfg, src, true)
			const subscribing = "connected to the MQTT broker; subscribing"
			if n := logs.count(subscribing); n != 1 {
				t.Fatalf("%d subscriptions before the restart, want 1", n)
			}
			dev := newDevice(t, mq.url, name+"-dev", "sensors")

			// Before the stop: a burst the broker queues in the connector's session.
			const burst = 1000
			dev.publish(burst)
			dev.confirmed(t)
			mq.stop(t)
			atStop := len(col.Messages())
			notReady := waitNotReady(t, r)
			dev.disconnected(t)

			// While the broker is down: stored by the device's paho, sent after its reconnect.
			dev.publish(200)
			mq.start(t)
			r.WaitReady(t)
			// After the restart.
			dev.publish(200)
			dev.confirmed(t)
			const n = burst + 400
			dups := distinct(t, col, n)
			if got := logs.count(subscribing); got < 2 {
				t.Errorf("%d subscriptions after the broker restart, want at least 2 (a resubscribe)", got)
			}
			if !strings.Contains(notReady.Error(), "MQTT client") {
				t.Errorf("readiness error while disconnected = %q, want it to name the MQTT client", notReady)
			}
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			t.Logf("QoS %d: %d of the %d messages the broker had acknowledged were in Danube when it stopped; "+
				"the other %d came from the resumed session; all %d arrived with %d duplicates; /readyz while down: %v",
				qos, min(atStop, burst), burst, burst-min(atStop, burst), n, dups, notReady)
		})
	}
}

// TestThroughDanubeBrokerRestart: the Danube broker (development broker with a data directory) is
// stopped and started again on the same address while a device keeps publishing QoS 1 and 2
// messages, through the shared Mosquitto (client mode) or to the embedded server (server mode).
// Nothing is confirmed to MQTT before Danube has it, so nothing is lost: every message arrives.
func TestThroughDanubeBrokerRestart(t *testing.T) {
	for _, mode := range []mqttsource.Mode{mqttsource.ClientMode, mqttsource.ServerMode} {
		t.Run(mode.String(), func(t *testing.T) {
			outage := startDanube(t)
			b := outage.b
			topic := "/default/danube-restart"
			runtimetest.CreateTopic(t, b, topic)
			col := runtimetest.Collect(t, b, topic, "reader")
			name := harness.Name(t)
			cfg := runtimetest.SourceConfig(b, "danube-restart-"+mode.String(), topic)
			var devURL string
			c := baseConfig(cfg, mode, name+"/#="+topic)
			if mode == mqttsource.ClientMode {
				ep := harness.MQTT(t)
				c.BrokerURLs, c.ClientID, c.QoS, devURL = []config.URL{config.URL(ep.URL)}, name, 2, ep.URL
				t.Cleanup(func() { forgetSession(t, ep.URL, name) })
			} else {
				addr := harness.FreeAddr(t)
				c.ServerTCPAddr, c.ServerAnonymous, devURL = addr, true, "tcp://"+addr
			}
			r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
			dev := newDevice(t, devURL, name+"-dev", name)

			dev.publish(300)
			col.WaitFor(t, "the first messages", func(ms []*danube.Message) bool { return len(ms) >= 50 })
			outage.stop()
			dev.publish(300) // while Danube is down
			outage.start(t)
			dev.publish(300)
			dev.confirmed(t)
			dups := distinct(t, col, 900)
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s mode: all 900 messages arrived through the Danube restart, %d duplicates", mode, dups)
		})
	}
}

// TestClientResumesSessionAfterMQTTBrokerRestart makes the session's part certain: Danube is down
// while a device publishes a burst, so the connector can hold only MAX_IN_FLIGHT plus its buffer of
// them and acknowledge none; Mosquitto keeps the rest queued, and the held ones in flight, in the
// connector's persistent session when it stops. After Mosquitto and Danube are back every message
// arrives, and the ones Mosquitto had sent before the stop come again flagged mqtt.dup=true: the
// broker resent them from the resumed session (a new session would have neither).
func TestClientResumesSessionAfterMQTTBrokerRestart(t *testing.T) {
	mq := startMosquitto(t)
	outage := startDanube(t)
	b := outage.b
	topic := "/default/mqtt-resume"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	const name = "mqtt-resume"
	cfg := runtimetest.SourceConfig(b, name, topic)
	cfg.MaxInFlight, cfg.BatchSize = 20, 20
	c := baseConfig(cfg, mqttsource.ClientMode, "sensors/#="+topic)
	c.BrokerURLs, c.ClientID, c.QoS = []config.URL{config.URL(mq.url)}, name, 2
	c.RetryBackoff, c.RetryMaxBackoff = config.Millis(20*time.Millisecond), config.Millis(100*time.Millisecond)
	r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
	dev := newDevice(t, mq.url, name+"-dev", "sensors")
	received := fmt.Sprintf(`connector_records_received_total{connector=%q}`, name)

	dev.publish(50)
	distinct(t, col, 50)
	outage.stop() // Danube down: nothing more is acknowledged to Mosquitto
	const burst = 500
	dev.publish(burst)
	dev.confirmed(t)                // Mosquitto has all of them
	r.WaitMetric(t, received, 50+1) // and the connector holds some, unacknowledged
	mq.stop(t)
	dev.disconnected(t)
	// Not asserted here: with Danube down and the buffer full, paho's handler waits, and paho
	// reports the lost connection only once it returns; /readyz is false for Danube meanwhile.
	notReady := r.Telemetry.Ready(context.Background())
	dev.publish(100) // while Mosquitto is down

	outage.start(t)
	mq.start(t)
	r.WaitReady(t)
	dev.publish(100)
	dev.confirmed(t)
	const n = 50 + burst + 200
	dups := distinct(t, col, n)
	resent := 0
	for _, m := range col.Messages() {
		if m.Attributes["mqtt.dup"] == "true" {
			resent++
		}
	}
	if resent == 0 {
		t.Errorf("no message arrived with mqtt.dup=true: the broker resent nothing from the connector's session")
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d messages arrived, %d duplicates, %d resent by Mosquitto from the resumed session (mqtt.dup=true); /readyz while down: %v",
		n, dups, resent, notReady)
}

// danubeOutage is a development broker a test stops and starts again on the same addresses and
// data directory: an outage of Danube as a connector sees one (Broker.Restart leaves no gap).
type danubeOutage struct {
	cfg devbroker.Config
	mu  sync.Mutex
	b   *devbroker.Broker // the first broker: its URL stays the broker's
	cur *devbroker.Broker // the one running, closed at cleanup
}

func startDanube(t *testing.T) *danubeOutage {
	t.Helper()
	d := &danubeOutage{cfg: runtimetest.BrokerConfig(t.TempDir())}
	b, err := devbroker.Start(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.b, d.cur = b, b
	d.cfg.BrokerAddr, d.cfg.AdminAddr = b.Addr(), b.AdminAddr()
	t.Cleanup(func() { d.mu.Lock(); _ = d.cur.Close(); d.mu.Unlock() })
	return d
}

func (d *danubeOutage) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	_ = d.cur.Close()
}

// start starts the broker again on its addresses and data.
func (d *danubeOutage) start(t *testing.T) {
	t.Helper()
	var err error
	for range 100 { // the old sockets may take a moment to release the ports
		var b *devbroker.Broker
		if b, err = devbroker.Start(d.cfg); err == nil {
			d.mu.Lock()
			d.cur = b
			d.mu.Unlock()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("restart the Danube broker on %s: %v", d.cfg.BrokerAddr, err)
}
