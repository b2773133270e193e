package transform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"maps"
	"strings"
	"sync"
)

// A field path is dotted (customer.address.zip); where a step meets an array on the way, it applies
// to each element (items.price masks the price of every item). A path that is absent is not an
// error: the step does nothing to that record.
type path []string

func parsePath(p string) path { return strings.Split(p, ".") }

func (p path) String() string { return strings.Join(p, ".") }

// visit calls f with each object that holds p's last element (the parent) and that element's name.
func (p path) visit(v any, f func(parent map[string]any, name string)) {
	switch v := v.(type) {
	case map[string]any:
		if len(p) == 1 {
			f(v, p[0])
			return
		}
		if child, ok := v[p[0]]; ok {
			p[1:].visit(child, f)
		}
	case []any:
		for _, e := range v {
			p.visit(e, f)
		}
	}
}

func dropStep(paths []path) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		for _, p := range paths {
			p.visit(obj, func(parent map[string]any, name string) {
				if _, ok := parent[name]; ok {
					delete(parent, name)
					s.changed()
				}
			})
		}
		return true, nil
	}
}

// keepStep keeps only the listed fields; a nested path keeps its parents with only that field.
func keepStep(paths []path) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		out := map[string]any{}
		for _, p := range paths {
			keepPath(obj, out, p)
		}
		s.setValue(out)
		return true, nil
	}
}

// keepPath copies p from src into dst, creating the objects on the way.
func keepPath(src, dst map[string]any, p path) {
	v, ok := src[p[0]]
	if !ok {
		return
	}
	if len(p) == 1 {
		dst[p[0]] = v
		return
	}
	child, ok := v.(map[string]any)
	if !ok {
		return // a path through an array or a scalar keeps nothing below it
	}
	sub, ok := dst[p[0]].(map[string]any)
	if !ok {
		sub = map[string]any{}
		dst[p[0]] = sub
	}
	keepPath(child, sub, p[1:])
}

// rename is one old → new of rename's FIELDS; the new name is a name, not a path: the field stays
// in its object.
type rename struct {
	from path
	to   string
}

func renameStep(renames []rename) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		for _, r := range renames {
			r.from.visit(obj, func(parent map[string]any, name string) {
				if v, ok := parent[name]; ok {
					delete(parent, name)
					parent[r.to] = v
					s.changed()
				}
			})
		}
		return true, nil
	}
}

// masker replaces a field's value: with a fixed text (redact), or with a keyed hash of it (hash),
// so that equal values still join.
type masker struct {
	replacement string
	key         []byte // HMAC-SHA256 key; nil: redact
	pool        sync.Pool
}

func (m *masker) mask(v any) any {
	if m.key == nil {
		return m.replacement
	}
	h, _ := m.pool.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, m.key)
	}
	h.Reset()
	if s, ok := v.(string); ok { // a string hashes as its text, so "a@b.c" hashes the same in every payload
		h.Write([]byte(s))
	} else {
		b, _ := json.Marshal(v) // a value parsed from JSON always encodes
		h.Write(b)
	}
	out := hex.EncodeToString(h.Sum(nil))
	m.pool.Put(h)
	return out
}

func maskStep(paths []path, m *masker) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		for _, p := range paths {
			p.visit(obj, func(parent map[string]any, name string) {
				if v, ok := parent[name]; ok && v != nil { // null stays null: it hides nothing
					parent[name] = m.mask(v)
					s.changed()
				}
			})
		}
		return true, nil
	}
}

// insertStep sets static fields, then the fields of the map expr computes (nil: none).
func insertStep(static map[string]string, x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		var computed map[string]any
		if x != nil {
			v, err := x.eval(s)
			if err != nil {
				return false, err
			}
			n, err := native(v)
			if err != nil {
				return false, err
			}
			if computed, _ = n.(map[string]any); computed == nil {
				return false, errExprNotMap(v)
			}
		}
		for k, v := range static {
			obj[k] = v
		}
		maps.Copy(obj, computed)
		s.changed()
		return true, nil
	}
}

// flattenStep lifts nested objects' fields to the top, their names joined by sep
// ({"a":{"b":1}} → {"a.b":1}); arrays are kept as they are.
func flattenStep(sep string) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		nested := false
		for _, v := range obj {
			if _, ok := v.(map[string]any); ok {
				nested = true
				break
			}
		}
		if !nested {
			return true, nil
		}
		out := make(map[string]any, len(obj))
		flattenInto(out, "", sep, obj)
		s.setValue(out)
		return true, nil
	}
}

func flattenInto(out map[string]any, prefix, sep string, obj map[string]any) {
	for k, v := range obj {
		name := k
		if prefix != "" {
			name = prefix + sep + k
		}
		if child, ok := v.(map[string]any); ok && len(child) > 0 {
			flattenInto(out, name, sep, child)
			continue
		}
		out[name] = v
	}
}
