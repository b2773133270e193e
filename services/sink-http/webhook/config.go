package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/retry"
)

// Config describes the endpoint and how to talk to it. Only URL is required; the zero value of
// every other field is a sensible default.
type Config struct {
	URL    string // http or https endpoint
	Method string // "" = POST

	// Timeout bounds each attempt, from dial to the end of the response headers and the excerpt of
	// the body. 0 = 10 s.
	Timeout time.Duration

	// ContentType is used when a message has no "content-type" attribute. "" = application/octet-stream.
	ContentType string
	// AttributePrefix names the header carrying each message attribute: prefix + attribute name.
	// "" = "X-Danube-Attr-"; "-" sends no attribute headers.
	AttributePrefix string
	// IdempotencyHeader carries Message.IdempotencyKey. "" = "Idempotency-Key".
	IdempotencyHeader string
	// Headers are added to every request (API keys, tenant ids). They cannot override the headers
	// this package sets itself (content type, identity, signature, auth).
	Headers map[string]string

	// BearerToken sets "Authorization: Bearer <token>". BasicUser/BasicPassword set basic auth.
	// Setting both is a configuration error.
	BearerToken   string
	BasicUser     string
	BasicPassword string

	// Secret, when set, signs each request the Standard Webhooks way (see NewSigner for its form).
	Secret string

	// MaxInFlight is the number of concurrent requests. Messages with the same routing key go
	// through the same lane one after another, so their order is kept; messages without a key are
	// spread over all lanes and carry no order. 0 = 1 (strict order).
	MaxInFlight int
	// BatchSize > 1 sends up to BatchSize messages of a lane as one JSON array body.
	BatchSize int
	// RateLimit caps requests per second across all lanes; 0 = unlimited.
	RateLimit float64

	// Retry is how often and how long to wait before retrying a retryable failure inside Deliver.
	// The zero value makes exactly one attempt and leaves retrying to the caller.
	Retry retry.Policy
	// MaxRetryAfter caps an endpoint's Retry-After. 0 = 5 minutes.
	MaxRetryAfter time.Duration
	// RetryStatuses are answers retried although they are client errors, for example 401 and 403
	// while a rotated credential propagates, instead of dead-lettering every message meanwhile.
	RetryStatuses []int

	// BreakerFailures consecutive retryable failures open the circuit breaker: requests then fail
	// at once (retryable, ErrBreakerOpen) for BreakerOpen, after which one probe request is let
	// through; its success closes the breaker. 0 = 5; negative disables the breaker.
	BreakerFailures int
	BreakerOpen     time.Duration // 0 = 10 s

	// TLS options for https endpoints.
	CAFile             string // PEM bundle trusted in addition to the system roots
	CertFile, KeyFile  string // client certificate (mTLS)
	InsecureSkipVerify bool   // accept any server certificate; logged as a warning at start

	// BodyExcerpt is how many bytes of an error response's body are kept in Error.Body. 0 = 512.
	BodyExcerpt int

	// Transport replaces the tuned default transport (tests, proxies). The TLS options are then
	// ignored.
	Transport http.RoundTripper

	Hooks  Hooks
	Logger *slog.Logger // nil = slog.Default()
}

// Hooks observe deliveries for metrics and progress displays; nil funcs are skipped; they must be
// fast and safe for concurrent use.
type Hooks struct {
	// OnAttempt runs after each HTTP attempt: its outcome (nil = 2xx) and how many messages it carried.
	OnAttempt func(AttemptEvent)
	// OnRetry runs before each wait for a retry.
	OnRetry func(RetryEvent)
	// OnBreaker runs when the circuit breaker changes state ("closed", "open", "half-open").
	OnBreaker func(from, to string)
}

// AttemptEvent describes one HTTP request.
type AttemptEvent struct {
	Messages int
	Status   int // 0 when no response
	Duration time.Duration
	Err      error // nil on 2xx
}

// RetryEvent describes a retry about to happen.
type RetryEvent struct {
	Messages int
	Attempt  int // the attempt that failed (1-based)
	Wait     time.Duration
	Err      error
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("webhook: URL %q: want an absolute http or https URL", config.URL(cfg.URL))
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodPost
	}
	cfg.Method = strings.ToUpper(cfg.Method)
	switch cfg.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return cfg, fmt.Errorf("webhook: Method %q: want POST, PUT or PATCH (the payload is the body)", c.Method)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ContentType == "" {
		cfg.ContentType = "application/octet-stream"
	}
	if cfg.AttributePrefix == "" {
		cfg.AttributePrefix = "X-Danube-Attr-"
	}
	if cfg.IdempotencyHeader == "" {
		cfg.IdempotencyHeader = "Idempotency-Key"
	}
	if !validName(cfg.IdempotencyHeader) {
		return cfg, fmt.Errorf("webhook: IdempotencyHeader %q is not a valid header name", cfg.IdempotencyHeader)
	}
	if cfg.AttributePrefix != "-" && !validName(cfg.AttributePrefix+"x") {
		return cfg, fmt.Errorf("webhook: AttributePrefix %q is not a valid header name prefix", cfg.AttributePrefix)
	}
	for k, v := range cfg.Headers {
		if !validName(k) || !validValue(v) {
			return cfg, fmt.Errorf("webhook: Headers: %q is not a valid header name or its value has control characters", k)
		}
	}
	if cfg.BearerToken != "" && (cfg.BasicUser != "" || cfg.BasicPassword != "") {
		return cfg, fmt.Errorf("webhook: BearerToken and BasicUser/BasicPassword are both set; use one")
	}
	if cfg.MaxInFlight < 0 {
		return cfg, fmt.Errorf("webhook: MaxInFlight %d: must not be negative", cfg.MaxInFlight)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 1
	}
	if cfg.BatchSize < 0 {
		return cfg, fmt.Errorf("webhook: BatchSize %d: must not be negative", cfg.BatchSize)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1
	}
	if cfg.RateLimit < 0 {
		return cfg, fmt.Errorf("webhook: RateLimit %g: must not be negative", cfg.RateLimit)
	}
	for _, code := range cfg.RetryStatuses {
		if code < 100 || code > 599 {
			return cfg, fmt.Errorf("webhook: RetryStatuses: %d is not an HTTP status", code)
		}
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 5 * time.Minute
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerOpen <= 0 {
		cfg.BreakerOpen = 10 * time.Second
	}
	if cfg.BodyExcerpt <= 0 {
		cfg.BodyExcerpt = 512
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return cfg, fmt.Errorf("webhook: CertFile %q and KeyFile %q: set both or neither", cfg.CertFile, cfg.KeyFile)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// newTransport builds a transport tuned for many small requests to one host: enough idle
// connections for every lane, keep-alives, HTTP/2 when the server offers it.
func newTransport(cfg *Config) (*http.Transport, error) {
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	idle := cfg.MaxInFlight + 2
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       tc,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}, nil
}

func tlsConfig(cfg *Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("webhook: CAFile %q: %w", cfg.CAFile, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webhook: CAFile %q: no PEM certificate found", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("webhook: CertFile %q / KeyFile %q: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if cfg.InsecureSkipVerify {
		tc.InsecureSkipVerify = true //nolint:gosec // opt-in, logged loudly by New
	}
	return tc, nil
}
