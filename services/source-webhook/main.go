// Command source-webhook is the HTTP ingestion point: webhook senders (SaaS providers, services
// without a Danube client, browser beacons) POST to configured routes, and each request's events
// are published to the route's Danube topic; the request is answered 2xx only once Danube
// acknowledged them. Configuration comes only from the environment; run with --help for every
// variable.
package main

import (
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/source-webhook/webhook"
)

func main() { runtime.MainSource(webhook.New) }
