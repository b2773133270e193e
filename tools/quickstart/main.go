// Command quickstart shows a whole connector path on one machine, with no external services: it
// starts the development broker, the real connectors (configured from environment variables
// exactly as the services are), something that produces and something that receives, all in one
// process; it keeps a live count of the messages at each stage and stops cleanly on Ctrl-C.
//
//	go run ./tools/quickstart [webhook]  # producer → Danube → sink-http → webhook receiver
//	go run ./tools/quickstart webhook-in # HTTP senders → source-webhook → Danube → sink-http → receiver
//	go run ./tools/quickstart iot        # MQTT devices → source-mqtt (server mode) → Danube → sink-http → receiver
//	go run ./tools/quickstart kafka      # Kafka (in-process fake) → bridge-kafka import → Danube → export → Kafka
//	go run ./tools/quickstart iot -h     # a scenario's flags; -events 20 stops once 20 are delivered
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second Ctrl-C kills at once
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// scenarios are the subcommands; the first is the default.
var scenarios = []struct {
	name, about string
	run         func(ctx context.Context, args []string, out io.Writer) error
}{
	{"webhook", "producer → Danube → sink-http → webhook receiver (signatures checked, some 503s retried)", runWebhook},
	{"webhook-in", "HTTP senders → source-webhook → Danube → sink-http → receiver (answered 2xx only once Danube has the event)", runWebhookIn},
	{"iot", "simulated MQTT devices → source-mqtt's embedded MQTT server → Danube → sink-http → receiver", runIoT},
	{"kafka", "Kafka (in-process fake) → bridge-kafka import → Danube → bridge-kafka export → another Kafka topic", runKafka},
}

// run runs the scenario args names (the default one when args start with a flag or are empty).
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		for _, s := range scenarios {
			if s.name == args[0] {
				return s.run(ctx, args[1:], out)
			}
		}
		usage(out)
		return fmt.Errorf("unknown scenario %q", args[0])
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		usage(out)
	}
	return scenarios[0].run(ctx, args, out)
}

func usage(out io.Writer) {
	fmt.Fprintln(out, "Usage: go run ./tools/quickstart [scenario] [flags]   (scenario -h lists its flags)")
	for i, s := range scenarios {
		def := ""
		if i == 0 {
			def = " (default)"
		}
		fmt.Fprintf(out, "  %-10s %s%s\n", s.name, s.about, def)
	}
	fmt.Fprintln(out)
}
