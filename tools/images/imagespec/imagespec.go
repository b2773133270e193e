// Package imagespec reads the one declaration of every connector image, tools/images/images.bzl,
// so that the Go tools (the image builder, the deployment drift tests) and Bazel (which loads the
// same file) cannot disagree about an image's repository, base, user, entrypoint, platforms or
// ports.
package imagespec

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/danube-messaging/danube-connect-go/tools/images/internal/starfile"
)

// Image is one service's image settings, validated.
type Image struct {
	Service     string
	Repository  string   // e.g. ghcr.io/danube-messaging/danube-connect/sink-http
	Base        string   // "static" or "glibc"
	User        string   // "uid:gid", never root
	Title       string   // org.opencontainers.image.title
	Description string   // org.opencontainers.image.description
	Entrypoint  []string // argv; Entrypoint[0] is "/<service>"
	Platforms   []string // "linux/amd64", "linux/arm64"
	Ports       []int    // TCP ports the service listens on
}

// Ref returns the image reference repository:tag.
func (i Image) Ref(tag string) string { return i.Repository + ":" + tag }

// Load reads and validates the declaration under repoRoot and returns every image sorted by
// service. Every problem is reported at once, each naming the service, the field and the value.
func Load(repoRoot string) ([]Image, error) {
	images, err := starfile.Load(repoRoot, "IMAGES")
	if err != nil {
		return nil, err
	}
	pkgs, err := starfile.Load(repoRoot, "GLIBC_PACKAGES")
	if err != nil {
		return nil, err
	}
	return decode(images, glibcArches(pkgs))
}

// parse is Load on a declaration's source, for tests.
func parse(src string) ([]Image, error) {
	images, err := starfile.Eval(starfile.Path, []byte(src), "IMAGES")
	if err != nil {
		return nil, err
	}
	pkgs, err := starfile.Eval(starfile.Path, []byte(src), "GLIBC_PACKAGES")
	if err != nil {
		return nil, err
	}
	return decode(images, glibcArches(pkgs))
}

// glibcArches lists the architectures GLIBC_PACKAGES pins packages for (linux/<arch>).
func glibcArches(pkgs any) []string {
	var out []string
	list, _ := pkgs.([]any)
	for _, p := range list {
		m, _ := p.(map[string]any)
		if a, ok := m["arch"].(string); ok {
			// Debian calls arm64 and amd64 what Go and OCI call them.
			if !slices.Contains(out, "linux/"+a) {
				out = append(out, "linux/"+a)
			}
		}
	}
	return out
}

var (
	serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
	userSpec    = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)
	knownFields = []string{"base", "description", "entrypoint", "platforms", "ports", "repository", "title", "user"}
	platforms   = []string{"linux/amd64", "linux/arm64"}
)

func decode(v any, glibcPlatforms []string) ([]Image, error) {
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: IMAGES must be a dict keyed by service, got %T", starfile.Path, v)
	}
	var errs []error
	var out []Image
	for _, svc := range slices.Sorted(maps.Keys(top)) {
		d := decoder{service: svc}
		img := d.image(top[svc], glibcPlatforms)
		errs = append(errs, d.errs...)
		out = append(out, img)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// decoder collects the problems of one IMAGES entry.
type decoder struct {
	service string
	errs    []error
}

func (d *decoder) fail(field string, value any, format string, args ...any) {
	where := fmt.Sprintf("%s: IMAGES[%q]", starfile.Path, d.service)
	if field != "" {
		where += "." + field
	}
	d.errs = append(d.errs, fmt.Errorf("%s = %s: %s", where, show(value), fmt.Sprintf(format, args...)))
}

func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "(missing)"
	case string:
		return strconv.Quote(v)
	default:
		return fmt.Sprintf("%v", v)
	}
}

func (d *decoder) image(v any, glibcPlatforms []string) Image {
	img := Image{Service: d.service}
	if !serviceName.MatchString(d.service) {
		d.fail("", d.service, "the key must be a service directory name (lower-case letters, digits, dashes)")
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail("", v, "must be a dict of the fields %s", strings.Join(knownFields, ", "))
		return img
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(knownFields, k) {
			d.fail(k, m[k], "unknown field (known: %s)", strings.Join(knownFields, ", "))
		}
	}

	img.Repository = d.str(m, "repository")
	if r := img.Repository; r != "" {
		switch {
		case strings.ContainsAny(r, "@ ") || strings.Contains(r[strings.LastIndex(r, "/")+1:], ":"):
			d.fail("repository", r, "must be a repository without tag or digest")
		case !strings.HasSuffix(r, "/"+d.service) || strings.Count(r, "/") < 2:
			d.fail("repository", r, "must be <registry>/<path>/%s", d.service)
		case r != strings.ToLower(r):
			d.fail("repository", r, "must be lower case")
		}
	}

	img.Base = d.str(m, "base")
	if img.Base != "" && img.Base != "static" && img.Base != "glibc" {
		d.fail("base", img.Base, `must be "static" (pure Go) or "glibc" (cgo)`)
	}

	img.User = d.str(m, "user")
	if u := img.User; u != "" {
		if g := userSpec.FindStringSubmatch(u); g == nil {
			d.fail("user", u, `must be numeric "uid:gid"`)
		} else if g[1] == "0" || g[2] == "0" {
			d.fail("user", u, "must not be root (use 65532:65532, the nonroot user of the base layer)")
		}
	}

	img.Title = d.str(m, "title")
	img.Description = d.str(m, "description")

	img.Entrypoint = d.strs(m, "entrypoint")
	if len(img.Entrypoint) > 0 && img.Entrypoint[0] != "/"+d.service {
		d.fail("entrypoint", m["entrypoint"], "must start with %q, where the image puts the binary", "/"+d.service)
	}

	img.Platforms = d.strs(m, "platforms")
	for i, p := range img.Platforms {
		switch {
		case !slices.Contains(platforms, p):
			d.fail("platforms", p, "unsupported platform (supported: %s)", strings.Join(platforms, ", "))
		case slices.Contains(img.Platforms[:i], p):
			d.fail("platforms", p, "listed twice")
		case img.Base == "glibc" && !slices.Contains(glibcPlatforms, p):
			d.fail("platforms", p, "the glibc base has Debian packages pinned (GLIBC_PACKAGES) only for %s", strings.Join(glibcPlatforms, ", "))
		}
	}

	img.Ports = d.ints(m, "ports")
	for i, p := range img.Ports {
		switch {
		case p < 1 || p > 65535:
			d.fail("ports", p, "must be a TCP port (1-65535)")
		case slices.Contains(img.Ports[:i], p):
			d.fail("ports", p, "listed twice")
		}
	}
	return img
}

func (d *decoder) str(m map[string]any, field string) string {
	v := m[field]
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" {
		d.fail(field, v, "must be a non-empty string")
		return ""
	}
	return s
}

func (d *decoder) list(m map[string]any, field, what string) []any {
	v := m[field]
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		d.fail(field, v, "must be a non-empty list of %s", what)
		return nil
	}
	return l
}

func (d *decoder) strs(m map[string]any, field string) []string {
	var out []string
	for _, x := range d.list(m, field, "strings") {
		s, ok := x.(string)
		if !ok || s == "" {
			d.fail(field, x, "every element must be a non-empty string")
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *decoder) ints(m map[string]any, field string) []int {
	var out []int
	for _, x := range d.list(m, field, "integers") {
		i, ok := x.(int64)
		if !ok {
			d.fail(field, x, "every element must be an integer")
			continue
		}
		out = append(out, int(i))
	}
	return out
}
