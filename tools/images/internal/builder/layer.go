package builder

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layer is an image layer held in memory and compressed once: go-containerregistry's tarball
// layers recompress on every read, which made writing and measuring an image several times
// slower than building it.
type layer struct {
	compressed, uncompressed []byte
	digest, diffID           v1.Hash
}

// NewLayer makes an OCI layer (gzip) from an uncompressed tar. The same tar gives the same
// compressed bytes (no timestamp or name in the gzip header).
func NewLayer(tar []byte) (v1.Layer, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tar); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &layer{compressed: b.Bytes(), uncompressed: tar, digest: hash(b.Bytes()), diffID: hash(tar)}, nil
}

func hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func (l *layer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *layer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *layer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *layer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *layer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}
func (l *layer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
