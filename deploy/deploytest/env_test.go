package deploytest_test

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/danube-messaging/danube-connect-go/deploy/deploytest"
	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// composeFiles are the docker-compose files under deploy/: the whole stack and the per-connector
// examples.
func composeFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(deployPath("*", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, deployPath("docker-compose.yml"))
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	return files
}

// composeServices returns the services of the compose file at path.
func composeServices(t *testing.T, path string) map[string]struct {
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
} {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(compose.Services) == 0 {
		t.Fatalf("%s has no services", path)
	}
	return compose.Services
}

// manifestFiles are the Kubernetes manifests under deploy/ that hold workloads.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(deployPath("*", "kubernetes.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/*/kubernetes.yaml: %v", err)
	}
	return files
}

// podFields stands in for the fieldRefs the manifests use.
var podFields = map[string]string{"metadata.name": "connector-0"}

// checkKnown fails t for every variable of environ that svc does not know.
func checkKnown(t *testing.T, where, svc string, environ []string, known map[string]bool) {
	t.Helper()
	if len(environ) == 0 {
		t.Errorf("%s: the %s container sets no variables", where, svc)
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !known[name] {
			t.Errorf("%s: %s is not a variable of %s (see its --help)", where, name, svc)
		}
	}
}

// TestDeployVariablesAreKnown: every variable a compose file or a Kubernetes manifest under
// deploy/ sets for a connector (environment blocks, ConfigMaps, container env) is one its service
// lists in --help, so a renamed or misspelt variable cannot go unnoticed.
func TestDeployVariablesAreKnown(t *testing.T) {
	declared := images(t)
	known := map[string]map[string]bool{}
	knownOf := func(svc string) map[string]bool {
		if known[svc] == nil {
			known[svc] = variables(t, svc)
		}
		return known[svc]
	}
	connectors := 0
	for _, path := range composeFiles(t) {
		for name, s := range composeServices(t, path) {
			svc := serviceOf(t, declared, s.Image)
			if svc == "" {
				continue
			}
			connectors++
			environ := make([]string, 0, len(s.Environment))
			for k, v := range s.Environment {
				environ = append(environ, k+"="+v)
			}
			checkKnown(t, path+" service "+name, svc, environ, knownOf(svc))
		}
	}
	for _, path := range manifestFiles(t) {
		objs, err := deploytest.ReadManifest(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			for _, c := range o.Spec.Template.Spec.Containers {
				svc := serviceOf(t, declared, c.Image)
				if svc == "" {
					continue
				}
				connectors++
				environ, err := deploytest.ContainerEnv(objs, c, podFields)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				checkKnown(t, path+" "+o.Kind+" "+o.Metadata.Name, svc, environ, knownOf(svc))
			}
		}
	}
	if connectors < 2*len(services) {
		t.Errorf("found only %d connector containers in deploy/", connectors)
	}
}

// imageRef finds references to the project's images anywhere in deploy/ (files, comments, docs).
var imageRef = regexp.MustCompile(regexp.QuoteMeta(repositoryPrefix) + `[a-z0-9][a-z0-9._-]*(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]+)?`)

// TestDeployImagesAreDeclared: every image of the project's repository named anywhere under
// deploy/ is declared in tools/images/images.bzl (so it has an image target), with a tag; and
// the whole stack runs every declared image.
func TestDeployImagesAreDeclared(t *testing.T) {
	declared := images(t)
	for svc, img := range declared {
		if !strings.HasPrefix(img.Repository, repositoryPrefix) {
			t.Errorf("%s's repository %q is not under %s", svc, img.Repository, repositoryPrefix)
		}
		if _, ok := services[svc]; !ok {
			t.Errorf("the declared image %s has no line in the drift tests' services table", svc)
		}
	}
	for svc := range services {
		if _, ok := declared[svc]; !ok {
			t.Errorf("%s has no image in tools/images/images.bzl", svc)
		}
	}
	refs := 0
	err := filepath.WalkDir(deployDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, ref := range imageRef.FindAllString(string(raw), -1) {
			refs++
			if !strings.ContainsAny(ref, ":@") && strings.HasSuffix(path, ".md") {
				serviceOf(t, declared, ref+":doc") // documentation may name a repository without a tag
				continue
			}
			serviceOf(t, declared, ref)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refs == 0 {
		t.Fatal("no image references found under deploy/")
	}
	var stack []string
	for _, s := range composeServices(t, deployPath("docker-compose.yml")) {
		if svc := serviceOf(t, declared, s.Image); svc != "" {
			stack = append(stack, svc)
		}
	}
	slices.Sort(stack)
	if want := slices.Sorted(maps.Keys(declared)); !slices.Equal(slices.Compact(stack), want) {
		t.Errorf("deploy/docker-compose.yml runs %v, want every declared image %v", stack, want)
	}
}

// TestStackConfigLoads loads every connector's environment in deploy/docker-compose.yml through
// its real configuration code, with each *_FILE variable naming the compose secret's file as the
// container sees it (/run/secrets/<name>), so values and secrets must be valid, not just named.
func TestStackConfigLoads(t *testing.T) {
	declared := images(t)
	path := deployPath("docker-compose.yml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stack struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Secrets     []string          `yaml:"secrets"`
		} `yaml:"services"`
		Secrets map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(raw, &stack); err != nil {
		t.Fatal(err)
	}
	for name, s := range stack.Services {
		svc := serviceOf(t, declared, s.Image)
		if svc == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			var environ []string
			for k, v := range s.Environment {
				if strings.HasSuffix(k, "_FILE") {
					secret, ok := strings.CutPrefix(v, "/run/secrets/")
					if !ok || !slices.Contains(s.Secrets, secret) || stack.Secrets[secret].File == "" {
						t.Fatalf("%s=%s is not a compose secret of the service", k, v)
					}
					v = deployPath(stack.Secrets[secret].File)
				}
				environ = append(environ, k+"="+v)
			}
			cfg, _ := services[svc].config()
			if err := config.Load(cfg, environ); err != nil {
				t.Fatalf("%s's environment does not load:\n%v", name, err)
			}
		})
	}
}
