package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

func init() { register(sourceCase{}) }

// sourceCase measures the runtime's source publishing with a source that costs nothing.
type sourceCase struct{}

func (sourceCase) Name() string { return "source" }

func (sourceCase) About() string {
	return "The runtime's source path alone: a no-op source hands over 1 KiB records with 64 routing keys, " +
		"100 per Poll, as fast as the runtime takes them (MAX_IN_FLIGHT=1000); the runtime publishes them " +
		"to the in-process development broker and commits their positions once Danube acked them. The " +
		"baseline is `PUBLISH_ORDER=strict`, one publish at a time per topic, which is how every source " +
		"published before pipelining; `key` keeps one publish per routing key in flight, `none` pipelines " +
		"freely. The rate runs from the start to the commit of the last position. CPU is the whole " +
		"process's (runtime, client and broker together, getrusage) per message. Two settings: the broker " +
		"on loopback in the same process (where the 2 cores, not round trips, bound every variant), and " +
		"the same broker behind a local proxy that delays each direction by half of 1 ms, as a broker " +
		"across a network does."
}

func (sourceCase) Run(ctx context.Context, env *Env) (Result, error) {
	n := 20000
	if env.Quick {
		n = 500
	}
	var res Result
	for _, rtt := range []time.Duration{0, time.Millisecond} {
		g := Group{Setting: "loopback"}
		if rtt > 0 {
			g.Setting = fmt.Sprintf("%v round trip to the broker", rtt)
		}
		for _, order := range []runtime.PublishOrder{runtime.OrderStrict, runtime.OrderByKey, runtime.OrderNone} {
			count := n
			if rtt > 0 && order == runtime.OrderStrict {
				count = min(n, 2000) // one round trip per record: keep the run short
			}
			env.Logf("source: %s: PUBLISH_ORDER=%s: %d records", g.Setting, order, count)
			row, err := measureSource(ctx, count, order, rtt)
			if err != nil {
				return Result{}, fmt.Errorf("%s, PUBLISH_ORDER=%s: %w", g.Setting, order, err)
			}
			g.Rows = append(g.Rows, row)
		}
		res.Groups = append(res.Groups, g)
	}
	return res, nil
}

func measureSource(ctx context.Context, n int, order runtime.PublishOrder, rtt time.Duration) (Row, error) {
	row := Row{Variant: "PUBLISH_ORDER=" + order.String(), Msgs: n}
	broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-"})
	if err != nil {
		return row, err
	}
	defer broker.Close()
	url := broker.URL()
	if rtt > 0 {
		proxy, err := startDelayProxy(broker.Addr(), rtt)
		if err != nil {
			return row, err
		}
		defer proxy.Close()
		url = "http://" + proxy.Addr()
	}
	cfg := &runtime.SourceConfig{
		Common: runtime.Common{DanubeServiceURL: url, ConnectorName: "bench-source",
			RetryBackoff: config.Millis(10 * time.Millisecond), RetryMaxBackoff: config.Millis(time.Second),
			ShutdownTimeout: config.Millis(10 * time.Second)},
		Topic: "/default/bench-source", MaxInFlight: 1000, PublishOrder: order, BatchSize: 100,
	}
	src := newNopSource(n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0, start := selfCPU(), time.Now()
	done := make(chan error, 1)
	go func() { done <- runtime.RunSource(ctx, cfg, runtime.SourceConnector[int](src)) }()
	select {
	case <-src.all:
	case err := <-done:
		return row, fmt.Errorf("source stopped early: %w", err)
	case <-ctx.Done():
		return row, ctx.Err()
	}
	elapsed, cpu := time.Since(start), selfCPU()-cpu0
	cancel()
	if err := <-done; err != nil {
		return row, err
	}
	row.Rate = float64(n) / elapsed.Seconds()
	row.CPUMicros = float64(cpu.Microseconds()) / float64(n)
	return row, nil
}

// nopSource returns n records, 100 per Poll, positions 1..n, and closes all once n was committed.
type nopSource struct {
	runtime.SourceBase
	n, next int
	payload []byte
	keys    [64]string
	all     chan struct{}
}

func newNopSource(n int) *nopSource {
	s := &nopSource{n: n, payload: benchPayload(), all: make(chan struct{})}
	for i := range s.keys {
		s.keys[i] = "key-" + strconv.Itoa(i)
	}
	return s
}

func (s *nopSource) Poll(ctx context.Context) ([]runtime.SourceRecord[int], error) {
	if s.next >= s.n {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	k := min(100, s.n-s.next)
	recs := make([]runtime.SourceRecord[int], k)
	for i := range recs {
		s.next++
		recs[i] = runtime.NewSourceRecord("", s.payload, s.next).WithKey(s.keys[s.next%len(s.keys)])
	}
	return recs, nil
}

func (s *nopSource) Commit(_ context.Context, positions []int) error {
	if positions[len(positions)-1] == s.n {
		close(s.all)
	}
	return nil
}
