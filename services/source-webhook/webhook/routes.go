package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// RouteSpec is one route of WEBHOOK_ROUTES as written, before secrets and key files are read:
//
//	[METHOD ]PATH[=TOPIC][ option=value ...]
//
// Routes are separated by ';', options by spaces. An option left out takes the WEBHOOK_* default
// of the same meaning (see Config).
type RouteSpec struct {
	Method string // "" = POST
	Path   string
	Topic  string // "" = DANUBE_TOPIC

	Auth            AuthKind
	KeysFile        string        // auth=apikey
	SecretFile      string        // auth=github|stripe|standard|hmac; "" = WEBHOOK_HMAC_SECRET(_FILE)
	SignatureHeader string        // auth=hmac
	JWKS            string        // auth=jwt: URL or file of the JSON Web Key Set
	Issuer          string        // auth=jwt: required iss
	Audience        string        // auth=jwt: required aud
	Tolerance       time.Duration // auth=stripe|standard
	Rate            float64       // requests per second, 0 = unlimited
	Burst           int
	MaxBody         int64
	Types           ContentTypes
	Key             KeySource
	Idempotency     string // header carrying the idempotency key; "" = off
	Headers         []string
}

// AuthKind is how a route authenticates its senders.
type AuthKind int

// The auth schemes.
const (
	AuthNone     AuthKind = iota
	AuthAPIKey            // X-API-Key or Authorization: Bearer, checked against a key file
	AuthGitHub            // X-Hub-Signature-256: sha256=<hex HMAC of the body>
	AuthStripe            // Stripe-Signature: t=<unix>,v1=<hex HMAC of "t.body">
	AuthStandard          // Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature v1,<base64>
	AuthHMAC              // a header carrying the hex HMAC-SHA256 of the body, optionally "sha256="-prefixed
	AuthJWT               // Authorization: Bearer <JWT> signed by a key of a JWKS
)

var authNames = config.Enum[AuthKind]{
	{Value: AuthNone, Name: "none"}, {Value: AuthAPIKey, Name: "apikey"}, {Value: AuthGitHub, Name: "github"},
	{Value: AuthStripe, Name: "stripe"}, {Value: AuthStandard, Name: "standard"}, {Value: AuthHMAC, Name: "hmac"},
	{Value: AuthJWT, Name: "jwt"},
}

func (a AuthKind) String() string { return authNames.Name(a) }

// UnmarshalText parses an auth scheme name.
func (a *AuthKind) UnmarshalText(b []byte) error { return authNames.Parse(a, b) }

// signed reports whether the scheme verifies an HMAC of the body with a shared secret.
func (a AuthKind) signed() bool {
	switch a {
	case AuthGitHub, AuthStripe, AuthStandard, AuthHMAC:
		return true
	}
	return false
}

// providerIdempotency is the delivery id header a provider sends on every retry of one event.
func (a AuthKind) providerIdempotency() string {
	switch a {
	case AuthGitHub:
		return "X-GitHub-Delivery"
	case AuthStandard:
		return "Webhook-Id"
	}
	return ""
}

// ContentTypes is a set of body kinds a route accepts.
type ContentTypes uint8

// The body kinds.
const (
	JSON   ContentTypes = 1 << iota // application/json, */*+json: one event
	NDJSON                          // application/x-ndjson, application/jsonl: one event per line
	Form                            // application/x-www-form-urlencoded: one event, as a JSON object
	Raw                             // anything else: one event, the body as is
)

var typeNames = []struct {
	t    ContentTypes
	name string
}{{JSON, "json"}, {NDJSON, "ndjson"}, {Form, "form"}, {Raw, "raw"}}

func (c ContentTypes) String() string {
	var names []string
	for _, n := range typeNames {
		if c&n.t != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// UnmarshalText parses a comma list of json, ndjson, form and raw.
func (c *ContentTypes) UnmarshalText(b []byte) error {
	var out ContentTypes
	for part := range strings.SplitSeq(string(b), ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		found := false
		for _, n := range typeNames {
			if part == n.name {
				out |= n.t
				found = true
			}
		}
		if !found {
			return fmt.Errorf("unknown content type %q: want a comma list of json, ndjson, form and raw", part)
		}
	}
	*c = out
	return nil
}

// KeySource is where a route takes each event's routing key from: a request header, or a field
// of the JSON event (a dot path into nested objects).
type KeySource struct {
	Header string
	Field  []string
}

func (k KeySource) String() string {
	switch {
	case k.Header != "":
		return "header:" + k.Header
	case k.Field != nil:
		return "json:" + strings.Join(k.Field, ".")
	}
	return ""
}

// UnmarshalText parses header:NAME or json:a.b.c ("" = no key).
func (k *KeySource) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	*k = KeySource{}
	switch kind, v, _ := strings.Cut(s, ":"); {
	case s == "":
	case kind == "header" && v != "":
		k.Header = http.CanonicalHeaderKey(v)
	case kind == "json" && !slices.Contains(strings.Split(v, "."), ""):
		k.Field = strings.Split(v, ".")
	default:
		return fmt.Errorf("routing key %q: want header:NAME or json:field.path", s)
	}
	return nil
}

// parseRoutes parses WEBHOOK_ROUTES with defaults d (a RouteSpec holding the WEBHOOK_* values) and
// returns every problem at once.
func parseRoutes(s string, d RouteSpec) ([]RouteSpec, error) {
	var (
		out  []RouteSpec
		errs []error
		seen = map[string]bool{}
	)
	for i, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, err := parseRoute(part, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %d (%s): %w", i+1, strings.TrimSpace(part), err))
			continue
		}
		id := r.Method + " " + r.Path
		if seen[id] {
			errs = append(errs, fmt.Errorf("route %d: %s is configured twice", i+1, id))
		}
		seen[id] = true
		out = append(out, r)
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no route: want [METHOD ]/path[=/namespace/topic][ option=value ...], ';'-separated"))
	}
	return out, errors.Join(errs...)
}

