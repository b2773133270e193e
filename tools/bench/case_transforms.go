package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func init() {
	register(sinkTransformsCase{})
	register(sourceTransformsCase{})
}

// The chains: three steps each, so that every record is parsed, changed and encoded again; the
// filters keep every record, so both variants deliver the same count.
var (
	sinkChain = []string{
		"TRANSFORMS=only_paid,rename,insert",
		"TRANSFORM_ONLY_PAID_TYPE=filter", `TRANSFORM_ONLY_PAID_EXPR=payload.status == "paid"`,
		"TRANSFORM_RENAME_FIELDS=order_id:id,customer.id:customer_id",
		`TRANSFORM_INSERT_EXPR={"danube_topic": topic, "danube_offset": offset}`,
	}
	sourceChain = []string{
		"TRANSFORMS=drop_debug,mask_owner,known_devices",
		"TRANSFORM_DROP_DEBUG_TYPE=drop", "TRANSFORM_DROP_DEBUG_FIELDS=debug",
		"TRANSFORM_MASK_OWNER_TYPE=mask", "TRANSFORM_MASK_OWNER_FIELDS=owner.name,owner.email",
		"TRANSFORM_KNOWN_DEVICES_TYPE=filter", `TRANSFORM_KNOWN_DEVICES_EXPR=payload.device.startsWith("dev-")`,
	}
)

const (
	noChainVariant = "no transforms"
	chainVariant   = "3-step chain"
)

// orderEvent is the sink case's message: a JSON order of about 640 bytes.
func orderEvent(i int) []byte {
	return fmt.Appendf(nil, `{"order_id":%d,"status":"paid","created":"2026-01-02T03:04:05.%06dZ",`+
		`"customer":{"id":"c-%d","name":"Customer %d","email":"customer%d@example.com","country":"AT"},`+
		`"amount":"129.90","currency":"EUR","items":[{"sku":"SKU-10001","name":"Widget","qty":1,"price":"99.90"},`+
		`{"sku":"SKU-10002","name":"Gadget","qty":2,"price":"10.00"},{"sku":"SKU-10003","name":"Cable","qty":1,"price":"10.00"}],`+
		`"shipping":{"method":"standard","address":{"street":"Ringstrasse 1","city":"Vienna","zip":"1010","country":"AT"}},`+
		`"payment":{"method":"card","provider":"acme-pay","reference":"pay-%08d"},"tags":["web","returning"],`+
		`"note":"leave at the door, ring twice"}`, i, i%1000000, i%5000, i%5000, i%5000, i)
}

// deviceEvent is the source case's message: a JSON reading of about 230 bytes.
func deviceEvent(i int) []byte {
	return fmt.Appendf(nil, `{"device":"dev-%d","seq":%d,"ts":"2026-01-02T03:04:05.%06dZ","temperature":21.5,`+
		`"humidity":40,"battery":87,"firmware":"1.4.2","owner":{"name":"Owner %d","email":"owner%d@example.com"},`+
		`"debug":{"rssi":-61,"uptime_s":%d,"heap":53211}}`, i%mqttDevices, i, i%1000000, i%mqttDevices, i%mqttDevices, i)
}

// sinkTransformsCase runs the sink-http binary twice on the same JSON messages: without
// transforms, and with a three-step chain.
type sinkTransformsCase struct{}

func (sinkTransformsCase) Name() string { return "sink-http-transforms" }

func (sinkTransformsCase) About() string {
	return "What a transform chain costs a sink: JSON orders of about 640 bytes, already in a reliable topic of " +
		"the in-process development broker, delivered by the `sink-http` binary to a local receiver answering " +
		"200 at once (CPU-bound), once without transforms (the baseline) and once with " +
		"`TRANSFORMS=only_paid,rename,insert`: a CEL filter keeping every order (`payload.status == \"paid\"`), " +
		"a rename of two fields (one nested) and an insert of the Danube topic and offset computed by CEL, so " +
		"each message is parsed, changed and encoded again. Settings as in `sink-http` (`default`: one request " +
		"at a time; `tuned`: MAX_IN_FLIGHT=32, BATCH_SIZE=100). CPU is the sink process's user+system time " +
		"over its whole life per message, peak RSS its VmHWM. Goal: the chain costs at most 10% more CPU per " +
		"message (CPU ratio at most 1.10×)."
}

