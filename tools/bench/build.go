package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
)

// module is this repository's module path: binaries are built by import path, so the command works
// from any directory of a clone (go test runs in tools/bench).
const module = "github.com/danube-messaging/danube-connect-go"

// builder builds the binaries cases run as separate processes, once each per run.
type builder struct {
	mu   sync.Mutex
	dir  string
	done map[string]string // package → binary
}

func newBuilder() (*builder, error) {
	dir, err := os.MkdirTemp("", "danube-bench-")
	if err != nil {
		return nil, err
	}
	return &builder{dir: dir, done: map[string]string{}}, nil
}

// build runs go build for pkg, an import path relative to the module ("services/sink-http").
func (b *builder) build(ctx context.Context, pkg string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bin, ok := b.done[pkg]; ok {
		return bin, nil
	}
	bin := filepath.Join(b.dir, path.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, module+"/"+pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	b.done[pkg] = bin
	return bin, nil
}

// close removes the binaries; a leftover temp dir is not worth failing a run for.
func (b *builder) close() { _ = os.RemoveAll(b.dir) }
