package transform_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/transform"
)

// Every example in docs/transforms.md and the services' READMEs loads: its steps exist, its
// variables are right and its expressions compile (for a source, and for a sink unless it routes
// or uses a sink's variables).
func TestDocExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../../services/*/README.md")
	var doc []byte
	for _, f := range append(files, "../../../docs/transforms.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc = append(doc, b...)
	}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```env\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 14 {
		t.Fatalf("found %d examples", len(blocks))
	}
	for _, b := range blocks {
		b[1] = strings.Replace(b[1], "IMPORT_TRANSFORMS=", "TRANSFORMS=", 1)
		if !strings.Contains(b[1], "TRANSFORMS=") {
			continue
		}
		var environ []string
		for _, line := range strings.Split(strings.TrimSpace(b[1]), "\n") {
			if !strings.HasPrefix(line, "#") {
				environ = append(environ, strings.Replace(line, "/run/secrets/pii_key", key, 1))
			}
		}
		sinkOnly := regexp.MustCompile(`\b(offset|publish_time|message_id)\b`).MatchString(b[1])
		if !sinkOnly {
			var src struct {
				Steps transform.SourceSteps `env:"TRANSFORMS"`
			}
			if err := config.Load(&src, environ); err != nil {
				t.Errorf("example\n%s\nas a source: %v", b[1], err)
			}
		}
		if strings.Contains(b[1], "_TYPE=route") {
			continue
		}
		var sink struct {
			Steps transform.SinkSteps `env:"TRANSFORMS"`
		}
		if err := config.Load(&sink, environ); err != nil {
			t.Errorf("example\n%s\nas a sink: %v", b[1], err)
		}
	}
}
