package filesink_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/examples/filesink"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/runtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	runtimetest.SinkSuite{
		New: func(t *testing.T, cfg *runtime.SinkConfig) runtime.SinkConnector {
			c, err := filesink.New(&filesink.Config{SinkConfig: *cfg, Path: path}, runtime.NewResources(&cfg.Common))
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Written: func(t *testing.T) []string {
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			return strings.Fields(string(b))
		},
		Reset:   func(t *testing.T) { remove(t, path) },
		Valid:   func(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) },
		Invalid: []byte("not json"),
	}.Run(t)
}

// remove deletes path; one that is not there is reset already.
func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}
