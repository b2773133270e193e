// Command images builds the connector container images without Docker or Bazel.
//
//	go run ./tools/images [-out DIR] [-version V] [-platform linux/amd64,...] [service...]
//
// For each service (default: every one declared in tools/images/images.bzl) and each of its
// declared platforms (optionally narrowed by -platform), it builds the binary with `go build`,
// generates the base layer(s) and writes DIR/<service>.tar, a tarball `docker load` accepts,
// tagged danube-connect/<service>:dev; a service built for several platforms also gets
// DIR/<service>.oci/, an OCI layout holding the multi-platform index (push it with
// `skopeo copy --all oci:DIR/<service>.oci docker://<repository>:<tag>` or crane). Bazel builds the
// same images from the same declaration (//services/<service>:image).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/danube-messaging/danube-connect-go/tools/images/internal/builder"
)

func main() {
	out := flag.String("out", "dist/images", "directory for <service>.tar and <service>.oci/")
	version := flag.String("version", "dev", "org.opencontainers.image.version label")
	revision := flag.String("revision", "", "org.opencontainers.image.revision label (default: git HEAD)")
	platforms := flag.String("platform", "", "comma-separated platforms to build, e.g. linux/amd64 (default: each image's declared platforms)")
	cache := flag.String("cache", defaultCache(), "directory caching the downloaded Debian packages of the glibc base")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./tools/images [flags] [service...]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *out, *version, *revision, *platforms, *cache, flag.Args())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, version, revision, platforms, cache string, services []string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if revision == "" {
		revision = gitHead(root)
	}
	var plats []string
	if platforms != "" {
		plats = strings.Split(platforms, ",")
	}
	results, err := builder.Build(ctx, builder.Options{
		RepoRoot: root, OutDir: out, Version: version, Revision: revision,
		Platforms: plats, Services: services, CacheDir: cache, Log: os.Stdout,
	})
	if err == nil && len(results) == 0 {
		err = errors.New("no image matched the services and platforms asked for")
	}
	return err
}

// repoRoot is the nearest directory above the working directory holding MODULE.bazel and go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if isFile(filepath.Join(d, "MODULE.bazel")) && isFile(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no repository root (MODULE.bazel and go.mod) above %s", dir)
		}
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// gitHead is the commit checked out in root, or "unknown" outside a git checkout.
func gitHead(root string) string {
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func defaultCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "danube-images")
	}
	return filepath.Join(os.TempDir(), "danube-images")
}