func (sinkTransformsCase) Run(ctx context.Context, env *Env) (Result, error) {
	bin, err := env.Build(ctx, "services/sink-http")
	if err != nil {
		return Result{}, err
	}
	n := 20000
	if env.Quick {
		n = 200
	}
	var res Result
	for _, set := range sinkSettings {
		g := Group{Setting: set.name + ", latency 0s"}
		for _, chain := range [][]string{nil, sinkChain} {
			env.Logf("sink-http-transforms: %s: %s: %d messages", g.Setting, variantName(chain), n)
			row, err := measureSinkChain(ctx, bin, n, set.window, append(append([]string{}, set.env...), chain...))
			if err != nil {
				return Result{}, fmt.Errorf("%s: %s: %w", g.Setting, variantName(chain), err)
			}
			row.Variant = variantName(chain)
			g.Rows = append(g.Rows, row)
		}
		res.Groups = append(res.Groups, g)
	}
	return res, nil
}

func variantName(chain []string) string {
	if chain == nil {
		return noChainVariant
	}
	return chainVariant
}

// measureSinkChain returns the row of the sink draining n orders from a new broker with vars
// added to its environment.
func measureSinkChain(ctx context.Context, bin string, n, window int, vars []string) (Row, error) {
	const topic = "/default/bench-transforms"
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: window})
	if err != nil {
		return Row{}, err
	}
	defer broker.Close()
	err = fillTopic(ctx, broker.URL(), topic, "webhook-1", "webhook-sink", n, func(i int) danube.ProducerMessage {
		return danube.ProducerMessage{Payload: orderEvent(i), Key: fmt.Sprintf("k%d", i%64)}
	})
	if err != nil {
		return Row{}, err
	}
	rc, err := startReceiver(0)
	if err != nil {
		return Row{}, err
	}
	defer rc.close()
	p := rc.expect(n)
	sink, err := startChild(bin, append(sinkEnv(broker.URL(), rc.URL, topic, vars...), "LOG_LEVEL=info"))
	if err != nil {
		return Row{}, err
	}
	if err := waitCtx(ctx, p.done, 5*time.Minute); err != nil {
		_ = sink.stop()
		return Row{}, fmt.Errorf("sink delivered %d of %d: %w\n%s", p.got.Load(), n, err, sink.out.String())
	}
	if err := sink.stop(); err != nil {
		return Row{}, err
	}
	return Row{Msgs: n, Rate: p.rate(), CPUMicros: sink.cpuMicros(n), RSSMiB: sink.rss}, checkChain(vars, sink.out.String())
}

// checkChain makes sure the chain ran when vars set one: a chain the connector ignored would
// measure nothing. With LOG_LEVEL=info the runtime logs its steps once, at start.
func checkChain(vars []string, out string) error {
	for _, v := range vars {
		if strings.HasPrefix(v, "TRANSFORMS=") {
			if !strings.Contains(out, "transform steps") {
				return fmt.Errorf("%s set, but the connector logged no transform steps:\n%s", v, out)
			}
		}
	}
	return nil
}

// sourceTransformsCase runs the source-mqtt binary twice on the same JSON readings: without
// transforms, and with a three-step chain.
type sourceTransformsCase struct{}

func (sourceTransformsCase) Name() string { return "source-mqtt-transforms" }

func (sourceTransformsCase) About() string {
	return "What a transform chain costs a source: QoS 1 JSON readings of about 230 bytes on 64 MQTT topics, " +
		"queued by the MQTT broker (Mosquitto, `IT_MQTT_URL`) in a persistent session, drained by the " +
		"`source-mqtt` binary into a reliable topic of the in-process development broker (as in " +
		"`source-mqtt`), once without transforms (the baseline) and once with " +
		"`TRANSFORMS=drop_debug,mask_owner,known_devices`: drop a nested object, redact two nested fields and a " +
		"CEL filter keeping every reading (`payload.device.startsWith(\"dev-\")`), so each message is parsed, " +
		"changed and encoded again. The rate runs from the first to the last message the development broker " +
		"accepted; CPU is the connector process's user+system time over its whole life per message, peak RSS " +
		"its VmHWM. Goal: the chain costs at most 10% more CPU per message (CPU ratio at most 1.10×)."
}

