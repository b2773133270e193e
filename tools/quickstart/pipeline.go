package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/telemetry"
)

// settings are the flags every scenario has.
type settings struct {
	events  int
	rate    float64
	verbose bool
}

// newFlags returns the flag set of a scenario with the common flags; what names the messages.
func newFlags(name, what string, rate float64, out io.Writer) (*flag.FlagSet, *settings) {
	fs := flag.NewFlagSet("quickstart "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	s := &settings{}
	fs.IntVar(&s.events, "events", 0, "stop after this many "+what+" are delivered (0 = run until Ctrl-C)")
	fs.Float64Var(&s.rate, "rate", rate, what+" produced per second")
	fs.BoolVar(&s.verbose, "v", false, "show the connectors' own log")
	return fs, s
}

// parse parses args and checks the common flags.
func (s *settings) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if s.rate <= 0 {
		return fmt.Errorf("-rate %g: must be positive", s.rate)
	}
	if s.events < 0 {
		return fmt.Errorf("-events %d: must not be negative", s.events)
	}
	return nil
}

// every is the interval between two messages at rate spread over n producers.
func (s *settings) every(n int) time.Duration {
	return time.Duration(float64(time.Second) * float64(n) / s.rate)
}

// pipeline is what every scenario shares: the development broker, the connectors it starts on
// it (stopped in reverse order, so sources stop before the sinks that drain them), the live
// status line and how a run ends: on Ctrl-C, once -events messages were delivered, or when a
// connector stops on its own.
type pipeline struct {
	out    io.Writer
	set    *settings
	ui     *status
	broker *devbroker.Broker
	tel    *telemetry.Server
	logger *slog.Logger

	next                atomic.Int64 // the number of the last message handed to a producer
	produced, delivered atomic.Int64
	all                 chan struct{} // closed once -events messages were delivered
	allOnce             sync.Once

	conns    []*connector
	stopping atomic.Bool   // from now on connectors return because they were asked to
	exited   chan struct{} // closed when the first connector returns on its own
	exitOnce sync.Once
	failed   *connector // that connector; set before exited closes
}

// connector is one running connector.
type connector struct {
	name string
	stop context.CancelFunc
	done chan struct{}
	err  error // set before done closes
}

// newPipeline starts the development broker, in memory on a random port.
func newPipeline(out io.Writer, set *settings) (*pipeline, error) {
	tel, err := telemetry.NewServer()
	if err != nil {
		return nil, err
	}
	broker, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		return nil, fmt.Errorf("start the development broker: %w", err)
	}
	p := &pipeline{out: out, set: set, ui: newStatus(out), broker: broker, tel: tel,
		all: make(chan struct{}), exited: make(chan struct{})}
	level := slog.LevelError
	if set.verbose {
		level = slog.LevelInfo
	}
	p.logger = slog.New(slog.NewTextHandler(p.ui.logWriter(), &slog.HandlerOptions{Level: level}))
	return p, nil
}

// env is the environment of a connector: what every connector here shares, then vars.
func (p *pipeline) env(vars ...string) []string {
	return append([]string{
		"DANUBE_SERVICE_URL=" + p.broker.URL(), "METRICS_ADDR=", "SHUTDOWN_TIMEOUT_MS=5000",
		"RETRY_BACKOFF_MS=500", "RETRY_MAX_BACKOFF_MS=5000",
	}, vars...)
}

// options are the runtime options of every connector: the shared logger and telemetry server, as
// in one service process.
func (p *pipeline) options() []runtime.Option {
	return []runtime.Option{runtime.WithLogger(p.logger), runtime.WithTelemetry(p.tel)}
}

// startSource loads a source connector's configuration from env (on top of the pipeline's), as
// the service does, builds it with newConnector and runs it as service.
func startSource[C any, PC interface {
	*C
	Source() *runtime.SourceConfig
}, P any](p *pipeline, service string, newConnector func(PC, runtime.Resources) (runtime.SourceConnector[P], error), env ...string) error {
	cfg := PC(new(C))
	if err := config.Load(cfg, p.env(env...)); err != nil {
		return err
	}
	src, err := newConnector(cfg, runtime.NewResources(&cfg.Source().Common, p.options()...))
	if err != nil {
		return err
	}
	p.start(service, func(ctx context.Context) error {
		return runtime.RunSource(ctx, cfg.Source(), src, p.options()...)
	})
	return nil
}

// start runs a connector until the pipeline stops it.
func (p *pipeline) start(name string, run func(ctx context.Context) error) {
	ctx, stop := context.WithCancel(context.Background())
	c := &connector{name: name, stop: stop, done: make(chan struct{})}
	p.conns = append(p.conns, c)
	go func() {
		c.err = run(ctx)
		if !p.stopping.Load() {
			p.exitOnce.Do(func() {
				p.failed = c
				close(p.exited)
			})
		}
		close(c.done)
	}()
}

