package mqttsource_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// TestClientPublishesOncePerMessage: in client mode a message whose topic matches several filters
// is published once, to its first match, as in server mode: with the README's example (a narrow
// filter, then a broad one) and with two filters that overlap without either covering the other
// (both are subscribed, and paho would call each subscription's handler).
func TestClientPublishesOncePerMessage(t *testing.T) {
	ep := harness.MQTT(t)
	for _, tc := range []struct{ name, first, second string }{
		{"NarrowThenBroad", "%s/+/temp", "%s/#"},
		{"PartialOverlap", "%s/+/temp", "%s/l1/+"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := harness.Name(t)
			b := runtimetest.StartBroker(t)
			first, second := "/default/first", "/default/second"
			runtimetest.CreateTopic(t, b, first)
			runtimetest.CreateTopic(t, b, second)
			colFirst, colSecond := runtimetest.Collect(t, b, first, "reader"), runtimetest.Collect(t, b, second, "reader")
			cfg := runtimetest.SourceConfig(b, "mqtt-once", first)
			c := baseConfig(cfg, mqttsource.ClientMode, fmt.Sprintf(tc.first+"="+first+";"+tc.second+"="+second, name, name))
			c.BrokerURLs, c.ClientID = []config.URL{config.URL(ep.URL)}, name
			t.Cleanup(func() { forgetSession(t, ep.URL, name) })
			r := runtimetest.StartSource(t, cfg, newSource(t, c), true)
			pub := connect(t, ep.URL, name+"-pub", false)
			const n = 20
			for i := range n {
				publish(t, pub, 1, func([]byte) string { return name + "/l1/temp" }, fmt.Appendf(nil, "t%d", i))
				publish(t, pub, 1, func([]byte) string { return name + "/l1/hum" }, fmt.Appendf(nil, "h%d", i))
			}
			// last on each MQTT topic: with PUBLISH_ORDER=key whatever came before it on that topic
			// (a second copy included) is in Danube when it is
			publish(t, pub, 1, func([]byte) string { return name + "/l1/temp" }, []byte("end"))
			publish(t, pub, 1, func([]byte) string { return name + "/l1/hum" }, []byte("end"))
			ended := func(ms []*danube.Message) bool { return len(ms) > 0 && string(ms[len(ms)-1].Payload) == "end" }
			temps, hums := colFirst.WaitFor(t, "the end marker", ended), colSecond.WaitFor(t, "the end marker", ended)
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			if len(temps) != n+1 || len(hums) != n+1 {
				t.Errorf("published %d temperature messages to %s and %d humidity messages to %s, want %d each (one per MQTT message):\n%q\n%q",
					len(temps), first, len(hums), second, n+1, colFirst.Payloads(), colSecond.Payloads())
			}
		})
	}
}

