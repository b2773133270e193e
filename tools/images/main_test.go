package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"go.starlark.net/syntax"
	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/tools/images/imagespec"
	"github.com/danube-messaging/danube-connect-go/tools/images/internal/builder"
	"github.com/danube-messaging/danube-connect-go/tools/images/internal/debian"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
		os.Exit(code)
	}))
}

const (
	testVersion  = "v0.0.0-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	maxPureGo    = 40_000_000 // bytes, compressed and uncompressed: 25 MB before CEL, Avro and JSON Schema came in
)

var built struct {
	once sync.Once
	dir  string
	log  string
	err  error
}

// buildAll runs `go run ./tools/images -platform linux/amd64` once (compiled without -race: the
// layers' compression is the slow part) for all the tests that inspect its tarballs, and returns
// the output directory and the command's output.
func buildAll(t *testing.T) (string, string) {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "images-test-"); built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "images")
		steps := [][]string{
			{"go", "build", "-o", bin, "./tools/images"},
			{bin, "-out", filepath.Join(built.dir, "out"), "-platform", "linux/amd64",
				"-version", testVersion, "-revision", testRevision},
		}
		for _, argv := range steps {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Dir = repoRootT()
			out, err := cmd.CombinedOutput()
			built.log += string(out)
			if err != nil {
				built.err = fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatalf("build the images: %v\n%s", built.err, built.log)
	}
	return filepath.Join(built.dir, "out"), built.log
}

// inGoTree skips tests that read the repository and run the go command when Bazel runs them
// (Bazel builds the images with its own rules; these tests are for `go test`).
func inGoTree(t *testing.T) {
	t.Helper()
	if os.Getenv("TEST_SRCDIR") != "" {
		t.Skip("reads the source tree and runs the go command: run with go test")
	}
}

func repoRootT() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}

func TestImages(t *testing.T) {
	inGoTree(t)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("runs the linux/amd64 binaries it builds")
	}
	specs, err := imagespec.Load(repoRootT())
	if err != nil {
		t.Fatal(err)
	}
	dir, log := buildAll(t)
	t.Logf("go run ./tools/images -platform linux/amd64:\n%s", log)
	sizes := make([]string, len(specs))
	for i, s := range specs {
		t.Run(s.Service, func(t *testing.T) { sizes[i] = checkImage(t, s, dir, log) })
	}
	t.Logf("| service | base | platform | compressed | uncompressed | manifest digest |")
	for _, row := range sizes {
		t.Log(row)
	}
}

