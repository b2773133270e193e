// Command sink-http delivers the messages of a Danube topic to an HTTP endpoint (webhooks).
// Configuration comes only from the environment; run with --help for every variable.
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
)

func main() { runtime.MainSink(sinkhttp.NewConnector) }