// waitSubscribed waits until the sink's subscription exists, so that nothing published from now
// on is missed (a new subscription starts at the tail).
func (p *pipeline) waitSubscribed(ctx context.Context, topic, subscription string) error {
	return p.waitUntil(ctx, fmt.Sprintf("subscription %s on %s created", subscription, topic), func() bool {
		_, ok := p.broker.SubscriptionStats(topic, subscription)
		return ok
	})
}

// waitListening waits until addr accepts connections: a connector opens its listener once it
// reached Danube.
func (p *pipeline) waitListening(ctx context.Context, addr string) error {
	return p.waitUntil(ctx, "something listening on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// waitUntil polls cond until it holds, a connector stops, ctx ends or 30 s pass.
func (p *pipeline) waitUntil(ctx context.Context, what string, cond func() bool) error {
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return p.failure()
		case <-deadline:
			return fmt.Errorf("not %s after 30s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// inDanube counts the messages Danube holds in topic (its head offset), as seen by subscription.
func (p *pipeline) inDanube(topic, subscription string) func() int64 {
	return func() int64 {
		st, ok := p.broker.SubscriptionStats(topic, subscription)
		if !ok {
			return 0
		}
		return int64(st.Cursor + st.Backlog)
	}
}

// deliver counts one message that reached the end of the pipeline (duplicates excluded).
func (p *pipeline) deliver() {
	if n := p.delivered.Add(1); p.set.events > 0 && n >= int64(p.set.events) {
		p.allOnce.Do(func() { close(p.all) })
	}
}

// produce calls send for messages 1, 2, ... (numbers shared by every producer of the pipeline),
// one every interval, until ctx ends or -events messages are out. A message counts as produced
// once send returned nil; one that failed is sent again.
func (p *pipeline) produce(ctx context.Context, every time.Duration, send func(ctx context.Context, seq int) error) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		seq := int(p.next.Add(1))
		if p.set.events > 0 && seq > p.set.events {
			return
		}
		for {
			err := send(ctx, seq)
			if err == nil {
				p.produced.Add(1)
				break
			}
			if ctx.Err() != nil {
				return
			}
			p.ui.printf("  message %d: %v (sending it again)\n", seq, err)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// run shows stats on the status line and runs produce until ctx ends (Ctrl-C), -events messages
// were delivered or a connector stopped; then it lets the connectors catch up with what was
// produced (bounded), stops them gracefully (each finishes and acknowledges what it holds) and
// prints the totals.
func (p *pipeline) run(ctx context.Context, stats []stat, produce func(ctx context.Context)) error {
	p.ui.start(stats)
	prodCtx, stopProd := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		produce(prodCtx)
	}()
	select {
	case <-ctx.Done():
	case <-p.exited:
	case <-p.all:
		// The last message can reach the end before its producer has the acknowledgement: let
		// the producers finish (bounded), or they would not count it.
		select {
		case <-produced:
		case <-ctx.Done():
		case <-p.exited:
		case <-time.After(30 * time.Second):
		}
	}
	stopProd()
	<-produced
	catchUp := time.After(10 * time.Second)
	for p.delivered.Load() < p.produced.Load() {
		select {
		case <-catchUp:
		case <-p.exited:
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	err := p.stop()
	p.ui.stop()
	fmt.Fprintf(p.out, "\nStopped: %s.\n", p.ui.counts(", "))
	return err
}

// failure is the error of the connector that stopped on its own.
func (p *pipeline) failure() error {
	err := p.failed.err
	if err == nil {
		err = errors.New("stopped without an error")
	}
	return fmt.Errorf("%s stopped: %w", p.failed.name, err)
}

// stop stops the connectors, last started first, and returns what they returned; a connector
// that stopped on its own is an error even when it returned none.
func (p *pipeline) stop() error {
	p.stopping.Store(true)
	for i := len(p.conns) - 1; i >= 0; i-- {
		p.conns[i].stop()
		<-p.conns[i].done
	}
	var errs []error
	if p.failed != nil {
		errs = append(errs, p.failure())
	}
	for _, c := range p.conns {
		if c.err != nil && c != p.failed {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, c.err))
		}
	}
	p.conns = nil
	return errors.Join(errs...)
}

// close stops what is still running and the broker.
func (p *pipeline) close() {
	_ = p.stop()
	p.ui.stop()
	_ = p.broker.Close()
}

// freeAddr returns a loopback address with a port free right now, for a listener that cannot
// report the port it got.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return net.JoinHostPort("127.0.0.1", port), nil
}
