package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

// issued is a certificate a test CA signed, as PEM files and as a tls.Certificate.
type issued struct {
	certFile, keyFile string
	pair              tls.Certificate
}

func newCA(t *testing.T, dir string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	path := filepath.Join(dir, "ca.pem")
	writePEM(t, path, "CERTIFICATE", der)
	return ca, key, path
}

func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := issued{certFile: filepath.Join(dir, name+".pem"), keyFile: filepath.Join(dir, name+"-key.pem")}
	writePEM(t, out.certFile, "CERTIFICATE", der)
	writePEM(t, out.keyFile, "EC PRIVATE KEY", keyDER)
	if out.pair, err = tls.LoadX509KeyPair(out.certFile, out.keyFile); err != nil {
		t.Fatal(err)
	}
	return out
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSWithClientCertificates: with WEBHOOK_TLS_* the server speaks HTTPS, negotiates HTTP/2,
// and with a client CA refuses a client without a certificate signed by it.
func TestTLSWithClientCertificates(t *testing.T) {
	b := runtimetest.SuiteBroker(t)
	topic, col := topicFor(t, b, "tls")
	dir := t.TempDir()
	ca, caKey, caFile := newCA(t, dir)
	server := issue(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	clientCert := issue(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	cfg := loadConfig(t, b, "wh-tls", topic, "WEBHOOK_ROUTES=/in="+topic, "WEBHOOK_TLS_CERT_FILE="+server.certFile,
		"WEBHOOK_TLS_KEY_FILE="+server.keyFile, "WEBHOOK_TLS_CLIENT_CA_FILE="+caFile)
	r := start(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	url := "https://" + r.src.listenAddr() + "/in"
	// send posts once and returns the status and the HTTP major version of the answer.
	send := func(certs []tls.Certificate) (status, proto int, err error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		resp, err := c.Post(url, "application/json", strings.NewReader(`{"tls":true}`))
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.ProtoMajor, nil
	}
	status, proto, err := send([]tls.Certificate{clientCert.pair})
	if err != nil || status != http.StatusOK || proto != 2 {
		t.Fatalf("with a client certificate: %d HTTP/%d %v, want 200 over HTTP/2", status, proto, err)
	}
	if _, _, err := send(nil); err == nil {
		t.Fatal("accepted a client without a certificate")
	}
	col.WaitFor(t, "the event", func(ms []*danube.Message) bool { return len(ms) == 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
}
