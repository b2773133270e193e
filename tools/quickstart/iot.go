package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

// iotTopic is the IoT scenario's Danube topic.
const iotTopic = "/default/readings"

// runIoT is the IoT scenario:
//
//	devices ──MQTT QoS 1──► source-mqtt (embedded MQTT server) ──► Danube ──► sink-http ──► receiver
//
// Each simulated device connects with a user name and password and publishes readings to
// devices/<id>/readings; the gateway acknowledges a reading (PUBACK) only once Danube has it.
func runIoT(ctx context.Context, args []string, out io.Writer) error {
	fs, set := newFlags("iot", "readings", 10, out)
	devices := fs.Int("devices", 3, "simulated devices publishing over MQTT")
	if err := set.parse(fs, args); err != nil {
		return err
	}
	if *devices < 1 {
		return fmt.Errorf("-devices %d: must be at least 1", *devices)
	}
	p, err := newPipeline(out, set)
	if err != nil {
		return err
	}
	defer p.close()

	recv, err := p.startDelivery(ctx, iotTopic, "quickstart-iot-webhook", "/readings")
	if err != nil {
		return err
	}
	defer recv.Close()

	// The IoT gateway: source-mqtt in server mode, the MQTT server devices connect to.
	mqttAddr, err := freeAddr()
	if err != nil {
		return err
	}
	password := newSecret("")
	if err := startSource(p, "source-mqtt", mqttsource.New,
		"CONNECTOR_NAME=quickstart-iot-gateway", "MQTT_MODE=server", "MQTT_SERVER_TCP_ADDR="+mqttAddr,
		"MQTT_SERVER_USERS=device:"+password, "MQTT_TOPIC_MAPPINGS=devices/+/readings="+iotTopic,
	); err != nil {
		return err
	}

	fmt.Fprintf(out, "Danube quickstart (iot): %d devices → MQTT server tcp://%s (source-mqtt) → broker %s → sink-http → receiver http://%s/readings\n",
		*devices, mqttAddr, p.broker.URL(), recv.Addr())
	fmt.Fprintf(out, "Devices publish readings to devices/<id>/readings (QoS 1), %g readings/s in all; Ctrl-C to stop.\n\n", set.rate)
	return p.run(ctx, []stat{{"published", p.produced.Load}, {"in Danube", p.inDanube(iotTopic, "quickstart")}, {"delivered", p.delivered.Load}},
		func(ctx context.Context) {
			var wg sync.WaitGroup
			for i := range *devices {
				wg.Go(func() {
					d := device{id: fmt.Sprintf("sensor-%d", i+1), addr: mqttAddr, password: password}
					d.run(ctx, p, set.every(*devices))
				})
			}
			wg.Wait()
		})
}

// device is a simulated MQTT device: paho, MQTT 3.1.1, QoS 1.
type device struct {
	id, addr, password string
}

// run connects (retrying until the gateway listens) and publishes readings until ctx ends or every
// reading is out. A reading counts as published once the gateway acknowledged it (PUBACK), which
// it does only after Danube acknowledged it.
func (d device) run(ctx context.Context, p *pipeline, every time.Duration) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + d.addr).SetClientID(d.id).
		SetUsername("device").SetPassword(d.password).SetConnectTimeout(5 * time.Second).
		SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond))
	if !wait(ctx, c.Connect()) {
		c.Disconnect(0)
		return
	}
	defer c.Disconnect(250)
	p.produce(ctx, every, func(ctx context.Context, seq int) error {
		body, _ := json.Marshal(map[string]any{"device": d.id, "seq": seq,
			"temperature": 18 + float64(seq%70)/10, "humidity": 40 + seq%20})
		tok := c.Publish("devices/"+d.id+"/readings", 1, false, body)
		if !wait(ctx, tok) {
			return ctx.Err()
		}
		return tok.Error()
	})
}

// wait waits for tok; false when ctx ended first.
func wait(ctx context.Context, tok paho.Token) bool {
	select {
	case <-tok.Done():
		return true
	case <-ctx.Done():
		return false
	}
}
