package webhook

import (
	"cmp"
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
)

// The defaults of Config's zero fields. They are the one place these defaults live: sink-http's
// variables take theirs from here.
const (
	DefaultMethod            = http.MethodPost
	DefaultTimeout           = 5 * time.Second
	DefaultContentType       = "application/octet-stream"
	DefaultAttributePrefix   = "X-Danube-Attr-"
	DefaultIdempotencyHeader = "Idempotency-Key"
	DefaultMaxRetryAfter     = 5 * time.Minute
	DefaultBreakerOpen       = 10 * time.Second
)

// Config describes the endpoint and how to talk to it. Only URL is required; the zero value of
// every other field is a sensible default (see the Default constants) or turns its feature off.
type Config struct {
	URL    string // http or https endpoint
	Method string // "" = DefaultMethod

	// Timeout bounds each attempt, from dial to the end of the response headers and the excerpt of
	// the body. 0 = DefaultTimeout.
	Timeout time.Duration

	// ContentType is used when a message has no "content-type" attribute. "" = DefaultContentType.
	ContentType string
	// AttributePrefix names the header carrying each message attribute: prefix + attribute name.
	// "" = DefaultAttributePrefix; "-" sends no attribute headers.
	AttributePrefix string
	// IdempotencyHeader carries Message.IdempotencyKey. "" = DefaultIdempotencyHeader.
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

	// MaxInFlight is the number of concurrent requests. Messages with the same routing key are
	// sent one request after another, so their order is kept; messages without a key carry no
	// order. 0 = 1 (strict order).
	MaxInFlight int
	// BatchSize > 1 sends up to BatchSize messages as one JSON array body.
	BatchSize int
	// RateLimit caps requests per second; 0 = unlimited.
	RateLimit float64

	// MaxRetryAfter caps an endpoint's Retry-After. 0 = DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// RetryStatuses are answers retried although they are client errors, for example 401 and 403
	// while a rotated credential propagates, instead of dead-lettering every message meanwhile.
	RetryStatuses []int

	// BreakerFailures consecutive retryable failures open the circuit breaker: requests then fail
	// at once (retryable, ErrBreakerOpen) for BreakerOpen, after which one probe request is let
	// through; its success closes the breaker. 0 = no breaker.
	BreakerFailures int
	BreakerOpen     time.Duration // 0 = DefaultBreakerOpen

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

// withDefaults returns c with its zero fields set to their defaults, or the first problem found.
func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if err := cfg.request(); err != nil {
		return cfg, err
	}
	if err := cfg.limits(); err != nil {
		return cfg, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// request defaults and checks what shapes a request: URL, method, headers and credentials.
func (c *Config) request() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook: URL %q: want an absolute http or https URL", config.URL(c.URL))
	}
	method := strings.ToUpper(cmp.Or(c.Method, DefaultMethod))
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return fmt.Errorf("webhook: Method %q: want POST, PUT or PATCH (the payload is the body)", c.Method)
	}
	c.Method = method
	c.ContentType = cmp.Or(c.ContentType, DefaultContentType)
	c.AttributePrefix = cmp.Or(c.AttributePrefix, DefaultAttributePrefix)
	c.IdempotencyHeader = cmp.Or(c.IdempotencyHeader, DefaultIdempotencyHeader)
	if !validName(c.IdempotencyHeader) {
		return fmt.Errorf("webhook: IdempotencyHeader %q is not a valid header name", c.IdempotencyHeader)
	}
	if c.AttributePrefix != "-" && !validName(c.AttributePrefix+"x") {
		return fmt.Errorf("webhook: AttributePrefix %q is not a valid header name prefix", c.AttributePrefix)
	}
	for k, v := range c.Headers {
		if !validName(k) || !validValue(v) {
			return fmt.Errorf("webhook: Headers: %q is not a valid header name or its value has control characters", k)
		}
	}
	if c.BearerToken != "" && (c.BasicUser != "" || c.BasicPassword != "") {
		return fmt.Errorf("webhook: BearerToken and BasicUser/BasicPassword are both set; use one")
	}
	return nil
}

// limits defaults and checks the numbers (concurrency, timeouts, breaker) and the TLS pair.
func (c *Config) limits() error {
	switch {
	case c.MaxInFlight < 0:
		return fmt.Errorf("webhook: MaxInFlight %d: must not be negative", c.MaxInFlight)
	case c.BatchSize < 0:
		return fmt.Errorf("webhook: BatchSize %d: must not be negative", c.BatchSize)
	case c.RateLimit < 0:
		return fmt.Errorf("webhook: RateLimit %g: must not be negative", c.RateLimit)
	case c.BreakerFailures < 0:
		return fmt.Errorf("webhook: BreakerFailures %d: must not be negative", c.BreakerFailures)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("webhook: CertFile %q and KeyFile %q: set both or neither", c.CertFile, c.KeyFile)
	}
	for _, code := range c.RetryStatuses {
		if code < 100 || code > 599 {
			return fmt.Errorf("webhook: RetryStatuses: %d is not an HTTP status", code)
		}
	}
	c.MaxInFlight, c.BatchSize = max(c.MaxInFlight, 1), max(c.BatchSize, 1)
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = DefaultBreakerOpen
	}
	if c.BodyExcerpt <= 0 {
		c.BodyExcerpt = 512
	}
	return nil
}

// newTransport builds a transport tuned for many small requests to one host: enough idle
// connections for every concurrent request, keep-alives, HTTP/2 when the server offers it.
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
