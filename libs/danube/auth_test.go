package danube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
)

type testPKI struct {
	caFile, certFile, keyFile, clientCert, clientKey string
}

// newPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all PEM, into a temporary directory.
func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return der, keyDER
	}
	srv, srvKey := leaf(2, x509.ExtKeyUsageServerAuth)
	cli, cliKey := leaf(3, x509.ExtKeyUsageClientAuth)
	return testPKI{
		caFile:     write("ca.pem", "CERTIFICATE", caDER),
		certFile:   write("server.pem", "CERTIFICATE", srv),
		keyFile:    write("server.key", "EC PRIVATE KEY", srvKey),
		clientCert: write("client.pem", "CERTIFICATE", cli),
		clientKey:  write("client.key", "EC PRIVATE KEY", cliKey),
	}
}

func TestAuthTLSAndJWT(t *testing.T) {
	pki := newPKI(t)
	secret := []byte("s3cret")
	b := fastBroker(t, devbroker.Config{TLSCertFile: pki.certFile, TLSKeyFile: pki.keyFile, JWTSecret: secret})
	if !strings.HasPrefix(b.URL(), "https://") {
		t.Fatalf("auth broker URL = %s, want https", b.URL())
	}
	const topic = "/default/secure"
	ctx := testCtx(t)

	t.Run("static token", func(t *testing.T) {
		c := newTestClient(t, b.URL(), WithCAFile(pki.caFile), WithToken(hs256(secret, time.Hour)))
		p := mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
		cons := mustConsumer(t, c, ConsumerOptions{Topic: topic, Name: "c", Subscription: "s", Type: Shared})
		mustSend(t, p, ProducerMessage{Payload: []byte("secret message")})
		m := receive(t, cons)
		if string(m.Payload) != "secret message" {
			t.Fatalf("payload = %q", m.Payload)
		}
		if err := cons.Ack(ctx, m); err != nil {
			t.Fatal(err)
		}
	})

	unauth := []struct {
		name string
		opts []Option
		msg  string
	}{
		{"missing token", []Option{WithCAFile(pki.caFile)}, "Authentication credentials are missing"},
		{"expired token", []Option{WithCAFile(pki.caFile), WithToken(hs256(secret, -time.Hour))}, "Invalid token"},
		{"wrong secret", []Option{WithCAFile(pki.caFile), WithToken(hs256([]byte("other"), time.Hour))}, "Invalid token"},
	}
	for _, tc := range unauth {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, b.URL(), tc.opts...)
			_, err := c.NewProducer(ctx, ProducerOptions{Topic: topic, Name: "prod"})
			want := `danube: lookup topic "/default/secure": rpc error: code = Unauthenticated desc = ` + tc.msg
			if status.Code(err) != codes.Unauthenticated || err.Error() != want {
				t.Fatalf("NewProducer error = %v, want Unauthenticated %q", err, tc.msg)
			}
		})
	}

	t.Run("token file rotation", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(hs256(secret, -time.Hour)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := newTestClient(t, b.URL(), WithCAFile(pki.caFile), WithTokenFile(path))
		if _, err := c.NewProducer(ctx, ProducerOptions{Topic: topic, Name: "prod"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("with expired token file: %v, want Unauthenticated", err)
		}
		if err := os.WriteFile(path, []byte(hs256(secret, time.Hour)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(2 * time.Second)
		_ = os.Chtimes(path, later, later)
		mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
	})

	t.Run("token supplier and mTLS", func(t *testing.T) {
		var calls atomic.Int64
		tok := hs256(secret, time.Hour)
		c := newTestClient(t, b.URL(), WithCAFile(pki.caFile), WithClientCert(pki.clientCert, pki.clientKey),
			WithTokenSupplier(func(context.Context) (string, error) { calls.Add(1); return tok, nil }))
		mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
		if calls.Load() < 2 {
			t.Errorf("supplier called %d times, want once per rpc (lookup + create)", calls.Load())
		}
	})

	t.Run("tls.Config", func(t *testing.T) {
		pem, err := os.ReadFile(pki.caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		c := newTestClient(t, b.URL(), WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}), WithToken(hs256(secret, time.Hour)))
		mustProducer(t, c, ProducerOptions{Topic: topic, Name: "prod"})
	})

	t.Run("unknown CA", func(t *testing.T) {
		c := newTestClient(t, b.URL(), WithToken(hs256(secret, time.Hour)), WithMaxRetries(1))
		_, err := c.NewProducer(ctx, ProducerOptions{Topic: topic, Name: "prod"})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
			t.Fatalf("error = %v, want Unavailable with an x509 verification failure", err)
		}
	})
}
