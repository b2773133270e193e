package webhook

import (
	"errors"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// Config is the runtime's source settings (DANUBE_*, MAX_IN_FLIGHT, PUBLISH_ORDER, RETRY_*, ...)
// plus the HTTP side: the listener, the routes, and the defaults of the per-route options.
type Config struct {
	runtime.SourceConfig

	Addr   string `env:"WEBHOOK_ADDR" envDefault:":8080" desc:"listen address of the webhook server"`
	Routes string `env:"WEBHOOK_ROUTES,required" desc:"routes separated by ';': [METHOD ]/path[=/namespace/topic][ option=value ...]; METHOD is POST (default), PUT or PATCH; no topic = DANUBE_TOPIC; options (each defaults to the WEBHOOK_* variable of the same meaning): auth, keys_file, secret_file, signature_header, tolerance_ms, jwks, issuer, audience, rate, burst, max_body, types, key, idempotency, headers"`

	Auth              AuthKind      `env:"WEBHOOK_AUTH" envDefault:"none" desc:"default auth of a route: none, apikey (X-API-Key or Authorization: Bearer), github (X-Hub-Signature-256), stripe (Stripe-Signature), standard (Standard Webhooks), hmac (hex HMAC-SHA256 of the body in WEBHOOK_SIGNATURE_HEADER) or jwt (Authorization: Bearer <JWT>)"`
	APIKeysFile       string        `env:"WEBHOOK_API_KEYS_FILE" desc:"auth=apikey: file of accepted keys, one per line (# comments), re-read when it changes"`
	HMACSecret        config.Secret `env:"WEBHOOK_HMAC_SECRET" desc:"signed auth schemes: the shared secret (standard: whsec_<base64>)"`
	HMACSecretFile    string        `env:"WEBHOOK_HMAC_SECRET_FILE" desc:"signed auth schemes: file holding the secret, one per line (any matches: rotation), re-read when it changes"`
	SignatureHeader   string        `env:"WEBHOOK_SIGNATURE_HEADER" envDefault:"X-Signature" desc:"auth=hmac: header carrying the signature"`
	SignatureTolerate config.Millis `env:"WEBHOOK_SIGNATURE_TOLERANCE_MS" envDefault:"300000" desc:"auth=stripe and standard: a signed timestamp further than this from now is refused (replay protection)"`

	JWKS        string        `env:"WEBHOOK_JWT_JWKS" desc:"auth=jwt: JSON Web Key Set of the token signers: an https:// URL (fetched at start, then every WEBHOOK_JWT_JWKS_REFRESH_MS and on an unknown key id) or a file (re-read when it changes)"`
	JWTIssuer   string        `env:"WEBHOOK_JWT_ISSUER" desc:"auth=jwt: the iss a token must carry"`
	JWTAudience string        `env:"WEBHOOK_JWT_AUDIENCE" desc:"auth=jwt: the aud a token must include"`
	JWTLeeway   config.Millis `env:"WEBHOOK_JWT_LEEWAY_MS" envDefault:"60000" desc:"auth=jwt: clock skew allowed on exp, nbf and iat"`
	JWKSRefresh config.Millis `env:"WEBHOOK_JWT_JWKS_REFRESH_MS" envDefault:"300000" desc:"auth=jwt: how often a JWKS URL is fetched again"`

	RateLimit    float64      `env:"WEBHOOK_RATE_LIMIT" envDefault:"0" desc:"requests per second a route accepts (above: 429 with Retry-After); 0 = unlimited"`
	RateBurst    int          `env:"WEBHOOK_RATE_BURST" envDefault:"100" desc:"requests a route accepts at once above WEBHOOK_RATE_LIMIT"`
	MaxBody      int64        `env:"WEBHOOK_MAX_BODY_BYTES" envDefault:"1048576" desc:"largest request body (above: 413)"`
	ContentTypes ContentTypes `env:"WEBHOOK_CONTENT_TYPES" envDefault:"json,ndjson,form" desc:"body kinds a route accepts (others: 415): json (one event), ndjson (one event per line), form (one event, as a JSON object), raw (any other type, one event as is)"`
	RoutingKey   KeySource    `env:"WEBHOOK_ROUTING_KEY" desc:"routing key of each event: header:NAME or json:field.path; empty = none"`
	Headers      string       `env:"WEBHOOK_HEADERS" desc:"comma list of request headers copied into attributes (webhook.header.<lower-case name>)"`

	Idempotency    string        `env:"WEBHOOK_IDEMPOTENCY_HEADER" envDefault:"Idempotency-Key" desc:"header whose value, seen again on a route within the window, returns the first answer without publishing again; off disables (auth=github and standard default to their delivery id headers)"`
	IdemWindow     config.Millis `env:"WEBHOOK_IDEMPOTENCY_WINDOW_MS" envDefault:"86400000" desc:"how long an idempotency key is remembered"`
	IdemMaxKeys    int           `env:"WEBHOOK_IDEMPOTENCY_MAX_KEYS" envDefault:"100000" desc:"most idempotency keys remembered (the least recently used go first); per replica"`
	AckTimeout     config.Millis `env:"WEBHOOK_ACK_TIMEOUT_MS" envDefault:"10000" desc:"longest a request waits for Danube's acknowledgement before 503; also how long without any acknowledgement makes new requests fail fast with 503"`
	RetryAfter     config.Millis `env:"WEBHOOK_RETRY_AFTER_MS" envDefault:"5000" desc:"Retry-After of a 503 (rounded up to seconds)"`
	MaxConcurrent  int           `env:"WEBHOOK_MAX_CONCURRENT" envDefault:"1000" desc:"most requests handled at once (above: 503 with Retry-After); memory is bounded by about this times WEBHOOK_MAX_BODY_BYTES"`
	MaxConns       int           `env:"WEBHOOK_MAX_CONNECTIONS" envDefault:"10000" desc:"most client connections open at once (about 8 KiB each when idle); more wait in the kernel's accept queue"`
	ReadHeaderTime config.Millis `env:"WEBHOOK_READ_HEADER_TIMEOUT_MS" envDefault:"5000" desc:"time to send the request headers (slow clients are cut off)"`
	ReadTimeout    config.Millis `env:"WEBHOOK_READ_TIMEOUT_MS" envDefault:"30000" desc:"time to send the whole request"`
	WriteTimeout   config.Millis `env:"WEBHOOK_WRITE_TIMEOUT_MS" envDefault:"60000" desc:"time from the end of the request headers to the end of the answer; above WEBHOOK_ACK_TIMEOUT_MS"`
	IdleTimeout    config.Millis `env:"WEBHOOK_IDLE_TIMEOUT_MS" envDefault:"60000" desc:"keep-alive connections idle this long are closed"`
	TLSCertFile    string        `env:"WEBHOOK_TLS_CERT_FILE" desc:"PEM certificate: serve HTTPS (HTTP/2 negotiated) with WEBHOOK_TLS_KEY_FILE"`
	TLSKeyFile     string        `env:"WEBHOOK_TLS_KEY_FILE" desc:"PEM key of WEBHOOK_TLS_CERT_FILE"`
	TLSClientCA    string        `env:"WEBHOOK_TLS_CLIENT_CA_FILE" desc:"require client certificates signed by this PEM CA (mTLS)"`
}

// defaults returns the WEBHOOK_* defaults of a route's options.
func (c *Config) defaults() RouteSpec {
	idem := c.Idempotency
	if strings.EqualFold(idem, "off") {
		idem = ""
	}
	return RouteSpec{
		Auth: c.Auth, KeysFile: c.APIKeysFile, SignatureHeader: c.SignatureHeader, Tolerance: c.SignatureTolerate.D(),
		JWKS: c.JWKS, Issuer: c.JWTIssuer, Audience: c.JWTAudience,
		Rate: c.RateLimit, Burst: c.RateBurst, MaxBody: c.MaxBody, Types: c.ContentTypes, Key: c.RoutingKey,
		Idempotency: idem, Headers: splitHeaders(c.Headers),
	}
}

// routes parses WEBHOOK_ROUTES with the defaults.
func (c *Config) routes() ([]RouteSpec, error) { return parseRoutes(c.Routes, c.defaults()) }

// Validate implements config.Validator: every problem at once, each naming its variable.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, config.Invalid("WEBHOOK_ADDR", c.Addr, "want host:port or :port"))
	}
	routes, err := c.routes()
	if err != nil {
		errs = append(errs, config.Invalid("WEBHOOK_ROUTES", c.Routes, strings.ReplaceAll(err.Error(), "\n", "; ")))
	}
	for _, r := range routes {
		if r.Topic == "" && c.Topic == "" {
			errs = append(errs, config.Invalid("WEBHOOK_ROUTES", c.Routes, r.Path+" names no topic and DANUBE_TOPIC is not set"))
		}
		if r.Auth.signed() && r.SecretFile == "" && !c.HMACSecret.IsSet() && c.HMACSecretFile == "" {
			errs = append(errs, config.Invalid("WEBHOOK_HMAC_SECRET", "", "route "+r.Path+" has auth="+r.Auth.String()+
				": set WEBHOOK_HMAC_SECRET, WEBHOOK_HMAC_SECRET_FILE or the route's secret_file="))
		}
		if err := checkLines(r); err != nil {
			errs = append(errs, config.Invalid("WEBHOOK_ROUTES", c.Routes, "route "+r.Path+": "+err.Error()))
		}
	}
	if c.HMACSecret.IsSet() && c.HMACSecretFile != "" {
		errs = append(errs, config.Invalid("WEBHOOK_HMAC_SECRET_FILE", c.HMACSecretFile, "set together with WEBHOOK_HMAC_SECRET; use one"))
	}
	for _, f := range []struct{ name, path string }{
		{"WEBHOOK_HMAC_SECRET_FILE", c.HMACSecretFile}, {"WEBHOOK_TLS_CERT_FILE", c.TLSCertFile},
		{"WEBHOOK_TLS_KEY_FILE", c.TLSKeyFile}, {"WEBHOOK_TLS_CLIENT_CA_FILE", c.TLSClientCA},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, config.Invalid(f.name, f.path, "cannot read: "+errors.Unwrap(err).Error()))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, config.Invalid("WEBHOOK_TLS_CERT_FILE", c.TLSCertFile, "WEBHOOK_TLS_CERT_FILE and WEBHOOK_TLS_KEY_FILE go together"))
	}
	if c.TLSClientCA != "" && c.TLSCertFile == "" {
		errs = append(errs, config.Invalid("WEBHOOK_TLS_CLIENT_CA_FILE", c.TLSClientCA, "needs WEBHOOK_TLS_CERT_FILE and WEBHOOK_TLS_KEY_FILE"))
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		errs = append(errs, config.Invalid("WEBHOOK_RATE_LIMIT", c.RateLimit, "want a number of requests per second, 0 = unlimited"))
	}
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"WEBHOOK_RATE_BURST", int64(c.RateBurst)}, {"WEBHOOK_MAX_BODY_BYTES", c.MaxBody},
		{"WEBHOOK_IDEMPOTENCY_MAX_KEYS", int64(c.IdemMaxKeys)}, {"WEBHOOK_MAX_CONCURRENT", int64(c.MaxConcurrent)},
		{"WEBHOOK_MAX_CONNECTIONS", int64(c.MaxConns)},
	} {
		if v.n < 1 {
			errs = append(errs, config.Invalid(v.name, v.n, "must be at least 1"))
		}
	}
	for _, v := range []struct {
		name string
		d    config.Millis
	}{
		{"WEBHOOK_ACK_TIMEOUT_MS", c.AckTimeout}, {"WEBHOOK_RETRY_AFTER_MS", c.RetryAfter}, {"WEBHOOK_READ_HEADER_TIMEOUT_MS", c.ReadHeaderTime},
		{"WEBHOOK_READ_TIMEOUT_MS", c.ReadTimeout}, {"WEBHOOK_JWT_JWKS_REFRESH_MS", c.JWKSRefresh}, {"WEBHOOK_IDLE_TIMEOUT_MS", c.IdleTimeout}, {"WEBHOOK_IDEMPOTENCY_WINDOW_MS", c.IdemWindow},
	} {
		if v.d <= 0 {
			errs = append(errs, config.Invalid(v.name, v.d, "must be at least 1"))
		}
	}
	if c.WriteTimeout <= c.AckTimeout {
		errs = append(errs, config.Invalid("WEBHOOK_WRITE_TIMEOUT_MS", c.WriteTimeout, "must be above WEBHOOK_ACK_TIMEOUT_MS="+c.AckTimeout.String()+
			" (the answer waits for Danube's acknowledgement)"))
	}
	if c.ContentTypes == 0 {
		errs = append(errs, config.Invalid("WEBHOOK_CONTENT_TYPES", c.ContentTypes, "want at least one of json, ndjson, form, raw"))
	}
	return errors.Join(errs...)
}

// retryAfter is the Retry-After value in whole seconds (at least 1).
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
