package config

import (
	"encoding/json"
	"log/slog"
)

// redacted replaces a secret's value wherever a Secret is printed.
const redacted = "[REDACTED]"

// Secret holds a credential read from the environment (or from NAME_FILE). It never prints its value:
// fmt, slog, JSON and Print all show "[REDACTED]", so a config can be logged as a whole. Call Reveal
// at the one place that needs the clear text.
type Secret struct{ value string }

// NewSecret wraps s; mostly useful in tests and when a secret comes from somewhere other than the env.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the clear-text value.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s.value != "" }

// String implements fmt.Stringer with the redacted form ("" when unset, so "is it set" stays visible).
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v redacted too.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps JSON dumps redacted.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalText lets the env parser fill a Secret.
func (s *Secret) UnmarshalText(b []byte) error {
	s.value = string(b)
	return nil
}
