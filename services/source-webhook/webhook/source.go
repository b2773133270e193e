// Package webhook is the webhook source connector: HTTP requests to configured routes become
// Danube messages, and a request is answered 2xx only once Danube acknowledged its events.
//
// Each request's events are handed to the runtime as records whose OnAck completes the request:
// the handler waits (up to WEBHOOK_ACK_TIMEOUT_MS) for every event of the request to be
// acknowledged, then answers 200. A request whose events are not all acknowledged in time is
// answered 503 with Retry-After, and so is every new request while Danube has acknowledged
// nothing for that long (an outage): the sender retries, nothing answered 2xx is missing from
// Danube. An event handed over and answered 503 may still be published once Danube is back, so a
// retry without an idempotency key can duplicate it (at-least-once).
package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// Seq numbers the events of one run. HTTP has no position to resume from: each request is
// answered on its own once Danube has its events, and the sender retries what was not answered
// 2xx. Seq only satisfies the runtime's watermark; Commit has nothing to do with it.
type Seq uint64

// Attribute names set on every published message.
const (
	AttrMethod       = "webhook.method"       // the request method
	AttrPath         = "webhook.path"         // the route's path
	AttrRemoteAddr   = "webhook.remote_addr"  // the peer's address (a proxy's, behind one)
	AttrReceivedAt   = "webhook.received_at"  // when the request arrived, RFC 3339 UTC with nanoseconds
	AttrContentType  = "webhook.content_type" // the request's Content-Type
	AttrHeaderPrefix = "webhook.header."      // + lower-case name: an allow-listed request header
	AttrIdempotency  = "webhook.idempotency"  // the idempotency key, when the request had one
	AttrLine         = "webhook.ndjson_line"  // NDJSON: the event's line number (1-based)
	AttrAuthScheme   = "webhook.auth"         // the route's auth scheme (none, apikey, github, ...)
)

// maxAttrValue cuts header values copied into attributes: a sender must not make an event larger
// than its body through its headers.
const maxAttrValue = 1024

// Source is the connector.
type Source struct {
	cfg     *Config
	log     *slog.Logger
	routes  map[string]map[string]*route // path → method → route
	in      chan *batch                  // unbuffered: a request's events are handed over whole or not at all
	sem     chan struct{}                // WEBHOOK_MAX_CONCURRENT
	idem    *idempotency
	jwks    map[string]*jwks // by source: routes sharing a key set share its fetches
	srv     *http.Server
	served  chan error             // Serve's result
	drained chan error             // the server's graceful shutdown, started when the stop begins
	bound   atomic.Pointer[string] // the listener's address

	stopOnce sync.Once
	stopping chan struct{} // closed when the stop begins: new requests are answered 503

	pending  atomic.Int64 // events handed over and not yet acknowledged
	progress atomic.Int64 // unix nanos of the last acknowledgement (or of the first pending event)
	seq      Seq          // Poll's

	requests metric.Int64Counter
	latency  metric.Float64Histogram
}

// New returns the connector for cfg (MainSource calls it). It only validates and builds: the
// listener opens in Initialize.
func New(cfg *Config, res runtime.Resources) (runtime.SourceConnector[Seq], error) {
	return newSource(cfg, res)
}