func (sourceTransformsCase) Run(ctx context.Context, env *Env) (Result, error) {
	url := os.Getenv("IT_MQTT_URL")
	if url == "" {
		return Result{}, unavailable("source-mqtt-transforms: no MQTT broker: set IT_MQTT_URL (source /tmp/it-shared.env, or tools/itservers)")
	}
	bin, err := env.Build(ctx, "services/source-mqtt")
	if err != nil {
		return Result{}, err
	}
	n := 20000
	if env.Quick {
		n = 500
	}
	set := mqttSettings[0]
	g := Group{Setting: set.name}
	for _, chain := range [][]string{nil, sourceChain} {
		env.Logf("source-mqtt-transforms: %s: %s: %d messages", set.name, variantName(chain), n)
		row, err := measureSourceChain(ctx, bin, url, n, append(append([]string{}, set.env...), chain...))
		if err != nil {
			return Result{}, fmt.Errorf("%s: %s: %w", set.name, variantName(chain), err)
		}
		row.Variant = variantName(chain)
		g.Rows = append(g.Rows, row)
	}
	return Result{Groups: []Group{g}}, nil
}

// measureSourceChain queues n readings for a new persistent MQTT session and returns the row of
// source-mqtt draining it, with vars added to its environment.
func measureSourceChain(ctx context.Context, bin, url string, n int, vars []string) (Row, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := "bench-mqtt-tf-" + hex.EncodeToString(b[:])
	id, filter := run+"-connector", run+"/#"
	defer forgetMQTTSession(url, id)
	if err := queueMQTT(url, id, filter, run, n); err != nil {
		return Row{}, err
	}
	const topic = "/default/bench-mqtt-transforms"
	dc, err := newDanubeCounter(ctx, topic, n)
	if err != nil {
		return Row{}, err
	}
	defer dc.close()
	conn, err := startChild(bin, append([]string{
		"DANUBE_SERVICE_URL=" + dc.broker.URL(), "CONNECTOR_NAME=" + id, "DANUBE_TOPIC=" + topic,
		"MQTT_BROKER_URL=" + url, "MQTT_CLIENT_ID=" + id, "MQTT_TOPIC_MAPPINGS=" + filter + "=" + topic,
		"METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text", "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT_MS=5000",
	}, vars...))
	if err != nil {
		return Row{}, err
	}
	if err := waitCtx(ctx, dc.done, 5*time.Minute); err != nil {
		_ = conn.stop()
		return Row{}, fmt.Errorf("source-mqtt published %d of %d: %w\n%s", dc.got.Load(), n, err, conn.out.String())
	}
	if err := conn.stop(); err != nil {
		return Row{}, err
	}
	return Row{Msgs: n, Rate: float64(n-1) / time.Duration(dc.last.Load()-dc.first.Load()).Seconds(),
		CPUMicros: conn.cpuMicros(n), RSSMiB: conn.rss}, checkChain(vars, conn.out.String())
}

// queueMQTT subscribes the persistent session id to filter, then publishes n readings at QoS 1
// on 64 topics under prefix: the broker queues them all for the session.
func queueMQTT(url, id, filter, prefix string, n int) error {
	c, err := mqttConnect(url, id, false, nil)
	if err != nil {
		return err
	}
	tok := c.Subscribe(filter, 1, nil)
	tok.Wait()
	c.Disconnect(100)
	if tok.Error() != nil {
		return tok.Error()
	}
	pub, err := mqttConnect(url, prefix+"-pub", true, nil)
	if err != nil {
		return err
	}
	defer pub.Disconnect(100)
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = pub.Publish(fmt.Sprintf("%s/dev%d", prefix, i%mqttDevices), 1, false, deviceEvent(i))
	}
	for _, tok := range toks {
		if tok.Wait(); tok.Error() != nil {
			return tok.Error()
		}
	}
	return nil
}
