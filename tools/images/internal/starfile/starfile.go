// Package starfile evaluates the image declaration (tools/images/images.bzl) the way Bazel's
// loader would, with go.starlark.net, and converts its globals to plain Go values.
package starfile

import (
	"fmt"
	"os"
	"path/filepath"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Path is the declaration's location relative to the repository root.
const Path = "tools/images/images.bzl"

// Load evaluates the declaration under repoRoot and returns its global named name, converted
// by [Value].
func Load(repoRoot, name string) (any, error) {
	file := filepath.Join(repoRoot, Path)
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the image declaration: %w", err)
	}
	return Eval(Path, src, name)
}

// Eval evaluates src (a .bzl file without load statements) and returns the global name.
func Eval(filename string, src []byte, name string) (any, error) {
	thread := &starlark.Thread{Name: filename}
	globals, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, filename, src, nil)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", filename, err)
	}
	v, ok := globals[name]
	if !ok {
		return nil, fmt.Errorf("%s: no global %s", filename, name)
	}
	return Value(v)
}

// Value converts a Starlark value to Go: dict to map[string]any (string keys only), list and
// tuple to []any, string, int (to int64), bool, None (to nil).
func Value(v starlark.Value) (any, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.String:
		return string(v), nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		i, ok := v.Int64()
		if !ok {
			return nil, fmt.Errorf("integer %s out of range", v)
		}
		return i, nil
	case *starlark.Dict:
		m := make(map[string]any, v.Len())
		for _, item := range v.Items() {
			k, ok := item[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("dict key %s is a %s, want a string", item[0], item[0].Type())
			}
			x, err := Value(item[1])
			if err != nil {
				return nil, fmt.Errorf("[%q]: %w", string(k), err)
			}
			m[string(k)] = x
		}
		return m, nil
	case starlark.Indexable: // list, tuple
		s := make([]any, v.Len())
		for i := range s {
			x, err := Value(v.Index(i))
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s[i] = x
		}
		return s, nil
	default:
		return nil, fmt.Errorf("unsupported value %s of type %s", v, v.Type())
	}
}
