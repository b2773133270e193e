// Package builder assembles the connector images without Docker or Bazel: a static `go build`
// of each service, the generated base layer(s) (package baselayer) and the binary as a layer,
// put together with github.com/google/go-containerregistry using the settings declared in
// tools/images/images.bzl.
package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/danube-messaging/danube-connect-go/tools/images/imagespec"
	"github.com/danube-messaging/danube-connect-go/tools/images/internal/baselayer"
	"github.com/danube-messaging/danube-connect-go/tools/images/internal/debian"
)

// Source is the org.opencontainers.image.source label of every image.
const Source = "https://github.com/danube-messaging/danube-connect-go"

// License is the org.opencontainers.image.licenses label (the repository's LICENSE).
const License = "Apache-2.0"

// LocalTag is the tag `docker load` gives the tarball's image: danube-connect/<service>:dev.
func LocalTag(service string) string { return "danube-connect/" + service + ":dev" }

// Options says what to build.
type Options struct {
	RepoRoot  string
	OutDir    string   // DIR/<service>.tar, and DIR/<service>.oci/ for several platforms
	Version   string   // org.opencontainers.image.version
	Revision  string   // org.opencontainers.image.revision
	Platforms []string // only these platforms (of each image's declared ones); empty: all declared
	Services  []string // only these services; empty: all declared
	CacheDir  string   // downloaded Debian packages
	Log       io.Writer
}

// Result is one built image for one platform.
type Result struct {
	Spec     imagespec.Image
	Platform string
	Image    v1.Image
	Digest   v1.Hash
	// Compressed is the sum of the compressed layers plus config and manifest: what a pull
	// transfers. Uncompressed is the sum of the layers' tar sizes: what the image takes unpacked.
	Compressed, Uncompressed int64
	Tarball                  string // DIR/<service>.tar when this image is in it
}

// Build builds every selected image for every selected platform, writes the tarballs (and OCI
// layouts) and returns the results, sorted by service then platform.
func Build(ctx context.Context, o Options) ([]Result, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	specs, err := imagespec.Load(o.RepoRoot)
	if err != nil {
		return nil, err
	}
	specs, err = selectServices(specs, o.Services)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	staticTar, err := baselayer.Static()
	if err != nil {
		return nil, err
	}
	static, err := NewLayer(staticTar)
	if err != nil {
		return nil, err
	}

	// One `go build` per (platform, cgo) group shares the compilation of common packages.
	type group struct {
		platform string
		cgo      bool
		specs    []imagespec.Image
	}
	var groups []*group
	find := func(p string, cgo bool) *group {
		for _, g := range groups {
			if g.platform == p && g.cgo == cgo {
				return g
			}
		}
		g := &group{platform: p, cgo: cgo}
		groups = append(groups, g)
		return g
	}
	for _, s := range specs {
		for _, p := range s.Platforms {
			if len(o.Platforms) > 0 && !slices.Contains(o.Platforms, p) {
				continue
			}
			cgo := s.Base == "glibc"
			if cgo && p != "linux/"+runtime.GOARCH && os.Getenv("CC") == "" {
				fmt.Fprintf(o.Log, "%s %s: skipped: cgo cross-compilation from %s/%s needs a C cross compiler (set CC)\n",
					s.Service, p, runtime.GOOS, runtime.GOARCH)
				continue
			}
			g := find(p, cgo)
			g.specs = append(g.specs, s)
		}
	}

	binDir, err := os.MkdirTemp("", "danube-images-bin-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(binDir) }()

	glibc := map[string]v1.Layer{} // by platform
	var results []Result
	for _, g := range groups {
		dir := filepath.Join(binDir, strings.ReplaceAll(g.platform, "/", "_")+map[bool]string{true: "_cgo"}[g.cgo])
		if err := goBuild(ctx, o, dir, g.platform, g.cgo, g.specs); err != nil {
			return nil, err
		}
		for _, s := range g.specs {
			layers := []v1.Layer{static}
			if s.Base == "glibc" {
				if glibc[g.platform] == nil {
					if glibc[g.platform], err = glibcLayer(ctx, o, g.platform); err != nil {
						return nil, err
					}
				}
				layers = append(layers, glibc[g.platform])
			}
			bin, err := os.ReadFile(filepath.Join(dir, s.Service))
			if err != nil {
				return nil, err
			}
			binTar, err := binaryLayer(s.Service, bin)
			if err != nil {
				return nil, err
			}
			binLayer, err := NewLayer(binTar)
			if err != nil {
				return nil, err
			}
			layers = append(layers, binLayer)
			img, err := Assemble(s, g.platform, o.Version, o.Revision, layers)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", s.Service, g.platform, err)
			}
			r, err := measure(s, g.platform, img)
			if err != nil {
				return nil, err
			}
			results = append(results, r)
		}
	}
	slices.SortFunc(results, func(a, b Result) int {
		return strings.Compare(a.Spec.Service+" "+a.Platform, b.Spec.Service+" "+b.Platform)
	})
	return results, write(o, results)
}

