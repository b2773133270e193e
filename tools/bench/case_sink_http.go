package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

func init() { register(&sinkHTTPCase{}) }

// sinkSettings are the configurations compared. They are the only place naming the sink's tuning
// variables, which the runtime's configuration rework may rename; the sink's MAX_IN_FLIGHT and the
// plain client's concurrency are the same number.
var sinkSettings = []struct {
	name     string
	window   int      // the broker's max_unacked_messages
	inFlight int      // MAX_IN_FLIGHT, and the plain client's concurrent requests
	env      []string // sink variables beyond the defaults
}{
	{"default", 10, 1, nil},
	{"tuned", 100, 32, []string{"MAX_IN_FLIGHT=32", "BATCH_SIZE=100", "BATCH_TIMEOUT_MS=5"}},
}

// sinkLatencies are the receiver's response delays: 0 makes the run CPU-bound; real endpoints have
// latency, and there the question is whether the sink keeps MAX_IN_FLIGHT requests busy.
var sinkLatencies = []time.Duration{0, 2 * time.Millisecond, 20 * time.Millisecond}

// sinkEnv is the sink's whole environment: nothing is inherited from the bench command.
func sinkEnv(brokerURL, target, topic string, extra ...string) []string {
	return append([]string{
		"DANUBE_SERVICE_URL=" + brokerURL, "DANUBE_TOPIC=" + topic, "SUBSCRIPTION_NAME=webhook-sink",
		"CONNECTOR_NAME=webhook-1", "TARGET_URL=" + target, "METRICS_ADDR=127.0.0.1:0", "LOG_FORMAT=text",
		"LOG_LEVEL=warn", "RETRY_BACKOFF_MS=10", "RETRY_MAX_BACKOFF_MS=100", "MAX_RETRIES=-1", "BATCH_TIMEOUT_MS=5",
		"SHUTDOWN_TIMEOUT_MS=5000",
	}, extra...)
}

const (
	sinkVariant  = "sink-http"
	plainVariant = "plain Go client"
)

// sinkHTTPCase runs the sink-http binary against the in-process development broker and a local
// receiver, and a plain Go HTTP client process posting the same bodies to the same receiver.
type sinkHTTPCase struct {
	bin   string // prebuilt sink-http binary (-sink-http-bin), e.g. one built from an older commit
	extra string // one more sink variable (-sink-http-env); the sink's output is then logged
}

func (c *sinkHTTPCase) Name() string { return "sink-http" }

func (c *sinkHTTPCase) About() string {
	return "Messages of 1 KiB, already in a reliable topic of the in-process development broker, " +
		"delivered by the `sink-http` binary (a separate process, configured by its environment only) " +
		"to a local receiver that answers 200 after 0, 2 or 20 ms. The baseline is a plain Go HTTP " +
		"client process (`tools/bench/plainclient`) posting the same bodies to the same receiver at the " +
		"same concurrency: the least work any HTTP sink does per message. `default` leaves every sink " +
		"variable at its default (one request at a time, broker window 10); `tuned` sets MAX_IN_FLIGHT=32, " +
		"BATCH_SIZE=100 and a broker window of 100, and the plain client runs 32 concurrent requests. " +
		"Rates are taken at the receiver from the first to the last arrival; CPU is user+system time of " +
		"each process over its whole life (start-up included, which weighs on the short latency runs), " +
		"peak RSS its VmHWM. The project's goal: the sink's CPU µs/msg at most 1.5× the plain client's " +
		"(the CPU ratio column)."
}

func (c *sinkHTTPCase) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.bin, "sink-http-bin", "", "use this prebuilt sink-http binary instead of building ./services/sink-http")
	fs.StringVar(&c.extra, "sink-http-env", "", "add one `NAME=value` to the sink's environment and log its output (e.g. GODEBUG=gctrace=1)")
}

func (c *sinkHTTPCase) Run(ctx context.Context, env *Env) (Result, error) {
	sinkBin := c.bin
	if sinkBin == "" {
		var err error
		if sinkBin, err = env.Build(ctx, "services/sink-http"); err != nil {
			return Result{}, err
		}
	}
	plainBin, err := env.Build(ctx, "tools/bench/plainclient")
	if err != nil {
		return Result{}, err
	}
	var res Result
	for _, set := range sinkSettings {
		for _, lat := range sinkLatencies {
			// As many messages as the plain client delivers in about 2 s (0.2 s when quick).
			n, span := 20000, 2*time.Second
			if env.Quick {
				n, span = 200, 200*time.Millisecond
			}
			if lat > 0 {
				n = min(n, int(span/lat)*set.inFlight)
			}
			g := Group{Setting: fmt.Sprintf("%s, latency %s", set.name, lat)}
			env.Logf("sink-http: %s: %d messages", g.Setting, n)
			run := sinkRun{sinkBin: sinkBin, plainBin: plainBin, n: n, window: set.window, inFlight: set.inFlight,
				latency: lat, env: set.env, extra: c.extra}
			rows, err := run.measure(ctx, env)
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", g.Setting, err)
			}
			g.Rows = rows
			res.Groups = append(res.Groups, g)
		}
	}
	return res, nil
}

// sinkRun is one setting at one latency.
type sinkRun struct {
	sinkBin, plainBin   string
	n, window, inFlight int
	latency             time.Duration
	env                 []string
	extra               string
}

// measure returns the plain client's row, then the sink's.
func (r sinkRun) measure(ctx context.Context, env *Env) ([]Row, error) {
	const topic = "/default/bench"
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-", MaxUnackedMessages: r.window})
	if err != nil {
		return nil, err
	}
	defer broker.Close()
	payload := bytes.Repeat([]byte("x"), 1024)
	// The 64 routing keys follow the send order, so any stretch of the topic mixes them all.
	err = fillTopic(ctx, broker.URL(), topic, "webhook-1", "webhook-sink", r.n, func(i int) danube.ProducerMessage {
		return danube.ProducerMessage{Payload: payload, Key: fmt.Sprintf("k%d", i%64)}
	})
	if err != nil {
		return nil, err
	}
	rc, err := startReceiver(r.latency)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	timeout := 5 * time.Minute

	sinkVars := sinkEnv(broker.URL(), rc.URL, topic, r.env...)
	if r.extra != "" {
		sinkVars = append(sinkVars, r.extra)
	}
	p := rc.expect(r.n)
	sink, err := startChild(r.sinkBin, sinkVars)
	if err != nil {
		return nil, err
	}
	if err := waitCtx(ctx, p.done, timeout); err != nil {
		_ = sink.stop()
		return nil, fmt.Errorf("sink delivered %d of %d: %w\n%s", p.got.Load(), r.n, err, sink.out.String())
	}
	if err := sink.stop(); err != nil {
		return nil, err
	}
	if r.extra != "" {
		env.Logf("sink output:\n%s", sink.out.String())
	}
	sinkRow := Row{Variant: sinkVariant, Msgs: r.n, Rate: p.rate(), CPUMicros: sink.cpuMicros(r.n), RSSMiB: sink.rss}

	p = rc.expect(r.n)
	plain, err := startChild(r.plainBin, nil, "-url", rc.URL, "-n", fmt.Sprint(r.n), "-c", fmt.Sprint(r.inFlight))
	if err != nil {
		return nil, err
	}
	if err := waitCtx(ctx, p.done, timeout); err != nil {
		_ = plain.stop()
		return nil, fmt.Errorf("plain client delivered %d of %d: %w\n%s", p.got.Load(), r.n, err, plain.out.String())
	}
	if err := plain.stop(); err != nil {
		return nil, err
	}
	plainRow := Row{Variant: plainVariant, Msgs: r.n, Rate: p.rate(), CPUMicros: plain.cpuMicros(r.n), RSSMiB: plain.rss}
	return []Row{plainRow, sinkRow}, nil
}
