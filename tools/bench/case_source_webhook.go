package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/source-webhook/webhook"
)

func init() { register(sourceWebhookCase{}) }

// webhookSettings are the connector configurations compared with the plain server: events keyed by
// device (the default PUBLISH_ORDER=key keeps one publish per key in flight) and unkeyed events
// published with PUBLISH_ORDER=none.
var webhookSettings = []struct {
	name  string
	route string // WEBHOOK_ROUTES options after the path and topic
	env   []string
}{
	{"routing key json:device (PUBLISH_ORDER=key)", " key=json:device", nil},
	{"no routing key, PUBLISH_ORDER=none", "", []string{"PUBLISH_ORDER=none"}},
}

const (
	webhookVariant      = "source-webhook"
	webhookPlainVariant = "plain net/http + Danube client"
	webhookClients      = 32 // concurrent senders, each one request at a time
	webhookDevices      = 64 // routing keys the events are spread over
)

// sourceWebhookCase measures source-webhook answering POSTs only once Danube acknowledged their
// event, beside a plain net/http server doing the same with the Danube client.
type sourceWebhookCase struct{}

func (sourceWebhookCase) Name() string { return "source-webhook" }

func (sourceWebhookCase) About() string {
	return fmt.Sprintf("%d concurrent HTTP/1.1 keep-alive clients each POST one small JSON event (about 80 bytes, "+
		"%d devices) at a time and send the next once answered; a `503` or `429` is sent again. `source-webhook` "+
		"(in process, configured by its environment variables, no auth) publishes each event to a reliable "+
		"topic of the in-process development broker and answers `200` once Danube acknowledged it. The "+
		"baseline is a plain Go `net/http` server publishing each body with the Danube client's reliable "+
		"producer and answering after the ack: the least any such service does. Both run against the same "+
		"broker in the same run; the rate is 2xx answers per second from the first request to the last "+
		"answer; CPU is the whole process's (clients, server and broker together, getrusage) per event, "+
		"so the CPU ratio understates the servers' own difference. The progress log gives the p99 "+
		"answer latency of each row. Goal: at least 0.9× the plain server's rate.",
		webhookClients, webhookDevices)
}

func (sourceWebhookCase) Run(ctx context.Context, env *Env) (Result, error) {
	n := 20000
	if env.Quick {
		n = 300
	}
	var res Result
	for _, set := range webhookSettings {
		g := Group{Setting: set.name}
		broker, err := devbroker.Start(devbroker.Config{AdminAddr: "-"})
		if err != nil {
			return Result{}, err
		}
		for _, variant := range []string{webhookPlainVariant, webhookVariant} {
			start := startPlainWebhook
			if variant == webhookVariant {
				start = func(ctx context.Context, danubeURL, topic string) (string, func() error, error) {
					return startSourceWebhook(ctx, danubeURL, topic, set.route, set.env)
				}
			}
			row, lat, err := measureWebhook(ctx, start, broker.URL(), "/default/bench-webhook-"+strconv.Itoa(len(g.Rows)), n)
			if err != nil {
				_ = broker.Close()
				return Result{}, fmt.Errorf("%s: %s: %w", set.name, variant, err)
			}
			row.Variant = variant
			env.Logf("source-webhook: %s: %s: %d events, %.0f/s, p99 answer %v, p50 %v, %d answers 503/429",
				set.name, variant, n, row.Rate, lat.p99.Round(time.Microsecond), lat.p50.Round(time.Microsecond), lat.retried)
			g.Rows = append(g.Rows, row)
		}
		if err := broker.Close(); err != nil {
			return Result{}, err
		}
		res.Groups = append(res.Groups, g)
	}
	return res, nil
}

// startServer starts an HTTP server publishing to topic of the broker at danubeURL; it returns the
// URL to POST to and how to stop it.
type startServer func(ctx context.Context, danubeURL, topic string) (url string, stop func() error, err error)

// latencies sums up the answer times of a run.
type latencies struct {
	p50, p99 time.Duration
	retried  int64 // answers 503 or 429 (the event was sent again)
}