// TestClientWaitsForMQTTBroker: with the MQTT broker down at start the connector does not exit: it
// waits, says why on /readyz and in the log, and starts when the broker appears.
func TestClientWaitsForMQTTBroker(t *testing.T) {
	mq := startMosquitto(t)
	mq.stop(t)
	b := runtimetest.StartBroker(t)
	topic := "/default/mqtt-late"
	runtimetest.CreateTopic(t, b, topic)
	col := runtimetest.Collect(t, b, topic, "reader")
	cfg := runtimetest.SourceConfig(b, "mqtt-late", topic)
	cfg.RetryBackoff, cfg.RetryMaxBackoff = config.Millis(20*time.Millisecond), config.Millis(200*time.Millisecond)
	c := baseConfig(cfg, mqttsource.ClientMode, "sensors/#="+topic)
	c.BrokerURLs, c.ClientID = []config.URL{config.URL(mq.url)}, "mqtt-late"
	logs := &logBuffer{}
	r := runtimetest.StartSource(t, cfg, newSource(t, c), false, runtime.WithLogger(slogText(logs)))
	want := "mqtt-late/external: waiting for the external system: MQTT broker " + mq.url + " not reachable"
	deadline := time.Now().Add(mqttTimeout)
	for {
		if r.Done() {
			t.Fatalf("the connector stopped while the MQTT broker was down: %v", r.Wait())
		}
		if err := r.Telemetry.Ready(context.Background()); err != nil && strings.Contains(err.Error(), want) && logs.count("external system not reachable yet; waiting") > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness %v, want %q and the waiting logged:\n%s", r.Telemetry.Ready(context.Background()), want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mq.start(t)
	r.WaitReady(t)
	t.Cleanup(func() { forgetSession(t, mq.url, "mqtt-late") })
	dev := connect(t, mq.url, "mqtt-late-dev", false)
	publish(t, dev, 1, func([]byte) string { return "sensors/x" }, []byte("after the wait"))
	col.WaitFor(t, "the message", func(ms []*danube.Message) bool { return len(ms) == 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestClientRefusedLoginFailsFast: a broker that refuses the login at the first connection stops
// the connector at once (waiting cannot fix a wrong password), with an error that names the
// client and user and says what to check, without the password.
func TestClientRefusedLoginFailsFast(t *testing.T) {
	fb := startFakeBroker(t, func(int) byte { return 5 }) // CONNACK: not authorized
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "mqtt-denied", "/default/denied")
	c := baseConfig(cfg, mqttsource.ClientMode, "sensors/#=/default/denied")
	c.BrokerURLs, c.ClientID, c.Username, c.Password = []config.URL{config.URL("tcp://" + fb.addr)}, "gw-1", "gw", config.NewSecret("wr0ng")
	r := runtimetest.StartSource(t, cfg, newSource(t, c), false)
	done := make(chan error, 1)
	go func() { done <- r.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(mqttTimeout):
		t.Fatalf("still running %v after the broker refused the login", mqttTimeout)
	}
	want := fmt.Sprintf(`MQTT broker tcp://%s refused the login of client "gw-1" as user "gw": not Authorized; check MQTT_USERNAME and MQTT_PASSWORD`, fb.addr)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "wr0ng") {
		t.Fatalf("got %v, want an error containing %q", err, want)
	}
}

// TestClientReconnectBackoffGrows: once connected, a broker that drops the connection and then
// refuses the login (a password changed at the broker) is retried with waits that double up to
// RETRY_MAX_BACKOFF_MS, not at a fixed interval; /readyz and the log say why meanwhile.
func TestClientReconnectBackoffGrows(t *testing.T) {
	fb := startFakeBroker(t, func(attempt int) byte {
		if attempt == 1 {
			return 0
		}
		return 5
	})
	b := runtimetest.StartBroker(t)
	cfg := runtimetest.SourceConfig(b, "mqtt-backoff", "/default/backoff")
	const maxWait = 2 * time.Second
	cfg.RetryMaxBackoff = config.Millis(maxWait)
	c := baseConfig(cfg, mqttsource.ClientMode, "sensors/#=/default/backoff")
	c.BrokerURLs, c.ClientID = []config.URL{config.URL("tcp://" + fb.addr)}, "gw-backoff"
	o := newObserved(t, c)
	r := runtimetest.StartSource(t, cfg, o.src, false)
	times := fb.waitAttempts(t, 5) // the accepted login, then 4 refused ones
	if err := r.Telemetry.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("readiness while refused: %v, want not Authorized", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(maxWait) // paho's reconnect goroutine ends after its current wait
	// paho waits 1 s, then 2 s, then 2 s (the cap) between refused attempts: each wait is a lower bound
	for i, least := range []time.Duration{time.Second, maxWait, maxWait} {
		if gap := times[i+2].Sub(times[i+1]); gap < least*9/10 {
			t.Errorf("wait before refused attempt %d: %v, want at least %v (attempts at %v)", i+2, gap, least, times)
		}
	}
	if o.logs.count("MQTT reconnect failed; retrying with a growing wait") < 3 {
		t.Errorf("the refused reconnects are not logged:\n%s", o.logs.String())
	}
}

// fakeBroker answers each MQTT 3.1.1 CONNECT with the CONNACK code that answer gives for that
// attempt (1, 2, ...) and records when it came; an accepted connection is closed 100 ms later.
type fakeBroker struct {
	addr   string
	mu     sync.Mutex
	times  []time.Time
	answer func(attempt int) byte
}

func startFakeBroker(t *testing.T, answer func(attempt int) byte) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBroker{addr: l.Addr().String(), answer: answer}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				fb.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	return fb
}

func (fb *fakeBroker) serve(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(mqttTimeout))
	r := bufio.NewReader(conn)
	if _, err := r.ReadByte(); err != nil { // CONNECT's type byte
		return
	}
	n, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		n |= int(b&0x7f) << shift
		if shift += 7; b&0x80 == 0 {
			break
		}
	}
	if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
		return
	}
	fb.mu.Lock()
	fb.times = append(fb.times, time.Now())
	code := fb.answer(len(fb.times))
	fb.mu.Unlock()
	if _, err := conn.Write([]byte{0x20, 0x02, 0x00, code}); err != nil || code != 0 {
		return
	}
	time.Sleep(100 * time.Millisecond)
}

// waitAttempts waits until n CONNECTs came and returns when each came.
func (fb *fakeBroker) waitAttempts(t *testing.T, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(2 * mqttTimeout)
	for {
		fb.mu.Lock()
		times := append([]time.Time(nil), fb.times...)
		fb.mu.Unlock()
		if len(times) >= n {
			return times
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connection attempts after %v, want %d", len(times), 2*mqttTimeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
