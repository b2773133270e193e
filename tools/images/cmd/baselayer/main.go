// Command baselayer writes a base layer of the connector images as a tar file. Bazel runs it
// (//tools/images:base_static, //tools/images:base_glibc_<arch>) so that Bazel's images start from
// the very bytes `go run ./tools/images` uses.
//
//	baselayer -out static.tar
//	baselayer -out glibc.tar -glibc amd64 libc6.deb libgcc-s1.deb
//
// With -glibc, the .deb files are the GLIBC_PACKAGES of that architecture in declaration order;
// their sha256 is checked against tools/images/images.bzl.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/danube-messaging/danube-connect-go/tools/images/internal/baselayer"
	"github.com/danube-messaging/danube-connect-go/tools/images/internal/debian"
)

func main() {
	out := flag.String("out", "", "the tar file to write")
	glibc := flag.String("glibc", "", "write the Debian libraries layer for this Debian architecture instead of the static layer")
	decl := flag.String("repo-root", ".", "repository root holding tools/images/images.bzl")
	flag.Parse()
	if err := run(*out, *glibc, *decl, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "baselayer:", err)
		os.Exit(1)
	}
}

func run(out, arch, root string, debs []string) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	var b []byte
	var err error
	if arch == "" {
		b, err = baselayer.Static()
	} else {
		var all []debian.Package
		if all, err = debian.Load(root); err != nil {
			return err
		}
		pkgs := debian.ForArch(all, arch)
		if len(pkgs) != len(debs) {
			return fmt.Errorf("%d .deb files given, GLIBC_PACKAGES pins %d for %s", len(debs), len(pkgs), arch)
		}
		for i, p := range pkgs {
			if err := debian.Verify(debs[i], p.SHA256); err != nil {
				return fmt.Errorf("%s (%s): %w", debs[i], p.Name, err)
			}
		}
		b, err = baselayer.Glibc(pkgs, debs)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
