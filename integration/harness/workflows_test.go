package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The GitHub workflows cannot run here; these tests keep what can be checked
// without GitHub true: they parse, pin their actions, grant least privilege,
// run the real broker the harness pins, and select the services to rebuild as
// documented.

const workflowsDir = "../../.github/workflows"

// workflow is the part of a GitHub workflow the tests look at.
type workflow struct {
	Name        string            `yaml:"name"`
	On          yaml.Node         `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Env         map[string]string `yaml:"env"`
	Jobs        map[string]struct {
		Permissions map[string]string `yaml:"permissions"`
		Env         map[string]string `yaml:"env"`
		Steps       []struct {
			Uses string `yaml:"uses"`
			Run  string `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readWorkflows(t *testing.T) map[string]workflow {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(workflowsDir, "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows in %s: %v", workflowsDir, err)
	}
	out := map[string]workflow{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var w workflow
		if err := yaml.Unmarshal(b, &w); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		out[filepath.Base(f)] = w
	}
	return out
}

var pinnedAction = regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)

// TestWorkflowsParse checks every workflow: valid YAML with jobs, read-only
// contents by default, actions pinned by commit, package writes only in the
// release's pushing jobs, id-token nowhere.
func TestWorkflowsParse(t *testing.T) {
	for name, w := range readWorkflows(t) {
		if w.Name == "" || len(w.Jobs) == 0 || w.On.Kind == 0 {
			t.Errorf("%s: want name, on and jobs", name)
		}
		if w.Permissions["contents"] != "read" || len(w.Permissions) != 1 {
			t.Errorf("%s: top-level permissions %v, want exactly contents: read", name, w.Permissions)
		}
		for jobName, j := range w.Jobs {
			for _, s := range j.Steps {
				if s.Uses != "" && !pinnedAction.MatchString(s.Uses) {
					t.Errorf("%s: job %s uses %q: pin actions by commit SHA", name, jobName, s.Uses)
				}
			}
			if _, ok := j.Permissions["id-token"]; ok {
				t.Errorf("%s: job %s asks for id-token; nothing here needs it", name, jobName)
			}
			if j.Permissions["packages"] == "write" && (name != "release.yml" || !slices.Contains([]string{"stage", "promote"}, jobName)) {
				t.Errorf("%s: job %s may write packages; only release.yml's stage and promote push", name, jobName)
			}
		}
	}
}

// TestWorkflowRealBrokerIsDanubeImage keeps the broker image of the
// real-broker job equal to DanubeImage, and the job running the suites.
func TestWorkflowRealBrokerIsDanubeImage(t *testing.T) {
	ci, ok := readWorkflows(t)["ci.yml"]
	if !ok {
		t.Fatal("no ci.yml")
	}
	j, ok := ci.Jobs["integration-real-broker"]
	if !ok {
		t.Fatal("ci.yml has no integration-real-broker job")
	}
	if got := j.Env[EnvDanubeImage]; got != DanubeImage {
		t.Errorf("ci.yml integration-real-broker: %s=%q, want harness.DanubeImage %q", EnvDanubeImage, got, DanubeImage)
	}
	if j.Env[EnvRequire] != "1" {
		t.Errorf("ci.yml integration-real-broker: want %s=1 so that nothing passes by skipping", EnvRequire)
	}
	var runs string
	for _, s := range j.Steps {
		runs += s.Run + "\n"
	}
	for _, want := range []string{"./integration/...", "--mode standalone", "-run 'Conformance|Suite'"} {
		if !strings.Contains(runs, want) {
			t.Errorf("ci.yml integration-real-broker does not run %q", want)
		}
	}
}

// TestChangedServices runs the script that picks the images a push to main
// rebuilds.
func TestChangedServices(t *testing.T) {
	all := `["bridge-kafka","sink-clickhouse","sink-http","source-mqtt","source-postgres"]`
	if b, err := exec.Command("sh", "-c", "ls ../../services/*/main.go | wc -l").Output(); err != nil || strings.TrimSpace(string(b)) != "5" {
		all = "" // services were added or removed: only check the selective cases exactly
	}
	for _, tc := range []struct{ paths, want string }{
		{"services/sink-http/sinkhttp/sink.go\nservices/source-mqtt/README.md\ndocs/x.md\nservices/README.md\n", `["sink-http","source-mqtt"]`},
		{"docs/operations.md\nintegration/sinkhttp/x_test.go\n", `[]`},
		{"", `[]`},
		{"libs/runtime/sink.go\n", all},
		{"go.mod\n", all},
		{"tools/images/images.bzl\n", all},
	} {
		cmd := exec.Command("../../.github/scripts/changed-services.sh", "-")
		cmd.Stdin = strings.NewReader(tc.paths)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("changed-services.sh with %q: %v\n%s", tc.paths, err, out)
		}
		got := strings.TrimSpace(string(out))
		if tc.want == "" {
			if !strings.HasPrefix(got, `["`) {
				t.Errorf("paths %q: %s, want every service", tc.paths, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("paths %q: %s, want %s", tc.paths, got, tc.want)
		}
	}
}
