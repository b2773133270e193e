package builder

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/tools/images/imagespec"
	"github.com/danube-messaging/danube-connect-go/tools/images/internal/baselayer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var spec = imagespec.Image{
	Service: "sink-x", Repository: "ghcr.io/o/sink-x", Base: "static", User: "65532:65532",
	Title: "t", Description: "d", Entrypoint: []string{"/sink-x"},
	Platforms: []string{"linux/amd64", "linux/arm64"}, Ports: []int{9090},
}

func assemble(t *testing.T, platform string) Result {
	t.Helper()
	static, err := baselayer.Static()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := binaryLayer(spec.Service, []byte("binary for "+platform))
	if err != nil {
		t.Fatal(err)
	}
	var layers []v1.Layer
	for _, tar := range [][]byte{static, bin} {
		l, err := NewLayer(tar)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := Assemble(spec, platform, "v1", "abc", layers)
	if err != nil {
		t.Fatal(err)
	}
	r, err := measure(spec, platform, img)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The same inputs give the same image digest: nothing depends on the time or the machine.
func TestAssembleIsReproducible(t *testing.T) {
	a, b := assemble(t, "linux/amd64"), assemble(t, "linux/amd64")
	if a.Digest != b.Digest {
		t.Errorf("digests %s and %s from the same inputs", a.Digest, b.Digest)
	}
	if a.Uncompressed <= 0 || a.Compressed <= 0 {
		t.Errorf("sizes %d/%d", a.Compressed, a.Uncompressed)
	}
	cf, err := a.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Created.Unix() != 0 || len(cf.History) != 2 || cf.Config.Env[0] != "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" {
		t.Errorf("config: created %v, history %d, env %q", cf.Created, len(cf.History), cf.Config.Env)
	}
}

func TestWriteSeveralPlatforms(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	results := []Result{assemble(t, "linux/amd64"), assemble(t, "linux/arm64")}
	if err := write(Options{OutDir: dir, Log: &log}, results); err != nil {
		t.Fatal(err)
	}
	if results[0].Tarball != filepath.Join(dir, "sink-x.tar") || results[1].Tarball != "" {
		t.Errorf("tarballs %q %q: want the amd64 image in sink-x.tar", results[0].Tarball, results[1].Tarball)
	}
	p, err := layout.FromPath(filepath.Join(dir, "sink-x.oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "dev" {
		t.Fatalf("index.json: %+v, want one index named dev", im.Manifests)
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range m.Manifests {
		got = append(got, d.Platform.String())
		if want := results[len(got)-1].Digest; d.Digest != want {
			t.Errorf("%s: digest %s, want %s", d.Platform, d.Digest, want)
		}
	}
	if strings.Join(got, " ") != "linux/amd64 linux/arm64/v8" {
		t.Errorf("platforms %v", got)
	}
	if lines := strings.Count(log.String(), "\n"); lines != 3 {
		t.Errorf("summary has %d lines, want one per image and one for the index:\n%s", lines, log.String())
	}
}