// checkImage inspects DIR/<service>.tar as docker load would see it, unpacks it and runs the
// binary from it. It returns the service's row of the size table.
func checkImage(t *testing.T, s imagespec.Image, dir, log string) string {
	tarPath := filepath.Join(dir, s.Service+".tar")
	var summary string
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, s.Service+" ") && strings.Contains(line, " linux/amd64 ") {
			summary = line
		}
	}
	if !strings.Contains(summary, "base "+s.Base) || !strings.HasSuffix(summary, tarPath) {
		t.Errorf("no summary line for %s naming base %s and %s in:\n%s", s.Service, s.Base, tarPath, log)
	}

	// The tarball docker load reads holds the image under danube-connect/<service>:dev.
	tag, err := name.NewTag(builder.LocalTag(s.Service))
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatalf("load %s: %v", tarPath, err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"danube-connect/" + s.Service + ":dev"}) {
		t.Errorf("manifest.json: %+v, want one image tagged danube-connect/%s:dev", m, s.Service)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("config user = %q, want 65532:65532", c.User)
	}
	if want := []string{"/" + s.Service}; !slices.Equal(c.Entrypoint, want) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want entrypoint %q and no cmd", c.Entrypoint, c.Cmd, want)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if c.WorkingDir != "/" {
		t.Errorf("working dir %q, want /", c.WorkingDir)
	}
	for _, p := range s.Ports {
		if _, ok := c.ExposedPorts[fmt.Sprintf("%d/tcp", p)]; !ok {
			t.Errorf("port %d/tcp not exposed: %v", p, c.ExposedPorts)
		}
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":      builder.Source,
		"org.opencontainers.image.revision":    testRevision,
		"org.opencontainers.image.version":     testVersion,
		"org.opencontainers.image.title":       s.Title,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.base.name":   "scratch",
	}
	for k, v := range wantLabels {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}

	root := t.TempDir()
	entries, uncompressed := unpack(t, img, root)
	compressed := compressedSize(t, img)
	if s.Base == "static" && (compressed >= maxPureGo || uncompressed >= maxPureGo) {
		t.Errorf("pure-Go image is %d bytes compressed, %d uncompressed; the limit is %d", compressed, uncompressed, maxPureGo)
	}
	digest := "?"
	if f := strings.Fields(summary); len(f) > 2 {
		digest = f[2] // the OCI manifest digest the command printed
	}
	row := fmt.Sprintf("| %s | %s | linux/amd64 | %.1f MB | %.1f MB | %s |", s.Service, s.Base,
		float64(compressed)/1e6, float64(uncompressed)/1e6, digest)
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh", "usr/bin/env"} {
		if _, ok := entries[shell]; ok {
			t.Errorf("image contains %s: it must need and have no shell", shell)
		}
	}
	for n := range entries {
		if strings.HasPrefix(n, "bin/") || strings.HasPrefix(n, "sbin/") || strings.HasPrefix(n, "usr/bin/") || strings.HasPrefix(n, "usr/sbin/") {
			t.Errorf("image contains the program %s; the only program must be /%s", n, s.Service)
		}
	}
	if h := entries["home/nonroot/"]; h == nil || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/home/nonroot: %+v, want owned by 65532:65532", h)
	}
	if h := entries["tmp/"]; h == nil || h.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777", h)
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ssl/certs/ca-certificates.crt"} {
		if entries[f] == nil {
			t.Errorf("image lacks /%s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !bytes.Contains(b, []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", b)
	}

	// Run the binary from the unpacked image. A glibc image runs through its own dynamic loader
	// and libraries, which proves its Debian layer is enough.
	bin := filepath.Join(root, s.Service)
	var cmd *exec.Cmd
	switch s.Base {
	case "glibc":
		for _, lib := range []string{"lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libm.so.6"} {
			if entries[lib] == nil {
				t.Errorf("glibc image lacks /%s", lib)
			}
		}
		cmd = exec.Command(filepath.Join(root, "lib64/ld-linux-x86-64.so.2"), "--inhibit-cache",
			"--library-path", filepath.Join(root, "lib/x86_64-linux-gnu")+":"+filepath.Join(root, "usr/lib/x86_64-linux-gnu"),
			bin, "--help")
	default:
		cmd = exec.Command(bin, "--help")
	}
	cmd.Dir = root
	cmd.Env = []string{"HOME=/home/nonroot"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", s.Service, err, out)
	}
	if !bytes.Contains(out, []byte("METRICS_ADDR")) {
		t.Errorf("%s --help does not mention METRICS_ADDR:\n%s", s.Service, out)
	}
	return row
}

// unpack extracts every layer of img into root in order (later layers win), as a container
// runtime would, and returns the final headers by name (directories end in "/") and the layers'
// uncompressed size. Every layer must first pass [checkLayerTar]. Absolute symlinks are made to
// point inside root, as they would inside the container.
func unpack(t *testing.T, img v1.Image, root string) (map[string]*tar.Header, int64) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	var size int64
	for i, l := range layers {
		raw := uncompressed(t, l)
		size += int64(len(raw))
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		checkLayerTar(t, fmt.Sprintf("layer %d of %d", i+1, len(layers)), raw, diffID)
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n := path.Clean(strings.TrimPrefix(h.Name, "/"))
			if strings.HasPrefix(n, "..") || strings.HasPrefix(path.Base(n), ".wh.") {
				t.Fatalf("layer entry %q escapes the root or is a whiteout", h.Name)
			}
			dst := filepath.Join(root, n)
			switch h.Typeflag {
			case tar.TypeDir:
				entries[n+"/"] = h
				if err := os.MkdirAll(dst, 0o755); err != nil {
					t.Fatal(err)
				}
				continue
			case tar.TypeSymlink:
				target := h.Linkname
				if path.IsAbs(target) {
					target = filepath.Join(root, target)
				}
				os.Remove(dst)
				if err := os.Symlink(target, dst); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode)&0o755|0o600)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(f, tr); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("unexpected layer entry %q of type %c", h.Name, h.Typeflag)
			}
			entries[n] = h
		}
	}
	return entries, size
}

