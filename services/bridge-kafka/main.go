// Command bridge-kafka runs Danube beside Kafka for side-by-side migrations: it imports Kafka topics
// into Danube (IMPORT_MAPPINGS) and exports Danube topics to Kafka (EXPORT_MAPPINGS), both in one
// process. Configuration comes only from the environment; run with --help for every variable.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
)

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT is set: the garbage collector runs
// sooner near it, which keeps the process (librdkafka's buffers included) under 64 MiB.
const memoryLimit = 48 << 20

func main() {
	runtime.DefaultMemoryLimit(memoryLimit)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	var cfg bridge.Config
	code := runtime.Main(ctx, os.Args[1:], nil, os.Stdout, os.Stderr, &cfg, &cfg.Common,
		func(ctx context.Context, opts ...runtime.Option) error { return bridge.Run(ctx, &cfg, opts...) })
	stop()
	os.Exit(code)
}
