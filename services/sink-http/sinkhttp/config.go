// Package sinkhttp is the HTTP/webhook sink connector: it plugs the webhook delivery engine into
// the connector runtime, which consumes the Danube topic, batches, retries, dead-letters and acks.
//
// With the runtime's MAX_IN_FLIGHT above 1 (BATCH_MODE=single) records stream to MAX_IN_FLIGHT
// concurrent requests as they arrive (runtime.ConcurrentSinkConnector), keeping the order of
// records that share a routing key; otherwise each runtime batch (BATCH_SIZE records, BATCH_TIMEOUT_MS) is
// delivered in order, or as JSON arrays with BATCH_MODE=array. A record is acked
// only after the endpoint answered 2xx; network errors, timeouts, 5xx, 408 and 429 are retried by
// the runtime's RETRY_* policy (a Retry-After is honoured); other answers are rejections that go to
// DLQ_TOPIC with the status and the start of the response body.
package sinkhttp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/webhook"
)

// Config is the runtime's sink settings (DANUBE_*, SUBSCRIPTION_*, RETRY_*, BATCH_*, DLQ_TOPIC, ...)
// plus the endpoint's. The variable names of the reference docker-compose block (docs/connectors.md)
// are kept. It is the connector's one configuration layer: a variable's zero means what the
// engine's zero field means, and where the engine has a default the variable takes it
// (EnvDefaults) instead of declaring its own.
type Config struct {
	runtime.SinkConfig

	TargetURL  config.URL    `env:"TARGET_URL,required" desc:"endpoint that receives the messages (http:// or https://); a password or token in it is redacted in logs"`
	HTTPMethod string        `env:"HTTP_METHOD" desc:"POST, PUT or PATCH; the payload is the body"`
	Timeout    config.Millis `env:"TIMEOUT_MS" desc:"max wait for a 2xx answer per attempt; longer counts as a retryable failure"`

	ContentType       string        `env:"CONTENT_TYPE" desc:"Content-Type when the message has no content-type attribute"`
	AttributePrefix   string        `env:"ATTRIBUTE_HEADER_PREFIX" desc:"message attributes are sent as headers named prefix+attribute; - sends none"`
	IdempotencyHeader string        `env:"IDEMPOTENCY_HEADER" desc:"header with the message's idempotency key (same on every redelivery)"`
	Headers           config.Secret `env:"HTTP_HEADERS" desc:"static headers for every request, comma-separated Name:value pairs (redacted in logs)"`

	WebhookSecret config.Secret `env:"WEBHOOK_SECRET" desc:"sign requests the Standard Webhooks way; whsec_<base64> is decoded, anything else used as raw bytes"`
	BearerToken   config.Secret `env:"AUTH_BEARER_TOKEN" desc:"send Authorization: Bearer <token>"`
	BasicUser     string        `env:"AUTH_BASIC_USER" desc:"basic auth user (with AUTH_BASIC_PASSWORD)"`
	BasicPassword config.Secret `env:"AUTH_BASIC_PASSWORD" desc:"basic auth password"`

	BatchMode BatchMode `env:"BATCH_MODE" envDefault:"single" desc:"single: one request per message (MAX_IN_FLIGHT concurrent requests, same routing key in order); array: one request per batch with a JSON array body (up to BATCH_SIZE messages)"`
	RateLimit float64   `env:"RATE_LIMIT_RPS" envDefault:"0" desc:"max requests per second (0 = unlimited)"`

	BreakerFailures int           `env:"BREAKER_FAILURES" envDefault:"5" desc:"consecutive retryable failures that open the circuit breaker (0 = no breaker)"`
	BreakerOpen     config.Millis `env:"BREAKER_OPEN_MS" desc:"how long the open breaker refuses requests before one probe is let through"`
	MaxRetryAfter   config.Millis `env:"MAX_RETRY_AFTER_MS" desc:"cap on an endpoint's Retry-After"`
	RetryStatuses   []int         `env:"RETRY_STATUSES" envSeparator:"," desc:"client-error statuses to retry instead of dead-lettering, e.g. 401,403 while credentials rotate"`

	TLSCAFile     string `env:"TLS_CA_FILE" desc:"PEM CA bundle trusted for the endpoint, in addition to the system roots"`
	TLSCertFile   string `env:"TLS_CERT_FILE" desc:"client certificate for mTLS (with TLS_KEY_FILE)"`
	TLSKeyFile    string `env:"TLS_KEY_FILE" desc:"client key for mTLS (with TLS_CERT_FILE)"`
	TLSSkipVerify bool   `env:"TLS_INSECURE_SKIP_VERIFY" envDefault:"false" desc:"DANGEROUS: accept any server certificate (testing only; logged as a warning)"`
}

