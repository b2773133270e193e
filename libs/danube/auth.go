package danube

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenSupplier returns the bearer token for one request.
type tokenSupplier func(ctx context.Context) (string, error)

// bearerCreds implements credentials.PerRPCCredentials: it stamps
// `authorization: Bearer <token>` on every call, asking the supplier each time
// so rotated tokens take effect without reconnecting.
type bearerCreds struct {
	supply tokenSupplier
}

// GetRequestMetadata returns the authorization header for one rpc.
func (b bearerCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := b.supply(ctx)
	if err != nil {
		return nil, fmt.Errorf("danube: get auth token: %w", err)
	}
	if tok == "" {
		return nil, fmt.Errorf("danube: auth token is empty")
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is true: a bearer token must never cross the wire
// in clear text.
func (bearerCreds) RequireTransportSecurity() bool { return true }

// tokenFile caches a token read from a file and re-reads it when the file's
// modification time or size changes, so an external rotator (a Kubernetes
// projected volume, a sidecar) can refresh it under a running connector.
type tokenFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	token   string
	loaded  bool
}

func newTokenFile(path string) *tokenFile { return &tokenFile{path: path} }

// Token returns the file's token, re-reading it only when the file changed.
func (f *tokenFile) Token(context.Context) (string, error) {
	st, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("token file %q: %w", f.path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loaded && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.token, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("token file %q: %w", f.path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %q is empty", f.path)
	}
	f.token, f.modTime, f.size, f.loaded = tok, st.ModTime(), st.Size(), true
	return tok, nil
}