func uncompressed(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// checkLayerTar holds a layer to what strict readers demand. Go's archive/tar reads a tar that
// stops right after an entry's data as a complete archive; GNU tar ("Unexpected EOF in archive"),
// Python's tarfile and some container runtimes do not. So: every entry's data is padded to a
// 512-byte block, the archive ends with two zero blocks, the diff ID is the sha256 of exactly
// these bytes, and GNU tar, when installed, lists the same entries without a word on stderr.
func checkLayerTar(t *testing.T, what string, raw []byte, diffID v1.Hash) {
	t.Helper()
	if sum := sha256.Sum256(raw); diffID.Algorithm != "sha256" || diffID.Hex != hex.EncodeToString(sum[:]) {
		t.Errorf("%s: diff ID %s, but the uncompressed layer's sha256 is %x", what, diffID, sum)
	}
	if len(raw)%blockSize != 0 {
		t.Errorf("%s: %d bytes, not a whole number of %d-byte blocks", what, len(raw), blockSize)
	}
	r := bytes.NewReader(raw)
	tr := tar.NewReader(r)
	var names []string
	end := 0 // where the last entry's padded data ends: the end-of-archive blocks start there
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Errorf("%s: entry %d: %v", what, len(names)+1, err)
			end = -1
			break
		}
		names = append(names, h.Name)
		data := len(raw) - r.Len() // the reader has consumed exactly the header blocks
		padded := (data + int(h.Size) + blockSize - 1) / blockSize * blockSize
		if padded > len(raw) || !zero(raw[data+int(h.Size):padded]) {
			t.Errorf("%s: the data of %s (%d bytes at offset %d) is not padded with zeros to a %d-byte block",
				what, h.Name, h.Size, data, blockSize)
			end = -1
			break
		}
		end = padded
	}
	if end >= 0 && (len(raw)-end < 2*blockSize || !zero(raw[end:])) {
		t.Errorf("%s: does not end with two zero blocks after its last entry (%d bytes follow it)", what, len(raw)-end)
	}

	gnuTar, err := exec.LookPath("tar")
	if err != nil {
		return
	}
	cmd := exec.Command(gnuTar, "-tf", "-")
	cmd.Stdin = bytes.NewReader(raw)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("%s: %s -t: %v\n%s", what, gnuTar, err, stderr.Bytes())
	} else if listed := strings.Fields(stdout.String()); !slices.Equal(listed, names) {
		t.Errorf("%s: tar -t lists %q, archive/tar reads %q", what, listed, names)
	}
}

const blockSize = 512

