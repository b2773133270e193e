package filesource_test

import (
	"fmt"
	"log/slog"
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
	runtimetest.SourceSuite{
		New: func(t *testing.T, cfg *runtime.SourceConfig) runtime.SourceConnector {
			c, _ := filesource.New(&filesource.Config{SourceConfig: *cfg, Input: in, Checkpoint: cp}, slog.New(slog.DiscardHandler))
			return c
		},
		Emit: func(t *testing.T, payloads ...[]byte) {
			f, err := os.OpenFile(in, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range payloads {
				if _, err := f.Write(append(p, '\n')); err != nil {
					t.Fatal(err)
				}
			}
		},
		Reset: func(t *testing.T) {
			os.Remove(in)
			os.Remove(cp)
		},
		Payload: func(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) },
	}.Run(t)
}
