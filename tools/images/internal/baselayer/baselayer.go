// Package baselayer generates the base layers of the connector images as deterministic tar
// files: the same inputs give the same bytes, whether `go run ./tools/images` or Bazel (through
// the go_binary //tools/images/cmd/baselayer) runs it, so the two paths cannot drift.
//
// Every entry has a fixed modification time, owner root (or the nonroot user where it must be
// writable by it), no user or group names, and entries are sorted by name.
package baselayer

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/danube-messaging/danube-connect-go/tools/images/internal/debian"
)

// ModTime is every entry's modification time (rules_pkg's portable mtime, 2000-01-01 UTC).
var ModTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Nonroot is the uid and gid the services run as.
const Nonroot = 65532

// CACertificates is where the CA bundle lives (Go's and OpenSSL's default location on Debian).
const CACertificates = "etc/ssl/certs/ca-certificates.crt"

const passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`

const nsswitch = `passwd: files
group: files
hosts: files dns
networks: files
protocols: files
services: files
`

// Static returns the layer every image starts from: the root, nonroot (65532) and nobody users,
// /home/nonroot owned by nonroot, /tmp (1777), /etc/nsswitch.conf and the CA bundle
// (golang.org/x/crypto/x509roots/fallback, Mozilla's roots without extra constraints).
func Static() ([]byte, error) {
	l := layer{}
	l.dir("etc", 0o755, 0)
	l.file("etc/passwd", 0o644, []byte(passwd))
	l.file("etc/group", 0o644, []byte(group))
	l.file("etc/nsswitch.conf", 0o644, []byte(nsswitch))
	l.dir("etc/ssl", 0o755, 0)
	l.dir("etc/ssl/certs", 0o755, 0)
	l.file(CACertificates, 0o644, caBundle())
	l.dir("home", 0o755, 0)
	l.dir("home/nonroot", 0o700, Nonroot)
	l.dir("root", 0o700, 0)
	l.dir("tmp", 0o1777, 0)
	return l.tar()
}

func caBundle() []byte {
	var b bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			// A PEM file cannot carry a distrust-after date: leave such roots out.
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return b.Bytes()
}

// Glibc returns the layer of Debian shared libraries added on top of [Static] for cgo services:
// from each .deb, the shared objects directly under lib/<triplet>/ and usr/lib/<triplet>/, the
// dynamic loader link in lib64/, and the package's copyright file. pkgs and debs correspond.
func Glibc(pkgs []debian.Package, debs []string) ([]byte, error) {
	if len(pkgs) != len(debs) {
		return nil, fmt.Errorf("%d packages but %d .deb files", len(pkgs), len(debs))
	}
	l := layer{}
	for i, deb := range debs {
		pkg := pkgs[i]
		n := 0
		err := debian.Walk(deb, func(h *tar.Header, r io.Reader) error {
			if !wanted(pkg.Name, h) {
				return nil
			}
			n++
			l.parents(h.Name)
			switch h.Typeflag {
			case tar.TypeSymlink:
				l.symlink(h.Name, h.Linkname)
			case tar.TypeReg:
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				l.file(h.Name, int64(h.FileInfo().Mode().Perm()), b)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%s (%s): no shared libraries found", deb, pkg.Name)
		}
	}
	return l.tar()
}

func wanted(pkg string, h *tar.Header) bool {
	if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeSymlink {
		return false
	}
	if h.Name == "usr/share/doc/"+pkg+"/copyright" {
		return true
	}
	dir, base := path.Split(h.Name)
	switch {
	case dir == "lib64/":
		return strings.HasPrefix(base, "ld-linux")
	case strings.Count(dir, "/") == 2 && strings.HasPrefix(dir, "lib/") && strings.HasSuffix(dir, "-linux-gnu/"),
		strings.Count(dir, "/") == 3 && strings.HasPrefix(dir, "usr/lib/") && strings.HasSuffix(dir, "-linux-gnu/"):
		return strings.Contains(base, ".so")
	}
	return false
}

// layer collects entries by name; later entries with the same name replace earlier ones.
type layer map[string]*entry

type entry struct {
	hdr  tar.Header
	body []byte
}

func (l layer) add(h tar.Header, body []byte) {
	h.ModTime = ModTime
	l[h.Name] = &entry{hdr: h, body: body}
}

func (l layer) dir(name string, mode int64, owner int) {
	l.add(tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: owner, Gid: owner}, nil)
}

func (l layer) file(name string, mode int64, body []byte) {
	l.add(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body)
}

func (l layer) symlink(name, target string) {
	l.add(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

// parents adds the directories above name (0755, root) unless present.
func (l layer) parents(name string) {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := l[dir+"/"]; !ok {
			l.dir(dir, 0o755, 0)
		}
	}
}

func (l layer) tar() ([]byte, error) {
	names := slices.Sorted(maps.Keys(l))
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		e := l[n]
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