// measureWebhook starts a server with start and posts n events to it from webhookClients clients.
func measureWebhook(ctx context.Context, start startServer, danubeURL, topic string, n int) (Row, latencies, error) {
	url, stop, err := start(ctx, danubeURL, topic)
	if err != nil {
		return Row{}, latencies{}, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: webhookClients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}

	var next, retried atomic.Int64
	took := make([][]time.Duration, webhookClients)
	errs := make([]error, webhookClients)
	cpu0, begin := selfCPU(), time.Now()
	var wg sync.WaitGroup
	for c := range webhookClients {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n) && errs[c] == nil; i = next.Add(1) {
				body := fmt.Appendf(nil, `{"device":"dev-%d","seq":%d,"temperature":21.5,"humidity":40}`, i%webhookDevices, i)
				var d time.Duration
				for d == 0 && errs[c] == nil {
					d, errs[c] = postEvent(ctx, hc, url, body)
					if d == 0 && errs[c] == nil {
						retried.Add(1)
					}
				}
				took[c] = append(took[c], d)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(begin), selfCPU()-cpu0
	if err := errors.Join(append(errs, stop())...); err != nil {
		return Row{}, latencies{}, err
	}
	all := slices.Concat(took...)
	slices.Sort(all)
	lat := latencies{p50: all[len(all)/2], p99: all[len(all)*99/100], retried: retried.Load()}
	return Row{Msgs: n, Rate: float64(n) / elapsed.Seconds(), CPUMicros: float64(cpu.Microseconds()) / float64(n)}, lat, nil
}

// postEvent posts body once: its answer time when answered 2xx, 0 after a 503 or 429 (after a
// short pause: the event is to be sent again), an error otherwise.
func postEvent(ctx context.Context, hc *http.Client, url string, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	d := time.Since(t0)
	switch {
	case resp.StatusCode/100 == 2:
		return max(d, 1), nil
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		time.Sleep(10 * time.Millisecond)
		return 0, ctx.Err()
	default:
		return 0, fmt.Errorf("POST %s: %s %s", url, resp.Status, bytes.TrimSpace(answer))
	}
}

// startPlainWebhook is the baseline: net/http and a reliable producer, one Send per request.
func startPlainWebhook(ctx context.Context, danubeURL, topic string) (string, func() error, error) {
	client, err := danube.NewClient(danubeURL)
	if err != nil {
		return "", nil, err
	}
	prod, err := client.NewProducer(ctx, danube.ProducerOptions{Topic: topic, Name: "bench-plain-webhook", Dispatch: danube.Reliable})
	if err != nil {
		_ = client.Close()
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = prod.Close()
		_ = client.Close()
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := prod.Send(r.Context(), danube.ProducerMessage{Payload: body}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"accepted":1}`)
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stop := func() error {
		err := srv.Shutdown(context.Background())
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return errors.Join(err, prod.Close(), client.Close())
	}
	return "http://" + ln.Addr().String() + "/events", stop, nil
}

// startSourceWebhook runs the connector in this process, configured from environment variables as
// the service is, and waits until it listens.
func startSourceWebhook(ctx context.Context, danubeURL, topic, routeOpts string, extra []string) (string, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close() // the connector opens its listener in Initialize, on this port
	var cfg webhook.Config
	if err := config.Load(&cfg, append([]string{
		"DANUBE_SERVICE_URL=" + danubeURL, "CONNECTOR_NAME=bench-webhook", "METRICS_ADDR=",
		"WEBHOOK_ADDR=" + addr, "WEBHOOK_ROUTES=/events=" + topic + routeOpts, "SHUTDOWN_TIMEOUT_MS=10000",
	}, extra...)); err != nil {
		return "", nil, err
	}
	opts := []runtime.Option{runtime.WithLogger(slog.New(slog.DiscardHandler))}
	src, err := webhook.New(&cfg, runtime.NewResources(&cfg.Common, opts...))
	if err != nil {
		return "", nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- runtime.RunSource(runCtx, &cfg.SourceConfig, src, opts...) }()
	stop := func() error {
		cancel()
		return <-done
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return "http://" + addr + "/events", stop, nil
		}
		select {
		case err := <-done:
			cancel()
			return "", nil, fmt.Errorf("source-webhook stopped before listening: %w", err)
		case <-ctx.Done():
			return "", nil, errors.Join(ctx.Err(), stop())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", nil, errors.Join(fmt.Errorf("source-webhook not listening on %s after 30s", addr), stop())
		}
	}
}
