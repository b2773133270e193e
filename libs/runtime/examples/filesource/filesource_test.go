package filesource_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesource"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	in, cp := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "checkpoint")
	runtimetest.SourceSuite[filesource.Offset]{
		New: func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector[filesource.Offset] {
			c, err := filesource.New(&filesource.Config{SourceConfig: *cfg, Input: in, Checkpoint: cp}, runtime.NewResources(&cfg.Common))
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Emit: func(t *testing.T, payloads ...[]byte) {
			f, err := os.OpenFile(in, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range payloads {
				if _, err := f.Write(append(p, '\n')); err != nil {
					t.Fatal(errors.Join(err, f.Close()))
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		},
		Reset: func(t *testing.T) {
			remove(t, in)
			remove(t, cp)
		},
		Payload: func(i int) []byte { return fmt.Appendf(nil, `{"n":%d,"key":"k%d"}`, i, i%3) },
		Key:     func(i int) string { return fmt.Sprintf("k%d", i%3) },
	}.Run(t)
}

// remove deletes path; one that is not there is reset already.
func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
