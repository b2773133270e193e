package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errUnauthenticated is a request that carries no credentials (401); any other verification error
// is a request whose credentials are wrong, expired or replayed (403).
var errUnauthenticated = errors.New("missing credentials")

// verifier checks one request's credentials against its body.
type verifier interface {
	verify(h http.Header, body []byte, now time.Time) error
}

type noAuth struct{}

func (noAuth) verify(http.Header, []byte, time.Time) error { return nil }

// lines is a file of secrets or keys, one per line (blank lines and # comments skipped), re-read
// when its modification time or size changes (checked at most once a second), so that keys and
// secrets rotate without a restart. A file that turns unreadable or empty keeps the last lines.
type lines struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	checked time.Time
	mod     time.Time
	size    int64
	vals    [][]byte
}

func newLines(path string, log *slog.Logger) (*lines, error) {
	l := &lines{path: path, log: log}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	vals, err := readLines(path)
	if err != nil {
		return nil, err
	}
	l.vals, l.mod, l.size = vals, st.ModTime(), st.Size()
	return l, nil
}

// readLines reads path's non-empty, non-comment lines; none is an error.
func readLines(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	var out [][]byte
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no key or secret", path)
	}
	return out, nil
}

// checkLines reports why a route's key or secret file cannot be used.
func checkLines(r RouteSpec) error {
	switch {
	case r.Auth == AuthAPIKey && r.KeysFile != "":
		_, err := readLines(r.KeysFile)
		return err
	case r.Auth.signed() && r.SecretFile != "":
		_, err := readLines(r.SecretFile)
		return err
	}
	return nil
}

// get returns the current lines, re-reading the file if it changed.
func (l *lines) get(now time.Time) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.checked) < time.Second {
		return l.vals
	}
	l.checked = now
	st, err := os.Stat(l.path)
	if err != nil || (st.ModTime().Equal(l.mod) && st.Size() == l.size) {
		return l.vals
	}
	vals, err := readLines(l.path)
	if err != nil {
		l.log.Warn("key or secret file changed but cannot be used; keeping the previous contents", "err", err)
		return l.vals
	}
	l.vals, l.mod, l.size = vals, st.ModTime(), st.Size()
	l.log.Info("key or secret file re-read", "file", l.path, "entries", len(vals))
	return l.vals
}

// secrets is a fixed secret (WEBHOOK_HMAC_SECRET) or a file of them.
type secrets struct {
	fixed [][]byte
	file  *lines
}

func (s secrets) get(now time.Time) [][]byte {
	if s.file != nil {
		return s.file.get(now)
	}
	return s.fixed
}

// apiKeys accepts a request whose X-API-Key or bearer token is one of the file's keys. Keys are
// compared as SHA-256 digests in constant time, each against every key, so that neither the
// comparison nor the loop tells how much of a key was right.
type apiKeys struct{ keys *lines }

func (a apiKeys) verify(h http.Header, _ []byte, now time.Time) error {
	key := h.Get("X-Api-Key")
	if key == "" {
		if v, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer "); ok {
			key = strings.TrimSpace(v)
		}
	}
	if key == "" {
		return errUnauthenticated
	}
	got := sha256.Sum256([]byte(key))
	match := 0
	for _, k := range a.keys.get(now) {
		want := sha256.Sum256(k)
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if match != 1 {
		return errors.New("unknown API key")
	}
	return nil
}

// signature verifies an HMAC-SHA256 signature in one of the providers' schemes.
type signature struct {
	kind      AuthKind
	secrets   secrets
	header    string        // hmac: the signature header
	tolerance time.Duration // stripe, standard
}

func (s signature) verify(h http.Header, body []byte, now time.Time) error {
	switch s.kind {
	case AuthGitHub:
		return s.hexPrefixed(h.Get("X-Hub-Signature-256"), body, now)
	case AuthHMAC:
		return s.hexPrefixed(h.Get(s.header), body, now)
	case AuthStripe:
		return s.stripe(h.Get("Stripe-Signature"), body, now)
	}
	return s.standard(h, body, now)
}

// hexPrefixed checks "sha256=<hex>" (GitHub) or "<hex>" over the body.
func (s signature) hexPrefixed(v string, body []byte, now time.Time) error {
	if v == "" {
		return errUnauthenticated
	}
	got, err := hex.DecodeString(strings.TrimPrefix(v, "sha256="))
	if err != nil {
		return errors.New("signature is not hex")
	}
	return s.match(now, [][]byte{got}, body)
}

// stripe checks Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...] over "t.body".
func (s signature) stripe(v string, body []byte, now time.Time) error {
	if v == "" {
		return errUnauthenticated
	}
	var (
		ts   string
		sigs [][]byte
	)
	for part := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = val
		case "v1":
			if b, err := hex.DecodeString(val); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return errors.New("Stripe-Signature has no t= or v1=")
	}
	if err := s.recent(ts, now); err != nil {
		return err
	}
	return s.match(now, sigs, []byte(ts+"."), body)
}

// standard checks Standard Webhooks: webhook-signature "v1,<base64> ..." over "id.timestamp.body",
// the secret being whsec_<base64 key>.
func (s signature) standard(h http.Header, body []byte, now time.Time) error {
	id, ts, v := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if v == "" {
		return errUnauthenticated
	}
	if id == "" || ts == "" {
		return errors.New("webhook-id or webhook-timestamp missing")
	}
	if err := s.recent(ts, now); err != nil {
		return err
	}
	var sigs [][]byte
	for part := range strings.FieldsSeq(v) {
		if b64, ok := strings.CutPrefix(part, "v1,"); ok {
			if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	return s.match(now, sigs, []byte(id+"."+ts+"."), body)
}

// recent refuses a signed timestamp (unix seconds) further than the tolerance from now.
func (s signature) recent(ts string, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("signed timestamp is not a number")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > s.tolerance || -d > s.tolerance {
		return fmt.Errorf("signed timestamp is %v from now, beyond the %v tolerance", d.Round(time.Second), s.tolerance)
	}
	return nil
}

// match reports whether any of sigs is the HMAC of prefix+body under any current secret.
func (s signature) match(now time.Time, sigs [][]byte, parts ...[]byte) error {
	for _, secret := range s.secrets.get(now) {
		key := secret
		if s.kind == AuthStandard {
			key = standardKey(secret)
		}
		mac := hmac.New(sha256.New, key)
		for _, p := range parts {
			mac.Write(p)
		}
		want := mac.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return errors.New("signature does not match")
}

// standardKey decodes a Standard Webhooks secret (whsec_<base64>); anything else is used as is.
func standardKey(secret []byte) []byte {
	b64, ok := bytes.CutPrefix(secret, []byte("whsec_"))
	if !ok {
		return secret
	}
	key, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil {
		return secret
	}
	return key
}
