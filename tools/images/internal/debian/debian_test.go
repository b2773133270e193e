package debian

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDeb builds a .deb (ar archive) whose data.tar.xz holds files (name -> content; a content
// starting with "->" makes a symlink).
func fakeDeb(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var data bytes.Buffer
	xw, err := xz.NewWriter(&data)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(xw)
	for name, body := range files {
		h := &tar.Header{Name: "./" + name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(body))}
		if target, ok := strings.CutPrefix(body, "->"); ok {
			h = &tar.Header{Name: "./" + name, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: target}
			body = ""
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	member := func(name string, b []byte) {
		fmt.Fprintf(&ar, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", name, "0", "0", "0", "100644", len(b))
		ar.Write(b)
		if len(b)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	member("debian-binary", []byte("2.0\n"))
	member("control.tar.xz", []byte("odd"))
	member("data.tar.xz", data.Bytes())
	return ar.Bytes()
}

func TestWalkReadsTheDataArchive(t *testing.T) {
	deb := filepath.Join(t.TempDir(), "x.deb")
	if err := os.WriteFile(deb, fakeDeb(t, map[string]string{
		"lib/x86_64-linux-gnu/libc.so.6": "ELF",
		"lib64/ld-linux-x86-64.so.2":     "->/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err := Walk(deb, func(h *tar.Header, r io.Reader) error {
		b, _ := io.ReadAll(r)
		got[h.Name] = string(b) + h.Linkname
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"lib/x86_64-linux-gnu/libc.so.6": "ELF",
		"lib64/ld-linux-x86-64.so.2":     "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Walk saw %v, want %v", got, want)
	}

	notDeb := filepath.Join(t.TempDir(), "y.deb")
	if err := os.WriteFile(notDeb, []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Walk(notDeb, nil); err == nil || !strings.Contains(err.Error(), "not a Debian package") {
		t.Errorf("Walk(html) = %v", err)
	}
}

func TestFetch(t *testing.T) {
	body := []byte("the package")
	sum := sha256.Sum256(body)
	p := Package{Name: "libc6", Version: "2.36", Arch: "amd64", Path: "pool/libc6_2.36_amd64.deb", SHA256: hex.EncodeToString(sum[:])}
	serve := func(h http.HandlerFunc) {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		mirror = srv.URL + "/"
		t.Cleanup(func() { mirror = Mirror })
	}

	t.Run("verified and cached", func(t *testing.T) {
		cache := t.TempDir()
		serve(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
		file, err := Fetch(context.Background(), p, cache)
		if err != nil {
			t.Fatal(err)
		}
		mirror = "http://127.0.0.1:1/" // nothing listens: the second fetch must use the cache
		if again, err := Fetch(context.Background(), p, cache); err != nil || again != file {
			t.Fatalf("cached Fetch = %q, %v; want %q", again, err, file)
		}
	})
	t.Run("wrong content", func(t *testing.T) {
		serve(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("tampered")) })
		_, err := Fetch(context.Background(), p, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "the declaration pins "+p.SHA256) {
			t.Errorf("Fetch = %v, want a sha256 mismatch", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		serve(http.NotFound)
		_, err := Fetch(context.Background(), p, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "HTTP 404 Not Found") {
			t.Errorf("Fetch = %v, want HTTP 404", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		mirror = "http://" + addr + "/"
		t.Cleanup(func() { mirror = Mirror })
		cache := t.TempDir()
		_, err = Fetch(context.Background(), p, cache)
		want := fmt.Sprintf("fetch Debian package libc6 2.36 (http://%s/pool/libc6_2.36_amd64.deb) for the glibc base: ", addr)
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), filepath.Join(cache, p.SHA256+".deb")) {
			t.Errorf("Fetch = %v, want an error starting %q naming the cache file", err, want)
		}
	})
}
