package imagespec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoadTheDeclaration(t *testing.T) {
	if os.Getenv("TEST_SRCDIR") != "" {
		t.Skip("reads the source tree: run with go test")
	}
	images, err := Load(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, img := range images {
		services = append(services, img.Service)
		if img.User != "65532:65532" {
			t.Errorf("%s: user %q", img.Service, img.User)
		}
		if want := "ghcr.io/danube-messaging/danube-connect/" + img.Service; img.Repository != want {
			t.Errorf("%s: repository %q, want %q", img.Service, img.Repository, want)
		}
		if !slices.Contains(img.Ports, 9090) {
			t.Errorf("%s: ports %v lack METRICS_ADDR's 9090", img.Service, img.Ports)
		}
		wantPlatforms := []string{"linux/amd64", "linux/arm64"}
		if img.Base == "glibc" {
			wantPlatforms = []string{"linux/amd64"}
		}
		if !slices.Equal(img.Platforms, wantPlatforms) {
			t.Errorf("%s: platforms %v, want %v", img.Service, img.Platforms, wantPlatforms)
		}
	}
	if !slices.IsSorted(services) || len(services) < 5 {
		t.Errorf("services %v: want every service, sorted", services)
	}
	if got := images[0].Ref("v0.1.0"); got != "ghcr.io/danube-messaging/danube-connect/"+images[0].Service+":v0.1.0" {
		t.Errorf("Ref = %q", got)
	}
}

const pkgs = `
GLIBC_PACKAGES = [{"name": "libc6", "arch": "amd64"}]
`

func TestValidationNamesServiceFieldAndValue(t *testing.T) {
	src := pkgs + `
IMAGES = {
    "sink-x": {
        "repository": "ghcr.io/o/sink-y:latest",
        "base": "distroless",
        "user": "0:0",
        "entrypoint": ["/bin/sh"],
        "platforms": ["linux/amd64", "linux/s390x", "linux/amd64"],
        "ports": [9090, 70000, "x"],
        "title": "",
        "description": "d",
        "extra": 1,
    },
    "cgo-svc": {
        "repository": "ghcr.io/o/cgo-svc",
        "base": "glibc",
        "user": "65532",
        "entrypoint": ["/cgo-svc"],
        "platforms": ["linux/arm64"],
        "ports": [],
        "title": "t",
    },
    "Bad_Name": "not a dict",
}
`
	_, err := parse(src)
	if err == nil {
		t.Fatal("parse accepted an invalid declaration")
	}
	want := []string{
		`tools/images/images.bzl: IMAGES["Bad_Name"] = "Bad_Name": the key must be a service directory name (lower-case letters, digits, dashes)`,
		`tools/images/images.bzl: IMAGES["Bad_Name"] = "not a dict": must be a dict of the fields base, description, entrypoint, platforms, ports, repository, title, user`,
		`tools/images/images.bzl: IMAGES["cgo-svc"].user = "65532": must be numeric "uid:gid"`,
		`tools/images/images.bzl: IMAGES["cgo-svc"].description = (missing): must be a non-empty string`,
		`tools/images/images.bzl: IMAGES["cgo-svc"].platforms = "linux/arm64": the glibc base has Debian packages pinned (GLIBC_PACKAGES) only for linux/amd64`,
		`tools/images/images.bzl: IMAGES["cgo-svc"].ports = []: must be a non-empty list of integers`,
		`tools/images/images.bzl: IMAGES["sink-x"].extra = 1: unknown field (known: base, description, entrypoint, platforms, ports, repository, title, user)`,
		`tools/images/images.bzl: IMAGES["sink-x"].repository = "ghcr.io/o/sink-y:latest": must be a repository without tag or digest`,
		`tools/images/images.bzl: IMAGES["sink-x"].base = "distroless": must be "static" (pure Go) or "glibc" (cgo)`,
		`tools/images/images.bzl: IMAGES["sink-x"].user = "0:0": must not be root (use 65532:65532, the nonroot user of the base layer)`,
		`tools/images/images.bzl: IMAGES["sink-x"].title = "": must be a non-empty string`,
		`tools/images/images.bzl: IMAGES["sink-x"].entrypoint = [/bin/sh]: must start with "/sink-x", where the image puts the binary`,
		`tools/images/images.bzl: IMAGES["sink-x"].platforms = "linux/s390x": unsupported platform (supported: linux/amd64, linux/arm64)`,
		`tools/images/images.bzl: IMAGES["sink-x"].platforms = "linux/amd64": listed twice`,
		`tools/images/images.bzl: IMAGES["sink-x"].ports = 70000: must be a TCP port (1-65535)`,
		`tools/images/images.bzl: IMAGES["sink-x"].ports = "x": every element must be an integer`,
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing error:\n  %s", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), err)
	}
}

func TestStarlarkErrorsAreReported(t *testing.T) {
	for src, want := range map[string]string{
		pkgs + `IMAGES = {"a": }`:    "evaluate tools/images/images.bzl",
		pkgs:                         "tools/images/images.bzl: no global IMAGES",
		pkgs + `IMAGES = ["sink-x"]`: "IMAGES must be a dict keyed by service",
	} {
		_, err := parse(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse(%q) = %v, want an error containing %q", src, err, want)
		}
	}
}