// EnvDefaults gives the variables that configure the delivery engine the engine's own defaults
// (config.Defaulter), so that the two cannot disagree.
func (*Config) EnvDefaults() map[string]string {
	return map[string]string{
		"HTTP_METHOD":             webhook.DefaultMethod,
		"TIMEOUT_MS":              config.Millis(webhook.DefaultTimeout).String(),
		"CONTENT_TYPE":            webhook.DefaultContentType,
		"ATTRIBUTE_HEADER_PREFIX": webhook.DefaultAttributePrefix,
		"IDEMPOTENCY_HEADER":      webhook.DefaultIdempotencyHeader,
		"MAX_RETRY_AFTER_MS":      config.Millis(webhook.DefaultMaxRetryAfter).String(),
		"BREAKER_OPEN_MS":         config.Millis(webhook.DefaultBreakerOpen).String(),
	}
}

// BatchMode is BATCH_MODE: how a runtime batch becomes requests.
type BatchMode int

const (
	// Single sends one request per message: the payload is the body.
	Single BatchMode = iota
	// Array sends a batch as one request whose body is a JSON array of the messages.
	Array
)

var batchModes = config.Enum[BatchMode]{{Value: Single, Name: "single"}, {Value: Array, Name: "array"}}

// String returns the BATCH_MODE spelling.
func (m BatchMode) String() string { return batchModes.Name(m) }

// UnmarshalText parses "single" or "array".
func (m *BatchMode) UnmarshalText(b []byte) error { return batchModes.Parse(m, b) }

