// Command bazeldeps keeps the Bazel view of go.mod in sync without Bazel.
//
// It lists the module's dependencies with `go list -m`, derives the repository names that
// Gazelle's go_deps extension gives them, and either
//   - checks (default) that MODULE.bazel's use_repo(go_deps, ...) names exactly the direct
//     dependencies, exiting 1 with the difference, or
//   - rewrites that list (-write), or
//   - writes a Gazelle repository config (-repo-config FILE) so that `gazelle -repo_config FILE`
//     resolves external imports offline, as it does under `bazel run //:gazelle`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

type module struct {
	Path     string
	Indirect bool
	Main     bool
}

func main() {
	write := flag.Bool("write", false, "rewrite the use_repo(go_deps, ...) list in MODULE.bazel")
	repoConfig := flag.String("repo-config", "", "write a Gazelle repository config for every module to this file")
	file := flag.String("module-file", "MODULE.bazel", "path of MODULE.bazel")
	flag.Parse()
	if err := run(*file, *write, *repoConfig); err != nil {
		fmt.Fprintln(os.Stderr, "bazeldeps:", err)
		os.Exit(1)
	}
}

func run(file string, write bool, repoConfig string) error {
	mods, err := listModules()
	if err != nil {
		return err
	}
	if repoConfig != "" {
		var b strings.Builder
		for _, m := range mods {
			fmt.Fprintf(&b, "go_repository(name = %q, importpath = %q)\n", repoName(m.Path), m.Path)
		}
		return os.WriteFile(repoConfig, []byte(b.String()), 0o644)
	}
	var want []string
	for _, m := range mods {
		if !m.Indirect {
			want = append(want, repoName(m.Path))
		}
	}
	slices.Sort(want)
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	block := regexp.MustCompile(`(?s)use_repo\(\s*go_deps,(.*?)\)`)
	loc := block.FindSubmatchIndex(src)
	if loc == nil {
		return fmt.Errorf("%s: no use_repo(go_deps, ...) block", file)
	}
	have := regexp.MustCompile(`"([^"]+)"`).FindAllSubmatch(src[loc[2]:loc[3]], -1)
	var got []string
	for _, h := range have {
		got = append(got, string(h[1]))
	}
	if slices.Equal(got, want) {
		return nil
	}
	if !write {
		return fmt.Errorf("%s: use_repo(go_deps, ...) is stale: have %v, want %v (run: go run ./tools/bazeldeps -write)", file, got, want)
	}
	var b bytes.Buffer
	b.Write(src[:loc[2]])
	b.WriteString("\n")
	for _, w := range want {
		fmt.Fprintf(&b, "    %q,\n", w)
	}
	b.Write(src[loc[3]:])
	return os.WriteFile(file, b.Bytes(), 0o644)
}

func listModules() ([]module, error) {
	out, err := exec.Command("go", "list", "-m", "-json", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %w", err)
	}
	var mods []module
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m module
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if !m.Main {
			mods = append(mods, m)
		}
	}
	return mods, nil
}

// repoName mirrors Gazelle's label.ImportPathToBazelRepoName: the host's labels reversed,
// then the path, with every other character turned into '_'.
func repoName(importPath string) string {
	importPath = strings.ToLower(importPath)
	parts := strings.Split(importPath, "/")
	host := strings.Split(parts[0], ".")
	slices.Reverse(host)
	name := strings.Join(append(host, parts[1:]...), "_")
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, name)
}