func newSource(cfg *Config, res runtime.Resources) (*Source, error) {
	log := res.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	specs, err := cfg.routes()
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_ROUTES: %w", err)
	}
	s := &Source{
		cfg: cfg, log: log, routes: map[string]map[string]*route{}, jwks: map[string]*jwks{},
		in: make(chan *batch), sem: make(chan struct{}, max(cfg.MaxConcurrent, 1)),
		idem:     newIdempotency(cfg.IdemWindow.D(), max(cfg.IdemMaxKeys, 1)),
		stopping: make(chan struct{}),
	}
	var fixed [][]byte
	if cfg.HMACSecret.IsSet() {
		fixed = [][]byte{[]byte(cfg.HMACSecret.Reveal())}
	}
	var defaultSecret *lines
	if cfg.HMACSecretFile != "" {
		if defaultSecret, err = newLines(cfg.HMACSecretFile, log); err != nil {
			return nil, fmt.Errorf("WEBHOOK_HMAC_SECRET_FILE: %w", err)
		}
	}
	for _, spec := range specs {
		rt, err := s.newRoute(spec, secrets{fixed: fixed, file: defaultSecret})
		if err != nil {
			return nil, fmt.Errorf("WEBHOOK_ROUTES: route %s: %w", spec.Path, err)
		}
		if s.routes[spec.Path] == nil {
			s.routes[spec.Path] = map[string]*route{}
		}
		s.routes[spec.Path][spec.Method] = rt
		if spec.Auth == AuthNone {
			log.Warn("route accepts unauthenticated requests", "path", spec.Path, "method", spec.Method)
		}
	}
	if s.requests, err = res.Meter.Int64Counter("webhook.requests",
		metric.WithDescription("HTTP requests answered, by route and status code")); err != nil {
		return nil, err
	}
	if s.latency, err = res.Meter.Float64Histogram("webhook.request.duration", metric.WithUnit("s"),
		metric.WithDescription("time from a request's arrival to its answer, by route"),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTime.D(),
		ReadTimeout:       cfg.ReadTimeout.D(),
		WriteTimeout:      cfg.WriteTimeout.D(),
		IdleTimeout:       cfg.IdleTimeout.D(),
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// maxHeaderBytes bounds a request's headers (webhook senders send few).
const maxHeaderBytes = 64 << 10

func (s *Source) newRoute(spec RouteSpec, defaultSecret secrets) (*route, error) {
	rt := &route{RouteSpec: spec, topic: spec.Topic, verify: noAuth{}}
	if rt.topic == "" {
		rt.topic = s.cfg.Topic
	}
	if spec.Rate > 0 {
		rt.limiter = rate.NewLimiter(rate.Limit(spec.Rate), spec.Burst)
	}
	switch {
	case spec.Auth == AuthAPIKey:
		keys, err := newLines(spec.KeysFile, s.log)
		if err != nil {
			return nil, fmt.Errorf("keys_file: %w", err)
		}
		rt.verify = apiKeys{keys: keys}
	case spec.Auth.signed():
		sec := defaultSecret
		if spec.SecretFile != "" {
			f, err := newLines(spec.SecretFile, s.log)
			if err != nil {
				return nil, fmt.Errorf("secret_file: %w", err)
			}
			sec = secrets{file: f}
		}
		if sec.file == nil && len(sec.fixed) == 0 {
			return nil, fmt.Errorf("auth=%s needs a secret: WEBHOOK_HMAC_SECRET, WEBHOOK_HMAC_SECRET_FILE or secret_file=", spec.Auth)
		}
		rt.verify = signature{kind: spec.Auth, secrets: sec, header: spec.SignatureHeader, tolerance: spec.Tolerance}
	case spec.Auth == AuthJWT:
		keys := s.jwks[spec.JWKS]
		if keys == nil {
			keys = newJWKS(spec.JWKS, s.cfg.JWKSRefresh.D(), s.log)
			s.jwks[spec.JWKS] = keys
		}
		rt.verify = bearerJWT{keys: keys, issuer: spec.Issuer, audience: spec.Audience, leeway: s.cfg.JWTLeeway.D()}
	}
	rt.attrs = map[string]string{AttrMethod: spec.Method, AttrPath: spec.Path, AttrAuthScheme: spec.Auth.String()}
	return rt, nil
}

// Initialize reads the JWT routes' key sets, then opens the listener and starts serving. A JWKS
// URL that cannot be reached yet is runtime.Disconnected (the runtime waits for it); a port that
// cannot be bound is an error waiting would not fix (another process has it, or the address is
// wrong): the connector stops.
func (s *Source) Initialize(ctx context.Context) error {
	if s.served != nil { // already serving: a second Initialize has nothing to do
		return nil
	}
	for _, keys := range s.jwks {
		if err := keys.load(ctx); err != nil {
			return err
		}
	}
	if s.cfg.TLSCertFile != "" && s.srv.TLSConfig == nil {
		tc, err := s.tlsConfig()
		if err != nil {
			return err
		}
		s.srv.TLSConfig = tc
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("WEBHOOK_ADDR=%s: %w", s.cfg.Addr, err)
	}
	ln = netutil.LimitListener(ln, max(s.cfg.MaxConns, 1))
	secure := s.srv.TLSConfig != nil
	if secure { // a copy: Serve adjusts the server's own for HTTP/2
		ln = tls.NewListener(ln, s.srv.TLSConfig.Clone())
	}
	addr := ln.Addr().String()
	s.bound.Store(&addr)
	s.served = make(chan error, 1)
	go func() { s.served <- s.srv.Serve(ln) }()
	s.log.Info("webhook server listening", "addr", addr, "tls", secure, "routes", len(s.routes))
	return nil
}

// tlsConfig loads the server certificate (HTTP/2 is negotiated by ALPN) and the client CA (mTLS).
func (s *Source) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_TLS_CERT_FILE/WEBHOOK_TLS_KEY_FILE: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if s.cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(s.cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("WEBHOOK_TLS_CLIENT_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("WEBHOOK_TLS_CLIENT_CA_FILE=%s: no PEM certificate in it", s.cfg.TLSClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// listenAddr returns the listener's address once Initialize succeeded (WEBHOOK_ADDR may say port 0).
func (s *Source) listenAddr() string {
	if a := s.bound.Load(); a != nil {
		return *a
	}
	return ""
}

// Poll returns the events of the next requests: those of at least one request, whole, and more
// while they are waiting, up to BATCH_SIZE. When ctx ends the connector is stopping (it never
// reports Disconnected, so the runtime never interrupts Poll for a reconnect): new requests are
// answered 503 from then on, and the listener closes.
func (s *Source) Poll(ctx context.Context) ([]runtime.SourceRecord[Seq], error) {
	var recs []runtime.SourceRecord[Seq]
	select {
	case b := <-s.in:
		recs = s.add(recs, b)
	case <-ctx.Done():
		s.beginStop()
		return nil, nil
	}
	for len(recs) < s.cfg.BatchSize {
		select {
		case b := <-s.in:
			recs = s.add(recs, b)
		default:
			return recs, nil
		}
	}
	return recs, nil
}

func (s *Source) add(recs []runtime.SourceRecord[Seq], b *batch) []runtime.SourceRecord[Seq] {
	for i := range b.events {
		ev := &b.events[i]
		s.seq++
		r := runtime.NewSourceRecord(b.route.topic, ev.payload, s.seq).WithKey(ev.key)
		r.Attributes, r.OnAck, r.Origin = ev.attrs, b.ack, b.origin
		recs = append(recs, r)
	}
	return recs
}

// beginStop answers new requests 503 and starts the server's graceful shutdown: the listener
// closes, requests in progress finish (their events are published and acknowledged in the
// runtime's drain, bounded by SHUTDOWN_TIMEOUT_MS).
func (s *Source) beginStop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		if s.served == nil {
			return
		}
		s.drained = make(chan error, 1)
		s.srv.SetKeepAlivesEnabled(false)
		go func() { s.drained <- s.srv.Shutdown(context.Background()) }()
	})
}