func zero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// compressedSize is what a pull transfers: manifest, config and compressed layers.
func compressedSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// TestEveryServiceHasAnImage keeps adding a service a one-entry-plus-one-line change: every
// services/<svc> with a main.go has an IMAGES entry and calls connector_image() in its BUILD.bazel,
// and every IMAGES entry is such a service.
func TestEveryServiceHasAnImage(t *testing.T) {
	inGoTree(t)
	root := repoRootT()
	mains, err := filepath.Glob(filepath.Join(root, "services", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no services/*/main.go (%v)", err)
	}
	specs, err := imagespec.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, s := range specs {
		declared[s.Service] = true
	}
	for _, m := range mains {
		dir := filepath.Dir(m)
		svc := filepath.Base(dir)
		if !declared[svc] {
			t.Errorf("services/%s has no image: add IMAGES[%q] to tools/images/images.bzl", svc, svc)
		}
		delete(declared, svc)
		b, err := os.ReadFile(filepath.Join(dir, "BUILD.bazel"))
		if err != nil {
			t.Error(err)
			continue
		}
		if !hasCall(t, b, "connector_image") {
			t.Errorf("services/%s/BUILD.bazel does not call connector_image() (load it from //tools/images:defs.bzl)", svc)
		}
	}
	for svc := range declared {
		t.Errorf("tools/images/images.bzl declares %q, but services/%s/main.go does not exist", svc, svc)
	}
}

func hasCall(t *testing.T, build []byte, fn string) bool {
	f, err := (&syntax.FileOptions{}).Parse("BUILD.bazel", build, 0)
	if err != nil {
		t.Errorf("parse BUILD.bazel: %v", err)
		return false
	}
	for _, st := range f.Stmts {
		if e, ok := st.(*syntax.ExprStmt); ok {
			if c, ok := e.X.(*syntax.CallExpr); ok {
				if id, ok := c.Fn.(*syntax.Ident); ok && id.Name == fn {
					return true
				}
			}
		}
	}
	return false
}

// TestModuleDebianPinsMatchDeclaration: MODULE.bazel cannot load images.bzl, so it repeats the
// glibc base's Debian packages as http_file repositories; they must pin the same files.
func TestModuleDebianPinsMatchDeclaration(t *testing.T) {
	inGoTree(t)
	root := repoRootT()
	pkgs, err := debian.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "MODULE.bazel"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := (&syntax.FileOptions{}).Parse("MODULE.bazel", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	type httpFile struct {
		sha256 string
		urls   []string
	}
	files := map[string]httpFile{}
	for _, st := range f.Stmts {
		e, ok := st.(*syntax.ExprStmt)
		if !ok {
			continue
		}
		c, ok := e.X.(*syntax.CallExpr)
		if !ok {
			continue
		}
		if id, ok := c.Fn.(*syntax.Ident); !ok || id.Name != "http_file" {
			continue
		}
		var name string
		var hf httpFile
		for _, a := range c.Args {
			b, ok := a.(*syntax.BinaryExpr)
			if !ok || b.Op != syntax.EQ {
				continue
			}
			switch b.X.(*syntax.Ident).Name {
			case "name":
				name = literal(b.Y)
			case "sha256":
				hf.sha256 = literal(b.Y)
			case "urls":
				if l, ok := b.Y.(*syntax.ListExpr); ok {
					for _, u := range l.List {
						hf.urls = append(hf.urls, literal(u))
					}
				}
			}
		}
		if strings.HasPrefix(name, "debian_") {
			files[name] = hf
		}
	}
	for _, p := range pkgs {
		hf, ok := files[p.RepoName()]
		if !ok {
			t.Errorf("MODULE.bazel has no http_file(name = %q) for %s %s", p.RepoName(), p.Name, p.Version)
			continue
		}
		delete(files, p.RepoName())
		if hf.sha256 != p.SHA256 {
			t.Errorf("MODULE.bazel %s sha256 %q, images.bzl pins %q", p.RepoName(), hf.sha256, p.SHA256)
		}
		if want := []string{p.URL(), p.SnapshotURL()}; !slices.Equal(hf.urls, want) {
			t.Errorf("MODULE.bazel %s urls %q, want %q", p.RepoName(), hf.urls, want)
		}
	}
	for n := range files {
		t.Errorf("MODULE.bazel http_file %q is not in GLIBC_PACKAGES", n)
	}
}

func literal(e syntax.Expr) string {
	if l, ok := e.(*syntax.Literal); ok {
		if s, ok := l.Value.(string); ok {
			return s
		}
	}
	return ""
}
