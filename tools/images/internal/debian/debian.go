// Package debian fetches the pinned Debian packages of the glibc base (GLIBC_PACKAGES in
// tools/images/images.bzl), verifies them against their sha256 and reads their files.
package debian

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/danube-messaging/danube-connect-go/tools/images/internal/starfile"
)

// Mirror is where the tools path downloads packages from (Bazel also tries snapshot.debian.org).
const Mirror = "https://deb.debian.org/debian/"

// Package is one pinned .deb.
type Package struct {
	Name, Version, Arch string
	Path                string // in the archive, e.g. pool/main/g/glibc/libc6_..._amd64.deb
	SHA256, SHA1        string
}

// mirror is [Mirror], replaced by tests.
var mirror = Mirror

// URL is the package's address on [Mirror].
func (p Package) URL() string { return mirror + p.Path }

// SnapshotURL is the package's content-addressed address on snapshot.debian.org, which keeps
// every file Debian ever published (deb.debian.org drops superseded versions).
func (p Package) SnapshotURL() string { return "https://snapshot.debian.org/file/" + p.SHA1 }

// RepoName is the Bazel repository (http_file in MODULE.bazel) holding the package.
func (p Package) RepoName() string {
	return "debian_" + strings.NewReplacer("-", "_", ".", "_", "+", "_").Replace(p.Name) + "_" + p.Arch
}

// Load reads GLIBC_PACKAGES from the declaration under repoRoot.
func Load(repoRoot string) ([]Package, error) {
	v, err := starfile.Load(repoRoot, "GLIBC_PACKAGES")
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: GLIBC_PACKAGES must be a list of dicts", starfile.Path)
	}
	var pkgs []Package
	var errs []error
	for i, x := range list {
		m, _ := x.(map[string]any)
		field := func(k string) string {
			s, ok := m[k].(string)
			if !ok || s == "" {
				errs = append(errs, fmt.Errorf("%s: GLIBC_PACKAGES[%d].%s = %v: must be a non-empty string", starfile.Path, i, k, m[k]))
			}
			return s
		}
		p := Package{Name: field("name"), Version: field("version"), Arch: field("arch"),
			Path: field("path"), SHA256: field("sha256"), SHA1: field("sha1")}
		if len(p.SHA256) != 64 {
			errs = append(errs, fmt.Errorf("%s: GLIBC_PACKAGES[%d].sha256 = %q: must be 64 hex digits", starfile.Path, i, p.SHA256))
		}
		if !strings.HasSuffix(p.Path, "_"+p.Arch+".deb") {
			errs = append(errs, fmt.Errorf("%s: GLIBC_PACKAGES[%d].path = %q: must be the %s .deb", starfile.Path, i, p.Path, p.Arch))
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, errors.Join(errs...)
}

// ForArch returns the packages pinned for a Debian architecture (amd64, arm64).
func ForArch(pkgs []Package, arch string) []Package {
	var out []Package
	for _, p := range pkgs {
		if p.Arch == arch {
			out = append(out, p)
		}
	}
	return out
}

// Fetch returns the path of the verified .deb in cacheDir, downloading it from [Mirror] when it
// is not cached yet. A download gives up after a bounded time with an error naming the package.
func Fetch(ctx context.Context, p Package, cacheDir string) (string, error) {
	file := filepath.Join(cacheDir, p.SHA256+".deb")
	if err := Verify(file, p.SHA256); err == nil {
		return file, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	if err := download(ctx, p, file); err != nil {
		return "", fmt.Errorf("fetch Debian package %s %s (%s) for the glibc base: %w; "+
			"the glibc base needs %s reachable, or the verified file placed at %s", p.Name, p.Version, p.URL(), err, mirror, file)
	}
	return file, nil
}

func download(ctx context.Context, p Package, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true,
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".download-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("sha256 is %s, the declaration pins %s", got, p.SHA256)
	}
	return os.Rename(tmp.Name(), file)
}

// Verify checks that file has the sha256 want.
func Verify(file, want string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 %s, want %s", file, got, want)
	}
	return nil
}

// Walk calls fn for every entry of the .deb's data archive (data.tar.xz or data.tar), in
// archive order. Names are cleaned: no leading "./" or "/".
func Walk(deb string, fn func(h *tar.Header, r io.Reader) error) error {
	f, err := os.Open(deb)
	if err != nil {
		return err
	}
	defer f.Close()
	name, member, err := dataMember(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", deb, err)
	}
	r := member
	switch {
	case strings.HasSuffix(name, ".xz"):
		if r, err = xz.NewReader(member); err != nil {
			return fmt.Errorf("%s: %s: %w", deb, name, err)
		}
	case name == "data.tar":
	default:
		return fmt.Errorf("%s: %s: unsupported compression (want data.tar.xz)", deb, name)
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", deb, name, err)
		}
		h.Name = strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if h.Name == "" {
			continue
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

// dataMember finds the data.tar* member of a .deb, a Unix ar archive.
func dataMember(r *bufio.Reader) (string, io.Reader, error) {
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "!<arch>\n" {
		return "", nil, errors.New("not a Debian package (no ar header)")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return "", nil, errors.New("no data.tar member")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("ar member %q: bad size", name)
		}
		if strings.HasPrefix(name, "data.tar") {
			return name, io.LimitReader(r, size), nil
		}
		if _, err := r.Discard(int(size + size%2)); err != nil {
			return "", nil, err
		}
	}
}
