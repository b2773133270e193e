package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com) header names.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// secretPrefix marks a Standard Webhooks secret whose remainder is the base64 of the key bytes.
const secretPrefix = "whsec_"

// Signer signs requests the Standard Webhooks way, so receivers can use any of that spec's libraries
// (or ten lines of their own) to check that a request came from this connector and was not replayed.
type Signer struct{ key []byte }

// NewSigner derives the HMAC key from secret: "whsec_<base64>" (the Standard Webhooks form, what
// their libraries generate) is base64-decoded; any other string is used as raw bytes.
func NewSigner(secret string) (*Signer, error) {
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key}, nil
}

func secretKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("webhook: signing secret is empty")
	}
	rest, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("webhook: signing secret %s...: the part after %q is not valid base64: %w", secretPrefix, secretPrefix, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("webhook: signing secret %q has no key after the prefix", secretPrefix)
	}
	return key, nil
}

// Sign returns the signature header value "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(s.key, id, ts.Unix(), body))
}

// apply sets the three Standard Webhooks headers on h for one attempt.
func (s *Signer) apply(h http.Header, id string, ts time.Time, body []byte) {
	h[HeaderWebhookID] = []string{id}
	h[HeaderWebhookTimestamp] = []string{strconv.FormatInt(ts.Unix(), 10)}
	h[HeaderWebhookSignature] = []string{s.Sign(id, ts, body)}
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verification errors, for errors.Is.
var (
	ErrMissingSignature = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp     = errors.New("webhook: timestamp outside the tolerance")
	ErrBadSignature     = errors.New("webhook: no matching signature")
)

// Verify checks a received request the way a Standard Webhooks receiver does: the timestamp is
// within tolerance of now (0 means 5 minutes) and one of the space-separated "v1,<sig>" entries
// matches. It exists for receivers written in Go and for this package's tests.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp %q is not unix seconds", ErrBadTimestamp, tsText)
	}
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: webhook-timestamp %d is %s from now", ErrBadTimestamp, ts, d.Round(time.Second))
	}
	want := mac(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}
