package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

var b64 = base64.RawURLEncoding.EncodeToString

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PrivateKey) map[string]string {
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}
}

func writeJWKS(t *testing.T, path string, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

func token(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWT: a bearer JWT is accepted when signed by a key of the JWKS (file or URL), for the
// configured issuer and audience and not expired; a missing token is 401, and a bad signature,
// an expired token, another issuer or audience, an unknown key, "none", an HMAC made with the
// public key, or an algorithm other than the key's are 403. A key added to the JWKS file is used
// without a restart.
func TestJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, file, rsaJWK("rsa1", &rsaKey.PublicKey), ecJWK("ec1", ecKey))
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": b64(edPub)}}})
	}))
	defer jwksServer.Close()

	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "jwt")
	cfg := loadConfig(t, b, "wh-jwt", topic, "WEBHOOK_AUTH=jwt", "WEBHOOK_JWT_ISSUER=https://issuer.example", "WEBHOOK_JWT_AUDIENCE=webhooks",
		"WEBHOOK_ROUTES=/file="+topic+" jwks="+file+";/url="+topic+" jwks="+jwksServer.URL+" audience=beacons")
	r := start(t, cfg)

	now := time.Now()
	claims := func(iss, aud string, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": aud, "exp": exp.Unix(), "iat": now.Unix(), "sub": "partner-1"}
	}
	good := claims("https://issuer.example", "webhooks", now.Add(time.Hour))
	pubDER := rsaKey.N.Bytes()
	cases := []struct {
		name, path, token string
		code              int
	}{
		{"RS256", "/file", token(t, jwt.SigningMethodRS256, "rsa1", rsaKey, good), 200},
		{"ES256", "/file", token(t, jwt.SigningMethodES256, "ec1", ecKey, good), 200},
		{"EdDSA from a JWKS URL", "/url", token(t, jwt.SigningMethodEdDSA, "ed1", edKey, claims("https://issuer.example", "beacons", now.Add(time.Hour))), 200},
		{"missing", "/file", "", 401},
		{"bad signature", "/file", token(t, jwt.SigningMethodRS256, "rsa1", other, good), 403},
		{"expired", "/file", token(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("https://issuer.example", "webhooks", now.Add(-2*time.Minute))), 403},
		{"within the leeway", "/file", token(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("https://issuer.example", "webhooks", now.Add(-30*time.Second))), 200},
		{"other issuer", "/file", token(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claims("https://evil.example", "webhooks", now.Add(time.Hour))), 403},
		{"other audience", "/url", token(t, jwt.SigningMethodEdDSA, "ed1", edKey, good), 403},
		{"unknown kid", "/file", token(t, jwt.SigningMethodRS256, "rsa2", rsaKey, good), 403},
		{"no exp", "/file", token(t, jwt.SigningMethodRS256, "rsa1", rsaKey, jwt.MapClaims{"iss": "https://issuer.example", "aud": "webhooks"}), 403},
		{"alg none", "/file", token(t, jwt.SigningMethodNone, "rsa1", jwt.UnsafeAllowNoneSignatureType, good), 403},
		{"HMAC with the public key", "/file", token(t, jwt.SigningMethodHS256, "rsa1", pubDER, good), 403},
		{"PS256 with an RS256 key", "/file", token(t, jwt.SigningMethodPS256, "rsa1", rsaKey, good), 403},
	}
	accepted := 0
	for _, c := range cases {
		var hdr []string
		if c.token != "" {
			hdr = []string{"Authorization", "Bearer " + c.token}
		}
		post(t, r.url+c.path, "application/json", `{"n":1}`, hdr...).want(t, c.name, c.code)
		if c.code == 200 {
			accepted++
		}
	}

	writeJWKS(t, file, rsaJWK("rsa2", &other.PublicKey))
	rotated := token(t, jwt.SigningMethodRS256, "rsa2", other, good)
	deadline := time.Now().Add(runtimetest.Timeout)
	for post(t, r.url+"/file", "application/json", `{"n":2}`, "Authorization", "Bearer "+rotated).code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("a key added to the JWKS file is not used")
		}
		time.Sleep(100 * time.Millisecond)
	}
	post(t, r.url+"/file", "application/json", `{"n":1}`, "Authorization", "Bearer "+cases[0].token).want(t, "removed key", 403)
	col.WaitFor(t, "the accepted events", func(ms []*danube.Message) bool { return len(ms) >= accepted+1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(col.Messages()); n != accepted+1 {
		t.Fatalf("%d events in Danube, want %d", n, accepted+1)
	}
}

// TestJWKSNotReachableYet: a JWKS URL that does not answer at start is waited for (Disconnected),
// not a reason to stop.
func TestJWKSNotReachableYet(t *testing.T) {
	cfg, err := load("WEBHOOK_ADDR=127.0.0.1:0", "WEBHOOK_ROUTES=/a=/default/a auth=jwt jwks=http://"+freeAddr(t)+"/jwks issuer=i audience=a")
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSource(cfg, runtime.NewResources(&cfg.Common))
	if err != nil {
		t.Fatal(err)
	}
	err = src.Initialize(context.Background())
	if runtime.ClassOf(err) != runtime.ClassDisconnected {
		t.Fatalf("Initialize: %v (class %v), want Disconnected", err, runtime.ClassOf(err))
	}
	if err := src.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := load("WEBHOOK_ROUTES=/a=/default/a auth=jwt jwks=" + filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Fatal("a missing JWKS file loaded")
	}
}
