package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/tools/images/internal/baselayer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bazel's base layer is byte-for-byte the one `go run ./tools/images` uses.
func TestStaticLayerEqualsTheToolsPath(t *testing.T) {
	out := filepath.Join(t.TempDir(), "static.tar")
	if err := run(out, "", ".", nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := baselayer.Static()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("baselayer -out differs from baselayer.Static()")
	}
}

func TestGlibcChecksItsInputs(t *testing.T) {
	if os.Getenv("TEST_SRCDIR") != "" {
		t.Skip("reads the source tree: run with go test")
	}
	root := filepath.Join("..", "..", "..", "..")
	out := filepath.Join(t.TempDir(), "glibc.tar")
	err := run(out, "amd64", root, []string{"only-one.deb"})
	if err == nil || !strings.Contains(err.Error(), "1 .deb files given, GLIBC_PACKAGES pins 2 for amd64") {
		t.Errorf("run = %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.deb")
	if err := os.WriteFile(bad, []byte("not it"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(out, "amd64", root, []string{bad, bad})
	if err == nil || !strings.Contains(err.Error(), "(libc6): "+bad+": sha256") {
		t.Errorf("run = %v", err)
	}
	if err := run("", "", ".", nil); err == nil {
		t.Error("run without -out succeeded")
	}
}
