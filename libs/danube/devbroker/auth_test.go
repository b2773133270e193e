package devbroker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	pb "github.com/danube-messaging/danube-connect-go/proto/danubepb"
)

// writeCert creates a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "devbroker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func jwt(secret []byte, alg string, claims string) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(fmt.Sprintf(`{"alg":%q,"typ":"JWT"}`, alg)))
	p := enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(h + "." + p))
	return h + "." + p + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestAuthMode(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	secret := []byte("s3cret")
	cfg := fastConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.JWTSecret = certFile, keyFile, secret
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", b.URL())
	}
	conn, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	disc := pb.NewDiscoveryClient(conn)
	future := time.Now().Add(time.Hour).Unix()
	past := time.Now().Add(-time.Hour).Unix()
	good := jwt(secret, "HS256", fmt.Sprintf(`{"sub":"u","iss":"danube-auth","exp":%d,"principal_type":"user","principal_name":"u"}`, future))
	tests := []struct {
		name string
		md   []string
		code codes.Code
		msg  string
	}{
		{"missing", nil, codes.Unauthenticated, "Authentication credentials are missing"},
		{"not bearer", []string{"authorization", "Basic abc"}, codes.Unauthenticated, "Authentication metadata is invalid"},
		{"garbage", []string{"authorization", "Bearer abc"}, codes.Unauthenticated, "Invalid token"},
		{"wrong secret", []string{"authorization", "Bearer " + jwt([]byte("other"), "HS256", fmt.Sprintf(`{"exp":%d}`, future))}, codes.Unauthenticated, "Invalid token"},
		{"expired", []string{"authorization", "Bearer " + jwt(secret, "HS256", fmt.Sprintf(`{"exp":%d}`, past))}, codes.Unauthenticated, "Invalid token"},
		{"no exp", []string{"authorization", "Bearer " + jwt(secret, "HS256", `{"sub":"u"}`)}, codes.Unauthenticated, "Invalid token"},
		{"alg none", []string{"authorization", "Bearer " + jwt(secret, "none", fmt.Sprintf(`{"exp":%d}`, future))}, codes.Unauthenticated, "Invalid token"},
		{"internal broker header is not trusted", []string{"x-danube-internal-broker", "b1"}, codes.Unauthenticated, "Authentication credentials are missing"},
		{"valid", []string{"authorization", "Bearer " + good}, codes.NotFound, "Unable to find the requested topic"},
		{"valid lowercase bearer", []string{"authorization", "bearer " + good}, codes.NotFound, "Unable to find the requested topic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ctx(t)
			if tc.md != nil {
				c = metadata.AppendToOutgoingContext(c, tc.md...)
			}
			_, err := disc.TopicLookup(c, &pb.TopicLookupRequest{Topic: "/default/x"})
			wantCode(t, err, tc.code, tc.msg)
		})
	}
	// Streams are checked too.
	cl, err := pb.NewConsumerServiceClient(conn).ReceiveMessages(ctx(t), &pb.ReceiveRequest{ConsumerId: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Recv()
	wantCode(t, err, codes.Unauthenticated, "Authentication credentials are missing")
}

func TestAuthConfigNeedsAllThree(t *testing.T) {
	_, err := Start(Config{JWTSecret: []byte("x")})
	if err == nil || err.Error() != "devbroker: auth mode needs TLSCertFile, TLSKeyFile and JWTSecret together" {
		t.Fatalf("err = %v", err)
	}
}