// methods a route may name (a webhook carries a body).
var methods = map[string]bool{http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true}

func parseRoute(s string, d RouteSpec) (RouteSpec, error) {
	r := d
	r.Method = http.MethodPost
	fields := strings.Fields(s)
	if len(fields) > 0 && !strings.HasPrefix(fields[0], "/") {
		if !methods[fields[0]] {
			return r, fmt.Errorf("method %q: want POST, PUT or PATCH", fields[0])
		}
		r.Method, fields = fields[0], fields[1:]
	}
	if len(fields) == 0 || !strings.HasPrefix(fields[0], "/") {
		return r, errors.New("want a path starting with /")
	}
	r.Path, r.Topic, _ = strings.Cut(fields[0], "=")
	if r.Topic != "" {
		if err := danube.CheckTopic(r.Topic); err != nil {
			return r, fmt.Errorf("topic %q: %w", r.Topic, err)
		}
	}
	idempotencySet := false
	var errs []error
	for _, opt := range fields[1:] {
		name, v, ok := strings.Cut(opt, "=")
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("option %q: want name=value", opt))
			continue
		}
		var err error
		switch name {
		case "auth":
			err = r.Auth.UnmarshalText([]byte(v))
		case "keys_file":
			r.KeysFile = v
		case "secret_file":
			r.SecretFile = v
		case "signature_header":
			r.SignatureHeader = http.CanonicalHeaderKey(v)
		case "jwks":
			r.JWKS = v
		case "issuer":
			r.Issuer = v
		case "audience":
			r.Audience = v
		case "tolerance_ms":
			var ms int64
			ms, err = strconv.ParseInt(v, 10, 64)
			if err == nil && ms < 1 {
				err = errors.New("must be at least 1")
			}
			r.Tolerance = time.Duration(ms) * time.Millisecond
		case "rate":
			r.Rate, err = strconv.ParseFloat(v, 64)
			if err == nil && r.Rate < 0 {
				err = errors.New("must not be negative (0 = unlimited)")
			}
		case "burst":
			r.Burst, err = strconv.Atoi(v)
			if err == nil && r.Burst < 1 {
				err = errors.New("must be at least 1")
			}
		case "max_body":
			r.MaxBody, err = strconv.ParseInt(v, 10, 64)
			if err == nil && r.MaxBody < 1 {
				err = errors.New("must be at least 1")
			}
		case "types":
			err = r.Types.UnmarshalText([]byte(v))
		case "key":
			err = r.Key.UnmarshalText([]byte(v))
		case "idempotency":
			idempotencySet = true
			r.Idempotency = http.CanonicalHeaderKey(v)
			if strings.EqualFold(v, "off") {
				r.Idempotency = ""
			}
		case "headers":
			r.Headers = splitHeaders(v)
		default:
			err = errors.New("unknown option (want auth, keys_file, secret_file, signature_header, tolerance_ms, jwks, issuer, audience, rate, burst, max_body, types, key, idempotency or headers)")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("option %s=%s: %w", name, v, err))
		}
	}
	if !idempotencySet && r.Auth.providerIdempotency() != "" {
		r.Idempotency = r.Auth.providerIdempotency()
	}
	if r.Auth == AuthAPIKey && r.KeysFile == "" {
		errs = append(errs, errors.New("auth=apikey needs keys_file= or WEBHOOK_API_KEYS_FILE"))
	}
	if r.Auth == AuthJWT {
		if r.JWKS == "" || r.Issuer == "" || r.Audience == "" {
			errs = append(errs, errors.New("auth=jwt needs jwks=, issuer= and audience= (or WEBHOOK_JWT_JWKS, WEBHOOK_JWT_ISSUER, WEBHOOK_JWT_AUDIENCE)"))
		} else if !strings.HasPrefix(r.JWKS, "https://") && !strings.HasPrefix(r.JWKS, "http://") {
			if _, _, err := readJWKSFile(r.JWKS); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return r, errors.Join(errs...)
}

// splitHeaders parses a comma list of header names into their canonical forms.
func splitHeaders(s string) []string {
	var out []string
	for h := range strings.SplitSeq(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, http.CanonicalHeaderKey(h))
		}
	}
	return out
}
