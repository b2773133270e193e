package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestQuickRunWritesEverything runs every registered case with small counts into a temp dir and
// checks the printed table, the page and the charts. It asserts no timing: -quick numbers are noise.
// A case whose external system is missing is skipped, unless CI_REQUIRE_INTEGRATION=1.
func TestQuickRunWritesEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the benchmark binaries")
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-quick", "-out", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	table := stdout.String()
	if !strings.HasPrefix(table, "case ") {
		t.Errorf("table does not start with its header:\n%s", table)
	}
	page, err := os.ReadFile(filepath.Join(dir, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases() {
		name := c.Name()
		if _, reason, ok := strings.Cut(string(page), "\n## "+name+"\n"); ok && strings.Contains(strings.Split(reason, "\n## ")[0], "Not measured: ") {
			if name == "sink-http" || name == "danube-client" || name == "source-webhook" {
				t.Errorf("%s skipped: it needs no external system", name)
			}
			t.Logf("%s skipped (its external system is not available)", name)
			continue
		}
		printed := linesWithPrefix(table, name+" ")
		if len(printed) < 2 {
			t.Errorf("%s: %d table rows, want a baseline and at least one variant:\n%s", name, len(printed), table)
		}
		if !strings.Contains(string(page), "\n## "+name+"\n") {
			t.Errorf("page has no section for %s", name)
		}
		svg, err := os.ReadFile(filepath.Join(dir, "bench", name+".svg"))
		if err != nil {
			t.Error(err)
		} else if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("msgs/s")) {
			t.Errorf("%s.svg is not a chart of msgs/s", name)
		}
	}
	// Every page row is a printed row without the case column.
	if got, want := len(linesWithPrefix(string(page), "| ")), len(linesWithPrefix(table, ""))-1; got < want {
		t.Errorf("page has %d table lines, want at least the %d printed rows", got, want)
	}

	// The sink-http case compares both processes at every setting and latency.
	for _, set := range sinkSettings {
		for _, lat := range sinkLatencies {
			setting := set.name + ", latency " + lat.String()
			for _, variant := range []string{plainVariant, sinkVariant} {
				if !strings.Contains(string(page), "| "+setting+" | "+variant+" | ") {
					t.Errorf("page has no row %q / %q", setting, variant)
				}
			}
		}
	}
	// The source-webhook case compares the connector with the plain server at every setting, and
	// logs each one's p99 answer latency.
	for _, set := range webhookSettings {
		for _, variant := range []string{webhookPlainVariant, webhookVariant} {
			if !strings.Contains(string(page), "| "+set.name+" | "+variant+" | ") {
				t.Errorf("page has no row %q / %q", set.name, variant)
			}
			logged := regexp.MustCompile(regexp.QuoteMeta("source-webhook: "+set.name+": "+variant+": ") + `\d+ events, \d+/s, p99 answer \S+`)
			if !logged.MatchString(stderr.String()) {
				t.Errorf("no p99 answer latency logged for %q / %q:\n%s", set.name, variant, stderr.String())
			}
		}
	}
	if !strings.Contains(string(page), "Quick run") || !strings.Contains(string(page), "`go run ./tools/bench -quick -out "+dir+"`") {
		t.Errorf("page does not say it is a quick run, or not the command:\n%s", page)
	}
}

func TestListAndUnknownCase(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-list"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases() {
		if !strings.Contains(stdout.String(), c.Name()+"\n") {
			t.Errorf("-list does not list %s:\n%s", c.Name(), stdout.String())
		}
	}
	err := run(context.Background(), []string{"-out", t.TempDir(), "no-such-case"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), `unknown case "no-such-case"`) {
		t.Errorf("unknown case: err = %v", err)
	}
}

func TestCellsRatios(t *testing.T) {
	res := Result{Groups: []Group{{Setting: "s", Rows: []Row{
		{Variant: "base", Msgs: 10, Rate: 100, CPUMicros: 10, RSSMiB: 8},
		{Variant: "conn", Msgs: 10, Rate: 50, CPUMicros: 15},
	}}}}
	got := cells("c", res)
	want := [][]string{
		{"c", "s", "base", "10", "100", "baseline", "10.0", "baseline", "8.0"},
		{"c", "s", "conn", "10", "50", "0.50×", "15.0", "1.50×", "n/a"},
	}
	if len(got) != len(want) {
		t.Fatalf("cells = %q", got)
	}
	for i := range want {
		if strings.Join(got[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func linesWithPrefix(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func TestMedianOfRuns(t *testing.T) {
	run := func(rate float64) Result {
		return Result{Groups: []Group{{Setting: "s", Rows: []Row{{Variant: "v", Msgs: 1, Rate: rate, CPUMicros: rate / 10}}}}}
	}
	got, err := median([]Result{run(300), run(100), run(200)})
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Groups[0].Rows[0]; r.Rate != 200 || r.CPUMicros != 20 {
		t.Errorf("median row = %+v, want rate 200, CPU 20", r)
	}
	bad := run(1)
	bad.Groups[0].Setting = "other"
	if _, err := median([]Result{run(1), bad}); err == nil {
		t.Error("median of runs with different settings: no error")
	}
}

// missingCase is a case whose external system is never there.
type missingCase struct{}

func (missingCase) Name() string  { return "test-missing" }
func (missingCase) About() string { return "A case without its external system." }
func (missingCase) Run(context.Context, *Env) (Result, error) {
	return Result{}, unavailable("no such server: set IT_TEST_ADDR")
}

func TestUnavailableCaseIsSkipped(t *testing.T) {
	register(missingCase{})
	t.Cleanup(func() { delete(registry, missingCase{}.Name()) })
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	t.Setenv("CI_REQUIRE_INTEGRATION", "")
	if err := run(context.Background(), []string{"-out", dir, "test-missing"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "Not measured: no such server") {
		t.Errorf("page does not say the case was skipped:\n%s", page)
	}
	t.Setenv("CI_REQUIRE_INTEGRATION", "1")
	if err := run(context.Background(), []string{"-out", dir, "test-missing"}, &stdout, &stderr); err == nil {
		t.Error("CI_REQUIRE_INTEGRATION=1: a case without its system did not fail the run")
	}
}
