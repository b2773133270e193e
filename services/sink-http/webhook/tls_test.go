package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientCert writes a self-signed client certificate and key to dir and returns their paths and
// the parsed certificate.
func clientCert(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "sink-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mtlsServer requires a client certificate signed by clientCA and counts handled requests.
func mtlsServer(t *testing.T, clientCA *x509.Certificate, hits *atomic.Int32, peer *atomic.Value) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if len(r.TLS.PeerCertificates) > 0 {
			peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCA)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestTLSWithCAFileAndClientCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := clientCert(t, dir)
	var hits atomic.Int32
	var peer atomic.Value
	srv := mtlsServer(t, cert, &hits, &peer)
	caFile := filepath.Join(dir, "server-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", srv.Certificate().Raw)

	s := newSender(t, Config{URL: srv.URL, CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
	if err := s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "x")})[0]; err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 || peer.Load() != "sink-test" {
		t.Fatalf("hits %d, client certificate %v", hits.Load(), peer.Load())
	}

	// Without the client certificate the server refuses the handshake.
	s2 := newSender(t, Config{URL: srv.URL, CAFile: caFile})
	err := s2.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "x")})[0]
	if err == nil || !IsRetryable(err) || hits.Load() != 1 {
		t.Fatalf("without client cert: err %v, hits %d", err, hits.Load())
	}

	// Without the CA the server's certificate is not trusted.
	s3 := newSender(t, Config{URL: srv.URL, CertFile: certFile, KeyFile: keyFile})
	if err := s3.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "x")})[0]; err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Fatalf("without CA: %v", err)
	}
}

func TestInsecureSkipVerifyWorksAndWarns(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var logs bytes.Buffer
	s := newSender(t, Config{URL: srv.URL, InsecureSkipVerify: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Deliver(context.Background(), []Message{msg("/a/b", 1, "", "x")})[0]; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "verification of the webhook endpoint is DISABLED") {
		t.Fatalf("no loud warning: %s", logs.String())
	}
}
