package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Check reports nil when its component is healthy.
type Check func(ctx context.Context) error

// Server exposes /metrics, /healthz and /readyz for every connector in the process. Connectors
// register readiness checks (Danube connection, external system, leadership); /readyz is 200 only
// when all of them pass. /healthz is liveness: 200 while every liveness check passes.
type Server struct {
	reg      *prometheus.Registry
	provider *sdkmetric.MeterProvider
	timeout  time.Duration

	mu       sync.Mutex
	ready    map[string]Check
	live     map[string]Check
	http     *http.Server
	serveErr chan error
}

// NewServer creates the metrics pipeline. Start serves it; a Server that is never started still
// provides a working MeterProvider (for tests and embedding in another HTTP server via Handler).
func NewServer() (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	return &Server{
		reg:      reg,
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		timeout:  2 * time.Second,
		ready:    map[string]Check{},
		live:     map[string]Check{},
	}, nil
}

// MeterProvider is where connectors create their instruments.
func (s *Server) MeterProvider() metric.MeterProvider { return s.provider }

// AddReadiness registers a readiness check under name (replacing one of the same name) and returns
// a func that removes it.
func (s *Server) AddReadiness(name string, c Check) (remove func()) { return s.add(s.ready, name, c) }

// AddLiveness registers a liveness check, e.g. "the sink loop is running".
func (s *Server) AddLiveness(name string, c Check) (remove func()) { return s.add(s.live, name, c) }

func (s *Server) add(m map[string]Check, name string, c Check) func() {
	s.mu.Lock()
	m[name] = c
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(m, name)
		s.mu.Unlock()
	}
}

// Handler serves /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { s.serveChecks(w, r, s.live, false) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { s.serveChecks(w, r, s.ready, true) })
	return mux
}

// Ready runs the readiness checks as /readyz does; nil means ready.
// Before any connector registered a check the process is not ready.
func (s *Server) Ready(ctx context.Context) error { return s.run(ctx, s.ready, true) }

// Live runs the liveness checks as /healthz does; nil means live.
func (s *Server) Live(ctx context.Context) error { return s.run(ctx, s.live, false) }

func (s *Server) run(ctx context.Context, m map[string]Check, emptyFails bool) error {
	if failed := s.failing(ctx, m, emptyFails); len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// serveChecks answers 200 "ok" or 503 with one "name: error" line per failing check.
func (s *Server) serveChecks(w http.ResponseWriter, r *http.Request, m map[string]Check, emptyFails bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	failed := s.failing(ctx, m, emptyFails)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

// failing runs the checks in name order and returns "name: error" for each failure.
func (s *Server) failing(ctx context.Context, m map[string]Check, emptyFails bool) []string {
	s.mu.Lock()
	names := make([]string, 0, len(m))
	checks := make(map[string]Check, len(m))
	for n, c := range m {
		names = append(names, n)
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	var failed []string
	if len(names) == 0 && emptyFails {
		failed = append(failed, "starting: no readiness checks registered yet")
	}
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			failed = append(failed, n+": "+err.Error())
		}
	}
	return failed
}

// Start listens on addr (METRICS_ADDR, e.g. ":9090" or "127.0.0.1:0") and serves in the
// background. It returns the bound address.
func (s *Server) Start(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: METRICS_ADDR=%q: %w", addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		_ = ln.Close() // never served: the already-started error is the one to report
		return nil, errors.New("telemetry: server already started")
	}
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	return ln.Addr(), nil
}

// Shutdown stops serving (if started) and the meter provider.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	h, ch := s.http, s.serveErr
	s.mu.Unlock()
	var errs []error
	if h != nil {
		errs = append(errs, h.Shutdown(ctx))
		if err := <-ch; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.provider.Shutdown(ctx))
	return errors.Join(errs...)
}

// Flag is a settable health state for checks driven by events (connected / disconnected, leader /
// follower). The zero value is "not ready: starting".
type Flag struct {
	mu  sync.Mutex
	set bool
	err error
}

// Set records the current state: nil = healthy.
func (f *Flag) Set(err error) {
	f.mu.Lock()
	f.set, f.err = true, err
	f.mu.Unlock()
}

// Check reports the state; an untouched flag reports "starting".
func (f *Flag) Check(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.set {
		return errors.New("starting")
	}
	return f.err
}
