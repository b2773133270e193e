package runtime_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube/devbroker"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// lines is a log sink that records each record's message and error.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A rejected token and an untrusted broker certificate are logged at the first failure with the
// cause, and stop the connector (an error: exit 1) once DANUBE_FAIL_AFTER_MS has passed.
func TestRefusedCredentialsFailLoudlyAndEarly(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	b, err := devbroker.Start(devbroker.Config{AdminAddr: "-", TLSCertFile: certFile, TLSKeyFile: keyFile, JWTSecret: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, c := range []struct {
		name    string
		setup   func(*runtime.SinkConfig)
		wantLog string
	}{
		{"untrusted certificate", func(*runtime.SinkConfig) {}, "x509: certificate signed by unknown authority"},
		{"rejected token", func(cfg *runtime.SinkConfig) {
			cfg.DanubeCAFile, cfg.DanubeToken = certFile, config.NewSecret("not-a-jwt")
		}, "Unauthenticated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := runtimetest.SinkConfig(b, "refused", "/default/refused")
			cfg.DanubeServiceURL = strings.Replace(b.URL(), "http://", "https://", 1)
			cfg.DanubeFailAfter = config.Millis(time.Second)
			c.setup(cfg)
			var log lines
			start := time.Now()
			err := runtime.RunSink(context.Background(), cfg, &endpoint{seen: map[string]bool{}},
				runtime.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
			if err == nil || !strings.Contains(err.Error(), "connection refused by Danube for DANUBE_FAIL_AFTER_MS=1000") {
				t.Fatalf("RunSink returned %v", err)
			}
			if took := time.Since(start); took > runtimetest.Timeout {
				t.Fatalf("gave up after %v", took)
			}
			first, _, _ := strings.Cut(log.String(), "\n")
			if !strings.Contains(first, "level=ERROR msg=\"Danube refused the connection") || !strings.Contains(first, c.wantLog) {
				t.Fatalf("first log line %q, want the refusal with %q", first, c.wantLog)
			}
			if errors.Is(err, context.Canceled) {
				t.Fatal("a refusal must not look like a stop")
			}
		})
	}
}
