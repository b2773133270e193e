package builder

import (
	"archive/tar"
	"bytes"
	"io"
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

// The binary layer is a complete tar: the binary's data padded to a 512-byte block and two zero
// blocks at the end (Go's archive/tar reads a tar cut off before them without complaint; GNU tar
// does not).
func TestBinaryLayerIsACompleteTar(t *testing.T) {
	for _, size := range []int{0, 1, 511, 512, 513, 70_000} {
		bin := bytes.Repeat([]byte{0xA5}, size)
		b, err := binaryLayer("sink-x", bin)
		if err != nil {
			t.Fatal(err)
		}
		// header + data padded to whole blocks + the two end-of-archive blocks
		if want := 512 + (size+511)/512*512 + 1024; len(b) != want || !bytes.Equal(b[len(b)-1024:], make([]byte, 1024)) {
			t.Errorf("binary of %d bytes: layer of %d bytes, want %d ending in 1024 zero bytes", size, len(b), want)
			continue
		}
		tr := tar.NewReader(bytes.NewReader(b))
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(tr)
		if err != nil || h.Name != "sink-x" || h.Mode != 0o755 || !bytes.Equal(got, bin) {
			t.Errorf("entry %q mode %o, %d bytes (%v); want sink-x 0755 with the binary", h.Name, h.Mode, len(got), err)
		}
	}
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
