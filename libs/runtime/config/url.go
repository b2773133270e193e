package config

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
)

// URL is a URL that may carry credentials (user:password@, ?token=…). It prints redacted — in
// fmt, slog, JSON, Print and error messages built from it — so a config can be logged as a whole;
// Reveal returns the URL to use.
type URL string

// Reveal returns the URL as configured.
func (u URL) Reveal() string { return string(u) }

// String returns the URL with its password and the values of credential-like query parameters
// replaced by "[REDACTED]". A URL that does not parse prints as "[REDACTED]" entirely: it may be
// a credential pasted in the wrong place.
func (u URL) String() string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(string(u))
	if err != nil {
		return redacted
	}
	if p.User != nil {
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(p.User.Username(), redacted)
		}
	}
	if p.RawQuery != "" {
		q := p.Query()
		for k := range q {
			if sensitiveParam(k) {
				q[k] = []string{redacted}
			}
		}
		p.RawQuery = q.Encode()
	}
	s := p.String()
	return strings.NewReplacer(url.QueryEscape(redacted), redacted, url.PathEscape(redacted), redacted).Replace(s)
}

// sensitiveParam reports whether a query parameter name looks like it carries a credential.
func sensitiveParam(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "key", "secret", "password", "passwd", "pwd", "auth", "sig", "signature", "credential", "session"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// LogValue implements slog.LogValuer.
func (u URL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalJSON keeps JSON dumps redacted.
func (u URL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }
