package baselayer

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStaticIsDeterministicAndComplete(t *testing.T) {
	a, err := Static()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Static()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of Static produced different bytes")
	}
	var names []string
	files := map[string][]byte{}
	headers := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		headers[h.Name] = h
		if !h.ModTime.Equal(ModTime) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uname %q gname %q, want %v and no names", h.Name, h.ModTime, h.Uname, h.Gname, ModTime)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
	want := []string{"etc/", "etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/ssl/", "etc/ssl/certs/",
		"etc/ssl/certs/ca-certificates.crt", "home/", "home/nonroot/", "root/", "tmp/"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if h := headers["home/nonroot/"]; h.Uid != Nonroot || h.Gid != Nonroot || h.Mode != 0o700 {
		t.Errorf("home/nonroot: uid %d gid %d mode %o", h.Uid, h.Gid, h.Mode)
	}
	if h := headers["tmp/"]; h.Mode != 0o1777 || h.Uid != 0 {
		t.Errorf("tmp: mode %o uid %d", h.Mode, h.Uid)
	}
	if !bytes.Contains(files["etc/passwd"], []byte("nonroot:x:65532:65532:nonroot:/home/nonroot:")) {
		t.Errorf("etc/passwd:\n%s", files["etc/passwd"])
	}
	if !bytes.Contains(files["etc/group"], []byte("nonroot:x:65532:")) {
		t.Errorf("etc/group:\n%s", files["etc/group"])
	}
	// The CA bundle parses and holds the usual roots.
	pool := x509.NewCertPool()
	n := 0
	for rest := files[CACertificates]; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("certificate %d: %v", n, err)
		}
		pool.AddCert(c)
		n++
	}
	if n < 100 {
		t.Errorf("CA bundle has %d certificates, want the Mozilla roots (over 100)", n)
	}
}
