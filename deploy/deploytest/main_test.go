package deploytest_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/danube-messaging/danube-connect-go/integration/harness"
	"github.com/danube-messaging/danube-connect-go/libs/runtime"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config/configtest"
	"github.com/danube-messaging/danube-connect-go/services/bridge-kafka/bridge"
	"github.com/danube-messaging/danube-connect-go/services/sink-clickhouse/chsink"
	"github.com/danube-messaging/danube-connect-go/services/sink-http/sinkhttp"
	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/mqttsource"
	"github.com/danube-messaging/danube-connect-go/services/source-postgres/pgcdc"
	"github.com/danube-messaging/danube-connect-go/services/source-webhook/webhook"
	"github.com/danube-messaging/danube-connect-go/tools/images/imagespec"
)

func TestMain(m *testing.M) { harness.Main(m) }

// repoRoot is the module root, relative to this package's directory.
const repoRoot = "../.."

// deployDir is deploy/, relative to this package's directory.
const deployDir = ".."

// repositoryPrefix is where the project's images live; every image reference under it must be
// declared in tools/images/images.bzl.
const repositoryPrefix = "ghcr.io/danube-messaging/danube-connect/"

// service is what the drift tests know of a connector service: its configuration (for the
// variables --help lists) and whether its replicas share the work, so that a
// HorizontalPodAutoscaler may scale it.
type service struct {
	config func() (cfg any, common *runtime.Common)
	shares bool
}

// services has one line per service under services/; TestEveryImageHasAService keeps it complete.
var services = map[string]service{
	"sink-http":       {func() (any, *runtime.Common) { c := new(sinkhttp.Config); return c, &c.Common }, true},
	"sink-clickhouse": {func() (any, *runtime.Common) { c := new(chsink.Config); return c, &c.Common }, true},
	"source-postgres": {func() (any, *runtime.Common) { c := new(pgcdc.Config); return c, &c.Common }, false},
	"source-mqtt":     {func() (any, *runtime.Common) { c := new(mqttsource.Config); return c, &c.Common }, true},
	"bridge-kafka":    {func() (any, *runtime.Common) { c := new(bridge.Config); return c, &c.Common }, true},
	"source-webhook":  {func() (any, *runtime.Common) { c := new(webhook.Config); return c, &c.Common }, true},
}

// images returns the declared images (tools/images/images.bzl) by service.
func images(t *testing.T) map[string]imagespec.Image {
	t.Helper()
	list, err := imagespec.Load(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	byService := map[string]imagespec.Image{}
	for _, img := range list {
		byService[img.Service] = img
	}
	return byService
}

// variables returns the variables svc's --help lists.
func variables(t *testing.T, svc string) map[string]bool {
	t.Helper()
	s, ok := services[svc]
	if !ok {
		t.Fatalf("no service %q in the drift tests' table", svc)
	}
	cfg, common := s.config()
	vars := map[string]bool{}
	for line := range strings.Lines(configtest.Help(t, cfg, common)) {
		name, _, _ := strings.Cut(line, " ")
		if name != "" && name != "VARIABLE" {
			vars[name] = true
		}
	}
	if !vars["DANUBE_SERVICE_URL"] || !vars["CONNECTOR_NAME"] {
		t.Fatalf("%s --help lists no runtime variables: %v", svc, vars)
	}
	return vars
}

// serviceOf returns the service whose image ref names (repository:tag or repository@digest under
// repositoryPrefix),
// or "" for an image that is not the project's.
func serviceOf(t *testing.T, declared map[string]imagespec.Image, ref string) string {
	t.Helper()
	if !strings.HasPrefix(ref, repositoryPrefix) {
		return ""
	}
	name, digest, byDigest := strings.Cut(ref, "@")
	repo, tag, _ := strings.Cut(name, ":")
	if tag == "" && (!byDigest || digest == "") {
		t.Errorf("image %q has no tag or digest", ref)
	}
	for svc, img := range declared {
		if img.Repository == repo {
			return svc
		}
	}
	t.Errorf("image %q is not declared in tools/images/images.bzl (declared: %v)", ref, slices.Sorted(maps.Keys(declared)))
	return ""
}

// deployPath is path (relative to deploy/) from this package's directory.
func deployPath(path ...string) string { return filepath.Join(append([]string{deployDir}, path...)...) }
