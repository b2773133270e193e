// Command devbroker runs the Danube development broker: a single-node broker
// that behaves like Danube v0.15 in standalone mode, for trying connectors
// and running client tests without a cluster.
//
//	go run ./tools/devbroker --broker-addr 127.0.0.1:6650 --admin-addr 127.0.0.1:50051 [--data-dir DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devbroker:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done; it writes its one status line and any
// warnings to logw.
func run(ctx context.Context, args []string, logw io.Writer) error {
	cfg, cluster, err := parseFlags(args, logw)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		return err
	}
	b.SetClusterMode(cluster)
	fmt.Fprintf(logw, "devbroker: serving the Danube client API on %s (%s) and the admin API on %s\n",
		b.Addr(), b.URL(), b.AdminAddr())
	<-ctx.Done()
	return b.Close()
}

// parseFlags turns the command line into a broker Config and whether to
// emulate cluster mode; the broker logs to logw.
func parseFlags(args []string, logw io.Writer) (cfg devbroker.Config, cluster bool, err error) {
	fs := flag.NewFlagSet("devbroker", flag.ContinueOnError)
	fs.SetOutput(logw)
	fs.StringVar(&cfg.BrokerAddr, "broker-addr", "127.0.0.1:6650", "client API listen address (host:port)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:50051", `admin API listen address (host:port); "-" disables it`)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory persisting reliable topics and cursors (default: in memory)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "TLS certificate (PEM); with --tls-key and a JWT secret enables auth mode")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "TLS private key (PEM)")
	secret := fs.String("jwt-secret", "", "HS256 secret for bearer tokens")
	secretFile := fs.String("jwt-secret-file", "", "file holding the HS256 secret")
	fs.DurationVar(&cfg.AckTimeout, "ack-timeout", 0, "reliable ack timeout (default 30s)")
	fs.DurationVar(&cfg.RedeliveryBaseDelay, "redelivery-base-delay", 0, "base redelivery delay (default 1s)")
	fs.DurationVar(&cfg.RedeliveryMaxDelay, "redelivery-max-delay", 0, "redelivery delay cap (default 60s)")
	fs.IntVar(&cfg.MaxRedeliveryCount, "max-redelivery-count", 0, "redeliveries before the poison policy applies (default 5)")
	fs.IntVar(&cfg.MaxUnackedMessages, "max-unacked-messages", 0, "reliable dispatch window (default 10)")
	fs.DurationVar(&cfg.RetryTick, "retry-tick", 0, "heartbeat firing redeliveries and ack timeouts (default 500ms)")
	fs.DurationVar(&cfg.CursorFlushInterval, "cursor-flush-interval", 0, "cursor persistence interval (default 10s)")
	fs.DurationVar(&cfg.SubscriptionIdleGrace, "subscription-idle-grace", 0, "idle non-reliable subscription grace (default 60s)")
	fs.DurationVar(&cfg.KeySharedEvictionTimeout, "key-shared-eviction-timeout", 0,
		"inactivity after which a reliable Key-Shared consumer is evicted (default six retry ticks: 3s)")
	fs.BoolVar(&cfg.KeySharedEvictionDropsUnacked, "key-shared-eviction-drops-unacked", false,
		"settle an evicted Key-Shared consumer's unacked messages without redelivery (lost), as the real broker does")
	fs.BoolVar(&cfg.LagDrop, "lag-drop", false,
		"lose the messages a reliable subscription more than window + 256 behind did not read, as the real broker v0.15.1 does")
	fs.StringVar(&cfg.AdvertisedAddr, "advertised-addr", "", "host:port advertised in lookups' broker_url (default: the listen address)")
	fs.StringVar(&cfg.ConnectURL, "connect-url", "", "externally reachable URL advertised as connect_url (proxy mode)")
	mode := fs.String("mode", "standalone", `"standalone", or "cluster" to fail the first CreateProducer on a new topic with UNAVAILABLE as a cluster does`)
	// Accepted for command-line compatibility with danube-broker; they have no
	// meaning for a single in-process node.
	fs.Bool("single-node", false, "accepted for compatibility; ignored")
	fs.Bool("join", false, "accepted for compatibility; ignored")
	for _, name := range []string{"config-file", "prom-exporter", "raft-addr", "seed-nodes"} {
		fs.String(name, "", "accepted for compatibility; ignored")
	}
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	switch {
	case *secretFile != "":
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return cfg, false, fmt.Errorf("read --jwt-secret-file %q: %w", *secretFile, err)
		}
		cfg.JWTSecret = []byte(strings.TrimSpace(string(b)))
	case *secret != "":
		cfg.JWTSecret = []byte(*secret)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))

	if *mode != "standalone" && *mode != "cluster" {
		return cfg, false, fmt.Errorf(`--mode %q: want "standalone" or "cluster"`, *mode)
	}
	return cfg, *mode == "cluster", nil
}
