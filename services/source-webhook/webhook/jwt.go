package webhook

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
)

// jwtMethods are the signature algorithms accepted: asymmetric only, so that a key published in
// a JWKS can never be used as an HMAC secret ("alg confusion"), and never "none".
var jwtMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// bearerJWT accepts a request whose Authorization: Bearer token is a JWT signed by a key of the
// JWKS, issued by the issuer for the audience, not expired (within the leeway). Parsing and claim
// validation are github.com/golang-jwt/jwt/v5's, the most used Go JWT library; only reading the
// JWKS (a JSON list of public keys) is done here.
type bearerJWT struct {
	keys     *jwks
	issuer   string
	audience string
	leeway   time.Duration
}

func (v bearerJWT) verify(h http.Header, _ []byte, now time.Time) error {
	raw, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return errUnauthenticated
	}
	_, err := jwt.Parse(strings.TrimSpace(raw), v.keys.keyFor,
		jwt.WithValidMethods(jwtMethods), jwt.WithIssuer(v.issuer), jwt.WithAudience(v.audience),
		jwt.WithLeeway(v.leeway), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return fmt.Errorf("JWT: %w", err)
	}
	return nil
}

// jwks is a JSON Web Key Set from a file (re-read when it changes) or a URL (fetched in Initialize,
// then every refresh interval, and at most every 10 s when a token names an unknown key id).
type jwks struct {
	source  string // a URL or a file path
	refresh time.Duration
	log     *slog.Logger
	client  *http.Client

	mu      sync.Mutex
	keys    map[string]jwkKey // by kid ("" for a key without one)
	fetched time.Time         // URL: last fetch attempt; file: last stat
	mod     time.Time         // file: modification time of the keys held
	wake    chan struct{}     // URL: asks the refresher for an early fetch
	stop    chan struct{}
	done    chan struct{}
}

// jwkKey is one public key and the algorithm its JWK names, if any.
type jwkKey struct {
	key crypto.PublicKey
	alg string
}

func newJWKS(source string, refresh time.Duration, log *slog.Logger) *jwks {
	return &jwks{source: source, refresh: refresh, log: log, client: &http.Client{Timeout: 10 * time.Second}}
}

func (j *jwks) isURL() bool {
	return strings.HasPrefix(j.source, "https://") || strings.HasPrefix(j.source, "http://")
}

// load reads or fetches the key set for the first time. A URL that cannot be reached (transport
// error, 5xx) is runtime.Disconnected: the runtime waits for it.
func (j *jwks) load(ctx context.Context) error {
	if !j.isURL() {
		keys, mod, err := readJWKSFile(j.source)
		if err != nil {
			return err
		}
		j.mu.Lock()
		j.keys, j.mod, j.fetched = keys, mod, time.Now()
		j.mu.Unlock()
		return nil
	}
	keys, err := j.fetch(ctx)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.keys, j.fetched = keys, time.Now()
	j.mu.Unlock()
	if j.stop == nil {
		j.wake, j.stop, j.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go j.refresher()
	}
	return nil
}

// close stops the refresher.
func (j *jwks) close() {
	if j.stop != nil {
		close(j.stop)
		<-j.done
	}
}

func (j *jwks) refresher() {
	defer close(j.done)
	tick := time.NewTicker(j.refresh)
	defer tick.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-tick.C:
		case <-j.wake:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		keys, err := j.fetch(ctx)
		cancel()
		j.mu.Lock()
		j.fetched = time.Now()
		if err == nil {
			j.keys = keys
		}
		j.mu.Unlock()
		if err != nil {
			j.log.Warn("JWKS refresh failed; keeping the keys held", "jwks", j.source, "err", err)
		}
	}
}

func (j *jwks) fetch(ctx context.Context) (map[string]jwkKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.source, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", j.source, err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, runtime.Disconnected(fmt.Errorf("JWKS %s not reachable: %w", j.source, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return nil, runtime.Disconnected(fmt.Errorf("JWKS %s: reading: %w", j.source, err))
	case resp.StatusCode >= 500:
		return nil, runtime.Disconnected(fmt.Errorf("JWKS %s answered %s", j.source, resp.Status))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("JWKS %s answered %s", j.source, resp.Status)
	}
	return parseJWKS(body, j.source)
}

// keyFor is the jwt.Keyfunc: the key the token's kid names (or the only key, without a kid),
// refusing a token whose algorithm is not the one the key's JWK names.
func (j *jwks) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	keys := j.current()
	k, ok := keys[kid]
	if !ok && kid == "" && len(keys) == 1 {
		for _, only := range keys {
			k, ok = only, true
		}
	}
	if !ok {
		j.refreshSoon()
		return nil, fmt.Errorf("no key with kid %q in the JWKS", kid)
	}
	if k.alg != "" && k.alg != t.Method.Alg() {
		return nil, fmt.Errorf("key %q is for %s, the token is signed with %s", kid, k.alg, t.Method.Alg())
	}
	return k.key, nil
}

// current returns the keys, re-reading a file that changed (checked at most once a second).
func (j *jwks) current() map[string]jwkKey {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.isURL() || time.Since(j.fetched) < time.Second {
		return j.keys
	}
	j.fetched = time.Now()
	if st, err := os.Stat(j.source); err != nil || st.ModTime().Equal(j.mod) {
		return j.keys
	}
	keys, mod, err := readJWKSFile(j.source)
	if err != nil {
		j.log.Warn("JWKS file changed but cannot be used; keeping the previous keys", "err", err)
		return j.keys
	}
	j.keys, j.mod = keys, mod
	return j.keys
}

// refreshSoon asks for an early fetch of a URL's key set (a key was rotated in), at most every 10 s.
func (j *jwks) refreshSoon() {
	j.mu.Lock()
	due := j.wake != nil && time.Since(j.fetched) > 10*time.Second
	j.mu.Unlock()
	if due {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
}

func readJWKSFile(path string) (map[string]jwkKey, time.Time, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("JWKS file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("JWKS file: %w", err)
	}
	keys, err := parseJWKS(b, path)
	return keys, st.ModTime(), err
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518, 8037) that a signature check needs.
type jwk struct {
	Kty, Kid, Alg, Use, Crv string
	N, E, X, Y              string
}

// parseJWKS returns the signature keys of a JWKS document; keys of unknown types are skipped, and
// a set without any usable key is an error.
func parseJWKS(b []byte, source string) (map[string]jwkKey, error) {
	var doc struct{ Keys []jwk }
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", source, err)
	}
	keys := map[string]jwkKey{}
	var errs []error
	for _, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", k.Kid, err))
			continue
		}
		keys[k.Kid] = jwkKey{key: pub, alg: k.Alg}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS %s holds no usable signature key: %w", source, errors.Join(errs...))
	}
	return keys, nil
}

func (k jwk) publicKey() (crypto.PublicKey, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch k.Kty {
	case "RSA":
		n, err1 := dec(k.N)
		e, err2 := dec(k.E)
		if err := errors.Join(err1, err2); err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("malformed RSA key")
		}
		key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if key.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits, want at least 2048", key.N.BitLen())
		}
		return key, nil
	case "EC":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k.Crv]
		x, err1 := dec(k.X)
		y, err2 := dec(k.Y)
		if curve == nil || errors.Join(err1, err2) != nil {
			return nil, fmt.Errorf("malformed EC key (crv %q)", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("malformed EC key: coordinates of the wrong size")
		}
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "OKP":
		x, err := dec(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("malformed OKP key (crv %q)", k.Crv)
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("key type %q is not a signature key type (want RSA, EC or OKP)", k.Kty)
}