// Validate implements config.Validator: it checks what the types cannot, by building the engine's
// configuration and reporting its complaints under the variable names.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.TargetURL.Reveal()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, config.Invalid("TARGET_URL", c.TargetURL, "want an absolute http:// or https:// URL"))
	}
	switch strings.ToUpper(c.HTTPMethod) {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		errs = append(errs, config.Invalid("HTTP_METHOD", c.HTTPMethod, "want POST, PUT or PATCH (the payload is the body)"))
	}
	if c.RateLimit < 0 {
		errs = append(errs, config.Invalid("RATE_LIMIT_RPS", c.RateLimit, "must not be negative"))
	}
	if c.BreakerFailures < 0 {
		errs = append(errs, config.Invalid("BREAKER_FAILURES", c.BreakerFailures, "must not be negative"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Invalid("TIMEOUT_MS", c.Timeout, "must be positive"))
	}
	if _, err := parseHeaders(c.Headers.Reveal()); err != nil {
		errs = append(errs, config.Invalid("HTTP_HEADERS", "[REDACTED]", err.Error()))
	}
	for _, v := range []struct {
		name  string
		value string
	}{{"AUTH_BEARER_TOKEN", c.BearerToken.Reveal()}, {"AUTH_BASIC_USER", c.BasicUser}, {"AUTH_BASIC_PASSWORD", c.BasicPassword.Reveal()}} {
		if i := strings.IndexFunc(v.value, isControl); i >= 0 {
			errs = append(errs, config.Invalid(v.name, "[REDACTED]", fmt.Sprintf("contains a control character (%U at byte %d): a newline copied from a file?", v.value[i], i)))
		}
	}
	if c.BearerToken.IsSet() && (c.BasicUser != "" || c.BasicPassword.IsSet()) {
		errs = append(errs, config.Invalid("AUTH_BEARER_TOKEN", "[REDACTED]", "set together with AUTH_BASIC_USER/AUTH_BASIC_PASSWORD; use one"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, config.Invalid("TLS_CERT_FILE", c.TLSCertFile, "TLS_CERT_FILE and TLS_KEY_FILE go together"))
	}
	return errors.Join(append(errs, c.engineProblems()...)...)
}

// engineProblems lets the engine check what only it knows (header names, TLS files, the secret's
// form, statuses), one variable at a time on an otherwise valid configuration, so that every
// problem is reported at once and none hides behind another or behind a value that failed to
// parse.
func (c *Config) engineProblems() []error {
	headers, herr := parseHeaders(c.Headers.Reveal())
	checks := []struct {
		name, value string
		skip        bool
		set         func(*webhook.Config)
	}{
		{"IDEMPOTENCY_HEADER", c.IdempotencyHeader, false, func(w *webhook.Config) { w.IdempotencyHeader = c.IdempotencyHeader }},
		{"ATTRIBUTE_HEADER_PREFIX", c.AttributePrefix, false, func(w *webhook.Config) { w.AttributePrefix = c.AttributePrefix }},
		{"HTTP_HEADERS", "[REDACTED]", herr != nil, func(w *webhook.Config) { w.Headers = headers }},
		{"WEBHOOK_SECRET", "[REDACTED]", !c.WebhookSecret.IsSet(), func(w *webhook.Config) { w.Secret = c.WebhookSecret.Reveal() }},
		{"RETRY_STATUSES", fmt.Sprint(c.RetryStatuses), false, func(w *webhook.Config) { w.RetryStatuses = c.RetryStatuses }},
		{"TLS_CA_FILE", c.TLSCAFile, c.TLSCAFile == "", func(w *webhook.Config) { w.CAFile = c.TLSCAFile }},
		{"TLS_CERT_FILE", c.TLSCertFile, c.TLSCertFile == "" || c.TLSKeyFile == "", func(w *webhook.Config) { w.CertFile, w.KeyFile = c.TLSCertFile, c.TLSKeyFile }},
	}
	var errs []error
	for _, chk := range checks {
		if chk.skip {
			continue
		}
		wc := webhook.Config{URL: "http://127.0.0.1/", // every other field at the engine's default
			Logger: slog.New(slog.DiscardHandler)} // the warnings belong to the running connector, not to validation
		chk.set(&wc)
		s, err := webhook.New(wc)
		if err != nil {
			errs = append(errs, config.Invalid(chk.name, chk.value, strings.TrimPrefix(err.Error(), "webhook: ")))
			continue
		}
		_ = s.Close()
	}
	return errs
}

// parseHeaders reads "Name:value,Name2:value2". Its errors never quote the text: the values are
// often credentials.
func parseHeaders(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("want comma-separated Name:value pairs; pair %d has no name or no ':'", i+1)
		}
		if strings.IndexFunc(v, isControl) >= 0 {
			return nil, fmt.Errorf("the value of pair %d contains a control character", i+1)
		}
		out[k] = v
	}
	return out, nil
}

// isControl reports characters no HTTP header value may carry (newline, carriage return, NUL…).
func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

// webhookConfig translates the environment settings into the engine's.
func (c *Config) webhookConfig() (webhook.Config, error) {
	headers, err := parseHeaders(c.Headers.Reveal())
	if err != nil {
		return webhook.Config{}, err
	}
	wc := webhook.Config{
		URL: c.TargetURL.Reveal(), Method: c.HTTPMethod, Timeout: c.Timeout.D(),
		ContentType: c.ContentType, AttributePrefix: c.AttributePrefix, IdempotencyHeader: c.IdempotencyHeader,
		Headers: headers, BearerToken: c.BearerToken.Reveal(), BasicUser: c.BasicUser, BasicPassword: c.BasicPassword.Reveal(),
		Secret: c.WebhookSecret.Reveal(), MaxInFlight: c.MaxInFlight, RateLimit: c.RateLimit,
		MaxRetryAfter: c.MaxRetryAfter.D(), RetryStatuses: c.RetryStatuses, BreakerFailures: c.BreakerFailures, BreakerOpen: c.BreakerOpen.D(),
		CAFile: c.TLSCAFile, CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile, InsecureSkipVerify: c.TLSSkipVerify,
	}
	if c.BatchMode == Array {
		wc.BatchSize = max(c.BatchSize, 2) // a runtime batch in one array, or spread over MAX_IN_FLIGHT arrays
	}
	return wc, nil
}
