// Command source-mqtt is the IoT gateway: it publishes MQTT messages to Danube topics, either
// subscribing to an MQTT broker (MQTT_MODE=client) or as an embedded MQTT server devices connect to
// (MQTT_MODE=server). Configuration comes only from the environment; run with --help for every
// variable.
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
)

func main() { runtime.MainSource(mqttsource.New) }