func selectServices(specs []imagespec.Image, want []string) ([]imagespec.Image, error) {
	if len(want) == 0 {
		return specs, nil
	}
	var out []imagespec.Image
	var known []string
	for _, s := range specs {
		known = append(known, s.Service)
	}
	for _, w := range want {
		i := slices.IndexFunc(specs, func(s imagespec.Image) bool { return s.Service == w })
		if i < 0 {
			return nil, fmt.Errorf("unknown service %q (declared in tools/images/images.bzl: %s)", w, strings.Join(known, ", "))
		}
		if !slices.ContainsFunc(out, func(s imagespec.Image) bool { return s.Service == w }) {
			out = append(out, specs[i])
		}
	}
	return out, nil
}

// goBuild builds the services' binaries for one platform into dir/<service>: -trimpath, zone
// data inside the binary (timetzdata), no symbol tables, no build id; static unless cgo.
func goBuild(ctx context.Context, o Options, dir, platform string, cgo bool, specs []imagespec.Image) error {
	goos, goarch, _ := strings.Cut(platform, "/")
	args := []string{"build", "-trimpath", "-tags", "timetzdata", "-ldflags", "-s -w -buildid=", "-o", dir + string(filepath.Separator)}
	var names []string
	for _, s := range specs {
		args = append(args, "./services/"+s.Service)
		names = append(names, s.Service)
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = o.RepoRoot
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED="+map[bool]string{false: "0", true: "1"}[cgo])
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		err := cmd.Run()
		if err == nil {
			break
		}
		// A build cache shared with concurrent builds can briefly miss an export file
		// ("could not import os (open : no such file or directory)"): retry that once.
		if attempt == 1 && bytes.Contains(stderr.Bytes(), []byte("(open : no such file or directory)")) {
			fmt.Fprintf(o.Log, "go build for %s: retrying after a build cache miss\n", platform)
			continue
		}
		return fmt.Errorf("go build %s for %s (CGO_ENABLED=%t): %w\n%s", strings.Join(names, " "), platform, cgo, err, stderr.Bytes())
	}
	fmt.Fprintf(o.Log, "built %s for %s (cgo %t) in %s\n", strings.Join(names, " "), platform, cgo, time.Since(start).Round(time.Second))
	return nil
}

func glibcLayer(ctx context.Context, o Options, platform string) (v1.Layer, error) {
	all, err := debian.Load(o.RepoRoot)
	if err != nil {
		return nil, err
	}
	_, arch, _ := strings.Cut(platform, "/")
	pkgs := debian.ForArch(all, arch)
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("no Debian packages pinned for %s in tools/images/images.bzl GLIBC_PACKAGES", arch)
	}
	debs := make([]string, len(pkgs))
	for i, p := range pkgs {
		if debs[i], err = debian.Fetch(ctx, p, o.CacheDir); err != nil {
			return nil, err
		}
	}
	tar, err := baselayer.Glibc(pkgs, debs)
	if err != nil {
		return nil, err
	}
	return NewLayer(tar)
}

// binaryLayer is the service binary at /<service>, mode 0755, owned by root.
func binaryLayer(service string, bin []byte) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	h := &tar.Header{Typeflag: tar.TypeReg, Name: service, Mode: 0o755, Size: int64(len(bin)), ModTime: baselayer.ModTime}
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	// Close writes the data's padding and the two end-of-archive blocks: only then is the tar whole.
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Labels returns the OCI labels of an image.
func Labels(s imagespec.Image, version, revision string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.title":       s.Title,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.licenses":    License,
		"org.opencontainers.image.base.name":   "scratch",
	}
}

