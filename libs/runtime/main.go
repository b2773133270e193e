package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// Exit codes of MainSink and MainSource.
const (
	ExitOK     = 0 // stopped by SIGTERM/SIGINT after a clean drain, or --help / --print-config
	ExitFatal  = 1 // fatal connector error, RETRY_EXHAUSTED=stop, Danube unusable: let the orchestrator restart
	ExitConfig = 2 // invalid configuration or arguments: a restart will not help
	ExitGap    = 3 // GAP_POLICY=stop: Danube skipped messages of the subscription (ErrDeliveryGap)
)

// DefaultMemoryLimit sets Go's soft memory limit to bytes unless the operator set GOMEMLIMIT (which
// the Go runtime has applied already). Without a limit the heap grows to twice what is live before
// a collection; a service whose live heap is mostly the messages it holds calls this first in main,
// so that its RSS stays near what it holds. Above the limit the collector works harder rather than
// fail: a limit below what is live costs CPU, not data.
func DefaultMemoryLimit(bytes int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(bytes)
	}
}

// MainSink is a sink service's whole main: it parses the environment into a new C (a struct that
// embeds SinkConfig), answers --help and --print-config, sets up logging, metrics, health and
// tracing, calls newConnector with the config and the Resources (logger, meter, tracer, name), runs
// the connector until SIGTERM or SIGINT and exits with ExitOK, ExitFatal or ExitConfig.
func MainSink[C any, PC interface {
	*C
	Sink() *SinkConfig
}](newConnector func(cfg PC, res Resources) (SinkConnector, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	cfg := PC(new(C))
	code := Main(ctx, os.Args[1:], nil, os.Stdout, os.Stderr, cfg, &cfg.Sink().Common,
		func(ctx context.Context, opts ...Option) error {
			conn, err := newConnector(cfg, NewResources(&cfg.Sink().Common, opts...))
			if err != nil {
				return fmt.Errorf("runtime: create connector: %w", err)
			}
			return RunSink(ctx, cfg.Sink(), conn, opts...)
		})
	stop()
	os.Exit(code)
}

// MainSource is MainSink for sources (C embeds SourceConfig; P is the connector's position type).
func MainSource[C any, PC interface {
	*C
	Source() *SourceConfig
}, P any](newConnector func(cfg PC, res Resources) (SourceConnector[P], error)) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	cfg := PC(new(C))
	code := Main(ctx, os.Args[1:], nil, os.Stdout, os.Stderr, cfg, &cfg.Source().Common,
		func(ctx context.Context, opts ...Option) error {
			conn, err := newConnector(cfg, NewResources(&cfg.Source().Common, opts...))
			if err != nil {
				return fmt.Errorf("runtime: create connector: %w", err)
			}
			return RunSource(ctx, cfg.Source(), conn, opts...)
		})
	stop()
	os.Exit(code)
}

// Main is the testable core of MainSink and MainSource, and the entry point of a process that runs
// several connectors (run starts them all with the same options: one logger, one metrics and
// health server). cfg is a pointer to the full config struct and common its embedded Common;
// environ nil means os.Environ(). It returns the exit code.
func Main(ctx context.Context, args, environ []string, stdout, stderr io.Writer, cfg any, common *Common,
	run func(ctx context.Context, opts ...Option) error) int {
	printConfig, code, done := parseArgs(args, stdout, stderr, cfg)
	if done {
		return code
	}
	if run == nil {
		fmt.Fprintln(stderr, "runtime: Main needs a run function, got nil")
		return ExitConfig
	}
	if err := config.Load(cfg, environ); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitConfig
	}
	if printConfig {
		if err := config.Print(stdout, cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitConfig
		}
		return ExitOK
	}
	log := telemetry.NewLogger(stderr, common.LogLevel, common.LogFormat)
	srv, shutdownTelemetry, code := serveTelemetry(ctx, log, common)
	if srv == nil {
		return code
	}
	log.Info("starting", "config", config.LogValue(cfg))
	for _, w := range config.Warnings(cfg, environ) {
		log.Warn(w)
	}
	// Said at once: a sink may be in the middle of a retry wait when the signal comes.
	stopping := make(chan struct{})
	stopLog := context.AfterFunc(ctx, func() {
		log.Info("stopping: no new deliveries; finishing what is in progress", "within", common.ShutdownTimeout.D())
		close(stopping)
	})
	runErr := run(ctx, WithLogger(log), WithTelemetry(srv))
	if !stopLog() { // said before what follows: a run may end as soon as it is told to stop
		<-stopping
	}
	shutdownTelemetry()
	if runErr != nil {
		log.Error("stopped on error", "err", runErr)
		if errors.Is(runErr, ErrDeliveryGap) {
			return ExitGap
		}
		return ExitFatal
	}
	log.Info("stopped")
	return ExitOK
}

// parseArgs answers --help (done) and notes --print-config; anything else is a usage error.
func parseArgs(args []string, stdout, stderr io.Writer, cfg any) (printConfig bool, code int, done bool) {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprintln(stdout, "Configuration (environment variables):")
			if err := config.Usage(stdout, cfg); err != nil {
				fmt.Fprintln(stderr, err)
				return false, ExitConfig, true
			}
			return false, ExitOK, true
		case "--print-config", "-print-config":
			printConfig = true
		default:
			fmt.Fprintf(stderr, "unknown argument %q (want --help or --print-config; configuration is read from the environment)\n", a)
			return false, ExitConfig, true
		}
	}
	return printConfig, ExitOK, false
}

// serveTelemetry sets up tracing and the /metrics, /healthz and /readyz server; a nil server means
// it failed (logged) and the process exits with code. shutdown stops both, within 5 s.
func serveTelemetry(ctx context.Context, log *slog.Logger, common *Common) (srv *telemetry.Server, shutdown func(), code int) {
	shutdownTracing, err := telemetry.SetupTracing(ctx, common.ConnectorName)
	if err != nil {
		log.Error("tracing setup failed", "err", err)
		return nil, nil, ExitFatal
	}
	srv, err = telemetry.NewServer()
	if err != nil {
		log.Error("metrics setup failed", "err", err)
		return nil, nil, ExitFatal
	}
	if common.MetricsAddr != "" {
		addr, err := srv.Start(common.MetricsAddr)
		if err != nil {
			log.Error("metrics server failed", "err", err)
			return nil, nil, ExitConfig
		}
		log.Info("serving /metrics, /healthz, /readyz", "addr", addr.String())
	}
	return srv, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("metrics server shutdown", "err", err)
		}
		if err := shutdownTracing(sctx); err != nil {
			log.Warn("tracing shutdown", "err", err)
		}
	}, ExitOK
}
