package transform

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"

	"github.com/valyala/fastjson"
)

// A field path is dotted (customer.address.zip); where a step meets an array on the way, it applies
// to each element (items.price masks the price of every item). A path that is absent is not an
// error: the step does nothing to that record.
type path []string

func parsePath(p string) path { return strings.Split(p, ".") }

// visit calls f with each object that holds p's last element (the parent) and that element's name.
func (p path) visit(v *fastjson.Value, f func(parent *fastjson.Value, name string)) {
	switch v.Type() {
	case fastjson.TypeObject:
		if len(p) == 1 {
			f(v, p[0])
			return
		}
		if child := v.Get(p[0]); child != nil {
			p[1:].visit(child, f)
		}
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, e := range a {
			p.visit(e, f)
		}
	}
}

// eachField makes a step that calls f at every place one of paths names (i: the path's index).
func eachField(paths []path, f func(s *state, i int, parent *fastjson.Value, name string)) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		for i, p := range paths {
			p.visit(obj, func(parent *fastjson.Value, name string) { f(s, i, parent, name) })
		}
		return true, nil
	}
}

func dropStep(paths []path) func(*state) (bool, error) {
	return eachField(paths, func(s *state, _ int, parent *fastjson.Value, name string) {
		if parent.Get(name) != nil {
			parent.Del(name)
			s.changed()
		}
	})
}

// keepStep keeps only the listed fields; a nested path keeps its parents with only that field.
func keepStep(paths []path) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		out := s.new().NewObject()
		for _, p := range paths {
			keepPath(s.arena, obj, out, p)
		}
		s.setValue(out)
		return true, nil
	}
}

// keepPath copies p from src into dst, creating the objects on the way.
func keepPath(a *fastjson.Arena, src, dst *fastjson.Value, p path) {
	v := src.Get(p[0])
	if v == nil {
		return
	}
	if len(p) == 1 {
		dst.Set(p[0], v)
		return
	}
	if v.Type() != fastjson.TypeObject {
		return // a path through an array or a scalar keeps nothing below it
	}
	sub := dst.Get(p[0])
	if sub == nil {
		sub = a.NewObject()
		dst.Set(p[0], sub)
	}
	keepPath(a, v, sub, p[1:])
}

// rename is one old → new of rename's FIELDS; the new name is a name, not a path: the field stays
// in its object.
type rename struct {
	from path
	to   string
}

func renameStep(renames []rename) func(*state) (bool, error) {
	from := make([]path, len(renames))
	for i, r := range renames {
		from[i] = r.from
	}
	return eachField(from, func(s *state, i int, parent *fastjson.Value, name string) {
		if v := parent.Get(name); v != nil {
			parent.Del(name)
			parent.Set(renames[i].to, v)
			s.changed()
		}
	})
}

// masker replaces a field's value: with a fixed text (redact), or with a keyed hash of it (hash),
// so that equal values still join.
type masker struct {
	replacement string
	key         []byte // HMAC-SHA256 key; nil: redact
	pool        sync.Pool
}

// mask returns what v becomes: a string hashes as its text, so "a@b.c" hashes the same in every
// payload; another value as its JSON text (a number's exactly as it was written).
func (m *masker) mask(v *fastjson.Value) string {
	if m.key == nil {
		return m.replacement
	}
	h, _ := m.pool.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, m.key)
	}
	h.Reset()
	if b, err := v.StringBytes(); err == nil {
		h.Write(b)
	} else {
		h.Write(v.MarshalTo(nil))
	}
	var sum [sha256.Size]byte
	out := hex.EncodeToString(h.Sum(sum[:0]))
	m.pool.Put(h)
	return out
}

func maskStep(paths []path, m *masker) func(*state) (bool, error) {
	return eachField(paths, func(s *state, _ int, parent *fastjson.Value, name string) {
		if v := parent.Get(name); v != nil && v.Type() != fastjson.TypeNull { // null stays null: it hides nothing
			parent.Set(name, s.new().NewString(m.mask(v)))
			s.changed()
		}
	})
}

// insertStep sets static fields, then the fields of the map expr computes (nil: none).
func insertStep(static [][2]string, x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		obj, err := s.object()
		if err != nil {
			return false, err
		}
		var computed *fastjson.Object
		if x != nil {
			v, err := x.eval(s)
			if err != nil {
				return false, err
			}
			j, err := toJSON(v, s.new())
			if err != nil {
				return false, err
			}
			if computed, err = j.Object(); err != nil {
				return false, errExprNotMap(v)
			}
		}
		for _, kv := range static {
			obj.Set(kv[0], s.new().NewString(kv[1]))
		}
		if computed != nil {
			computed.Visit(func(k []byte, v *fastjson.Value) { obj.Set(string(k), v) })
		}
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
		o, _ := obj.Object()
		nested := false
		o.Visit(func(_ []byte, v *fastjson.Value) { nested = nested || v.Type() == fastjson.TypeObject })
		if !nested {
			return true, nil
		}
		out := s.new().NewObject()
		flattenInto(out, "", sep, o)
		s.setValue(out)
		return true, nil
	}
}

func flattenInto(out *fastjson.Value, prefix, sep string, obj *fastjson.Object) {
	obj.Visit(func(k []byte, v *fastjson.Value) {
		name := string(k)
		if prefix != "" {
			name = prefix + sep + name
		}
		if child, err := v.Object(); err == nil && child.Len() > 0 {
			flattenInto(out, name, sep, child)
			return
		}
		out.Set(name, v)
	})
}