// Assemble puts the layers (bottom first, see [NewLayer]) and the declared settings together
// into an OCI image for platform.
func Assemble(s imagespec.Image, platform, version, revision string, layers []v1.Layer) (v1.Image, error) {
	created := v1.Time{Time: time.Unix(0, 0).UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i, l := range layers {
		var err error
		what := "base layer: users, /tmp, CA certificates"
		switch {
		case i == len(layers)-1:
			what = "binary /" + s.Service
		case i > 0:
			what = "Debian bookworm shared libraries (glibc base)"
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{Created: created, CreatedBy: "danube-connect tools/images: " + what}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, _ = strings.Cut(platform, "/")
	if cf.Architecture == "arm64" {
		cf.Variant = "v8"
	}
	cf.Created = created
	cf.Config.User = s.User
	cf.Config.Entrypoint = slices.Clone(s.Entrypoint)
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"SSL_CERT_FILE=/" + baselayer.CACertificates}
	cf.Config.Labels = Labels(s, version, revision)
	cf.Config.ExposedPorts = map[string]struct{}{}
	for _, p := range s.Ports {
		cf.Config.ExposedPorts[strconv.Itoa(p)+"/tcp"] = struct{}{}
	}
	return mutate.ConfigFile(img, cf)
}

func measure(s imagespec.Image, platform string, img v1.Image) (Result, error) {
	r := Result{Spec: s, Platform: platform, Image: img}
	var err error
	if r.Digest, err = img.Digest(); err != nil {
		return r, err
	}
	m, err := img.Manifest()
	if err != nil {
		return r, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return r, err
	}
	r.Compressed = m.Config.Size + int64(len(raw))
	layers, err := img.Layers()
	if err != nil {
		return r, err
	}
	for _, l := range layers {
		size, err := l.Size()
		if err != nil {
			return r, err
		}
		r.Compressed += size
		if ml, ok := l.(*layer); ok {
			r.Uncompressed += int64(len(ml.uncompressed))
			continue
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return r, err
		}
		n, err := io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return r, err
		}
		r.Uncompressed += n
	}
	return r, nil
}

// write writes DIR/<service>.tar (the first platform's image, tagged danube-connect/<service>:dev)
// and, for services built for several platforms, DIR/<service>.oci/, an OCI layout whose
// index.json holds the multi-platform index. Then it prints one line per image.
func write(o Options, results []Result) error {
	var errs []error
	for i := 0; i < len(results); {
		j := i
		for j < len(results) && results[j].Spec.Service == results[i].Spec.Service {
			j++
		}
		same := results[i:j]
		s := same[0].Spec
		tag, err := name.NewTag(LocalTag(s.Service))
		if err != nil {
			return err
		}
		// The tarball holds one image: linux/amd64 when built, else the first platform.
		k := max(0, slices.IndexFunc(same, func(r Result) bool { return r.Platform == "linux/amd64" }))
		file := filepath.Join(o.OutDir, s.Service+".tar")
		if err := tarball.WriteToFile(file, tag, same[k].Image); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
		}
		same[k].Tarball = file
		for _, r := range same {
			out := "(only in " + s.Service + ".oci)"
			if r.Tarball != "" {
				out = r.Tarball
			}
			fmt.Fprintf(o.Log, "%-16s %-12s %s  %5.1f MB compressed  %5.1f MB uncompressed  base %-6s  %s\n",
				s.Service, r.Platform, r.Digest, mb(r.Compressed), mb(r.Uncompressed), s.Base, out)
		}
		if len(same) > 1 {
			d, err := writeLayout(filepath.Join(o.OutDir, s.Service+".oci"), same)
			if err != nil {
				errs = append(errs, err)
			} else {
				fmt.Fprintf(o.Log, "%-16s %-12s %s  index of %d platforms  %s\n", s.Service, "index", d, len(same),
					filepath.Join(o.OutDir, s.Service+".oci"))
			}
		}
		i = j
	}
	return errors.Join(errs...)
}

func writeLayout(dir string, results []Result) (v1.Hash, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, r := range results {
		cf, err := r.Image.ConfigFile()
		if err != nil {
			return v1.Hash{}, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: r.Image, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		}})
	}
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "dev",
	})); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}

func mb(n int64) float64 { return float64(n) / 1e6 }
