// Command kfake serves an in-process Kafka-protocol cluster (franz-go's kfake)
// on 127.0.0.1 so that processes other than Go tests, and machines without a
// Kafka server package, get a Kafka bootstrap address.
//
// It is a fake: it speaks the Kafka protocol (produce, fetch, consumer groups,
// offset commits, transactions) but it is not Apache Kafka. Use a real Kafka
// (a container) to test broker-specific behaviour.
//
// Usage:
//
//	kfake -port 19092 -brokers 1
//
// It logs one line with its version and listen addresses, and stops on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

const kfakeModule = "github.com/twmb/franz-go/pkg/kfake"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(2)
	}
}

// config is the command line, parsed.
type config struct {
	port       int
	brokers    int
	partitions int
	autoCreate bool
	logLevel   string
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.port, "port", 9092, "first broker port on 127.0.0.1; brokers use port, port+1, ...; 0 picks random ports")
	fs.IntVar(&c.brokers, "brokers", 1, "number of brokers")
	fs.IntVar(&c.partitions, "partitions", 1, "partitions of auto-created topics and of CreateTopics with -1 partitions")
	fs.BoolVar(&c.autoCreate, "auto-create-topics", true, "create topics on metadata requests that ask for it, as Kafka's default does")
	fs.StringVar(&c.logLevel, "log-level", "none", "kfake's own log level: none, error, warn, info, debug")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.brokers < 1 {
		return config{}, fmt.Errorf("-brokers %d: must be at least 1", c.brokers)
	}
	if c.port < 0 || c.port+c.brokers-1 > 65535 {
		return config{}, fmt.Errorf("-port %d with -brokers %d: ports must lie in 0..65535", c.port, c.brokers)
	}
	if c.partitions < 1 {
		return config{}, fmt.Errorf("-partitions %d: must be at least 1", c.partitions)
	}
	if _, ok := logLevels[strings.ToLower(c.logLevel)]; !ok {
		return config{}, fmt.Errorf("-log-level %q: want none, error, warn, info or debug", c.logLevel)
	}
	return c, nil
}

var logLevels = map[string]kfake.LogLevel{
	"none":  kfake.LogLevelNone,
	"error": kfake.LogLevelError,
	"warn":  kfake.LogLevelWarn,
	"info":  kfake.LogLevelInfo,
	"debug": kfake.LogLevelDebug,
}

// run serves the cluster until ctx is done.
func run(ctx context.Context, args []string, out io.Writer) error {
	c, err := parseFlags(args, out)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ports := make([]int, c.brokers)
	for i := range ports {
		if c.port != 0 {
			ports[i] = c.port + i
		}
	}
	opts := []kfake.Opt{
		kfake.Ports(ports...),
		kfake.DefaultNumPartitions(c.partitions),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, logLevels[strings.ToLower(c.logLevel)])),
	}
	if c.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster on port %d with %d brokers: %w", c.port, c.brokers, err)
	}
	defer cluster.Close()

	fmt.Fprintf(out, "kfake %s listening on %s (%d brokers)\n", version(), strings.Join(cluster.ListenAddrs(), ","), c.brokers)
	<-ctx.Done()
	return nil
}

// version is the kfake module version this binary was built with, so that
// test logs name the exact fake that served them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	for _, d := range bi.Deps {
		if d.Path == kfakeModule {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "(unknown version)"
}