// Commit does nothing: each request is answered by its events' OnAck once Danube acked them,
// which is the per-event commit HTTP has. The positions only feed the runtime's watermark.
func (s *Source) Commit(context.Context, []Seq) error { return nil }

// HealthCheck is not ready while Danube has acknowledged none of the pending events for
// WEBHOOK_ACK_TIMEOUT_MS (requests are answered 503 then), or when the server stopped serving.
func (s *Source) HealthCheck(context.Context) error {
	if s.served != nil {
		select {
		case err := <-s.served:
			s.served <- err
			if !errors.Is(err, http.ErrServerClosed) { // closed = stopping, which is not a failure
				return fmt.Errorf("webhook server stopped: %w", err)
			}
		default:
		}
	}
	if d, stalled := s.stalled(); stalled {
		return fmt.Errorf("danube has acknowledged no event for %v (%d pending): requests are answered 503", d.Round(time.Second), s.pending.Load())
	}
	return nil
}

// stalled reports whether events are pending and Danube acknowledged none for the ack timeout.
func (s *Source) stalled() (time.Duration, bool) {
	if s.pending.Load() == 0 {
		return 0, false
	}
	d := time.Since(time.Unix(0, s.progress.Load()))
	return d, d > s.cfg.AckTimeout.D()
}

// Shutdown finishes the server's graceful shutdown (begun when Poll saw the stop) within ctx,
// then closes what is left.
func (s *Source) Shutdown(ctx context.Context) error {
	s.beginStop()
	for _, keys := range s.jwks {
		keys.close()
	}
	if s.served == nil {
		return nil
	}
	var err error
	select {
	case err = <-s.drained:
	case <-ctx.Done():
		err = s.srv.Close()
	}
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
