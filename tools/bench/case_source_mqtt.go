package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func init() { register(&sourceMQTTCase{}) }

// mqttSettings are the connector configurations compared with the plain subscriber.
var mqttSettings = []struct {
	name string
	env  []string
}{
	{"QoS 1, default (PUBLISH_ORDER=key)", nil},
	{"QoS 1, PUBLISH_ORDER=none", []string{"PUBLISH_ORDER=none"}},
}

const (
	mqttVariant      = "source-mqtt"
	mqttPlainVariant = "plain paho subscriber"
	mqttDevices      = 64 // MQTT topics (routing keys) the messages are spread over
)

// sourceMQTTCase measures the source-mqtt binary in client mode draining QoS 1 messages queued for
// it in a persistent session of the real MQTT broker into the development broker, beside a plain
// paho subscriber draining the same messages from its own persistent session.
type sourceMQTTCase struct {
	url string // MQTT broker (-source-mqtt-url; default IT_MQTT_URL)
}

func (c *sourceMQTTCase) Name() string { return "source-mqtt" }

func (c *sourceMQTTCase) About() string {
	return "QoS 1 messages of 256 bytes on 64 MQTT topics, queued by the MQTT broker (Mosquitto, " +
		"`IT_MQTT_URL`) in two persistent sessions before either reader starts. The `source-mqtt` binary " +
		"(client mode, a separate process configured by its environment only) drains its session into a " +
		"reliable topic of the in-process development broker, acknowledging each message to MQTT only " +
		"after Danube acknowledged it; its rate runs from the first to the last message the development " +
		"broker accepted (counted in the broker: a consumer acking each message would take the cores the " +
		"connector needs). The baseline is a plain paho subscriber in the bench process draining the other session " +
		"with automatic acknowledgements: the least any MQTT reader does per message (its RSS is not " +
		"measured: it shares the bench process). Goals: at least 0.8× the plain subscriber's rate, peak " +
		"RSS under 32 MiB."
}

func (c *sourceMQTTCase) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "source-mqtt-url", "", "MQTT broker for the source-mqtt case (default: $IT_MQTT_URL)")
}

func (c *sourceMQTTCase) Run(ctx context.Context, env *Env) (Result, error) {
	url := cmp.Or(c.url, os.Getenv("IT_MQTT_URL"))
	if url == "" {
		return Result{}, unavailable("source-mqtt: no MQTT broker: set IT_MQTT_URL (source /tmp/it-shared.env, or tools/itservers) or -source-mqtt-url")
	}
	bin, err := env.Build(ctx, "services/source-mqtt")
	if err != nil {
		return Result{}, err
	}
	n := 20000
	if env.Quick {
		n = 500
	}
	var res Result
	for _, set := range mqttSettings {
		env.Logf("source-mqtt: %s: %d messages", set.name, n)
		rows, err := measureMQTT(ctx, bin, url, n, set.env)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", set.name, err)
		}
		res.Groups = append(res.Groups, Group{Setting: set.name, Rows: rows})
	}
	return res, nil
}

// measureMQTT returns the plain subscriber's row, then the connector's.
func measureMQTT(ctx context.Context, bin, url string, n int, extra []string) ([]Row, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := "bench-mqtt-" + hex.EncodeToString(b[:])
	connID, plainID := run+"-connector", run+"-plain"
	filter := run + "/#"
	defer forgetMQTTSession(url, connID)
	defer forgetMQTTSession(url, plainID)

	// Both sessions exist and are subscribed before the messages are published: the broker queues
	// every message for both readers.
	var plainGot atomic.Int64
	var first, last atomic.Int64
	plainDone := make(chan struct{})
	onMessage := func(_ paho.Client, _ paho.Message) {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
		if plainGot.Add(1) == int64(n) {
			close(plainDone)
		}
	}
	for _, id := range []string{connID, plainID} {
		c, err := mqttConnect(url, id, false, onMessage)
		if err != nil {
			return nil, err
		}
		tok := c.Subscribe(filter, 1, nil)
		tok.Wait()
		c.Disconnect(100)
		if tok.Error() != nil {
			return nil, tok.Error()
		}
	}
	pub, err := mqttConnect(url, run+"-pub", true, nil)
	if err != nil {
		return nil, err
	}
	payload := bytes.Repeat([]byte("m"), 256)
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = pub.Publish(fmt.Sprintf("%s/dev%d", run, i%mqttDevices), 1, false, payload)
	}
	for _, tok := range toks {
		if tok.Wait(); tok.Error() != nil {
			pub.Disconnect(100)
			return nil, tok.Error()
		}
	}
	pub.Disconnect(100)

	// Baseline: the plain subscriber resumes its session and drains it.
	plain, err := mqttConnect(url, plainID, false, onMessage)
	if err != nil {
		return nil, err
	}
	err = waitCtx(ctx, plainDone, 5*time.Minute)
	plain.Disconnect(100)
	if err != nil {
		return nil, fmt.Errorf("plain subscriber received %d of %d: %w", plainGot.Load(), n, err)
	}
	plainRow := Row{Variant: mqttPlainVariant, Msgs: n, Rate: float64(n-1) / time.Duration(last.Load()-first.Load()).Seconds()}

	// The connector drains its session into Danube.
	const topic = "/default/bench-mqtt"
	dc, err := newDanubeCounter(ctx, topic, n)
	if err != nil {
		return nil, err
	}
	defer dc.close()
	vars := append([]string{
		"DANUBE_SERVICE_URL=" + dc.broker.URL(), "CONNECTOR_NAME=" + connID, "DANUBE_TOPIC=" + topic,
		"MQTT_BROKER_URL=" + url, "MQTT_CLIENT_ID=" + connID, "MQTT_TOPIC_MAPPINGS=" + filter + "=" + topic,
		"METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text", "LOG_LEVEL=warn", "SHUTDOWN_TIMEOUT_MS=5000",
	}, extra...)
	conn, err := startChild(bin, vars)
	if err != nil {
		return nil, err
	}
	if err := waitCtx(ctx, dc.done, 5*time.Minute); err != nil {
		_ = conn.stop()
		return nil, fmt.Errorf("source-mqtt published %d of %d: %w\n%s", dc.got.Load(), n, err, conn.out.String())
	}
	if err := conn.stop(); err != nil {
		return nil, err
	}
	connRow := Row{Variant: mqttVariant, Msgs: n, Rate: float64(n-1) / time.Duration(dc.last.Load()-dc.first.Load()).Seconds(),
		CPUMicros: conn.cpuMicros(n), RSSMiB: conn.rss}
	return []Row{plainRow, connRow}, nil
}

// mqttConnect connects a paho client (persistent session unless clean) whose messages go to h.
func mqttConnect(url, id string, clean bool, h paho.MessageHandler) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(clean).
		SetDefaultPublishHandler(h).SetConnectTimeout(30 * time.Second))
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", id, url, tok.Error())
	}
	return c, nil
}

// forgetMQTTSession removes a persistent session from the shared broker.
func forgetMQTTSession(url, id string) {
	if c, err := mqttConnect(url, id, true, nil); err == nil {
		c.Disconnect(100)
	}
}
