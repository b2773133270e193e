package transform

import (
	"bytes"
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// The steps built on one CEL expression (EXPR).

func filterStep(x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		v, err := x.eval(s)
		if err != nil {
			return false, err
		}
		b, ok := v.(types.Bool)
		if !ok {
			return false, fmt.Errorf("the expression gave %s, want a bool", typeName(v))
		}
		return bool(b), nil
	}
}

func mapStep(x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		v, err := x.eval(s)
		if err != nil {
			return false, err
		}
		switch v := v.(type) {
		case types.String:
			s.setPayload([]byte(v))
		case types.Bytes:
			s.setPayload(bytes.Clone(v))
		default:
			j, err := toJSON(v, s.new())
			if err != nil {
				return false, err
			}
			s.setValue(j)
		}
		return true, nil
	}
}

// routeStep sets the destination topic (a source's).
func routeStep(x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		t, err := evalString(x, s)
		if err != nil {
			return false, err
		}
		if err := danube.CheckTopic(t); err != nil {
			return false, fmt.Errorf("topic %q: %w", t, err)
		}
		s.rec.Topic = t
		return true, nil
	}
}

func keyStep(x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		k, err := evalString(x, s)
		if err != nil {
			return false, err
		}
		s.rec.Key = k
		return true, nil
	}
}

// attributesStep sets the attributes of the map the expression gives: a string as it is, another
// value as its JSON, null removes the attribute.
func attributesStep(x *expression) func(*state) (bool, error) {
	return func(s *state) (bool, error) {
		v, err := x.eval(s)
		if err != nil {
			return false, err
		}
		m, ok := v.(traits.Mapper)
		if !ok {
			return false, errExprNotMap(v)
		}
		for it := m.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			name, ok := k.(types.String)
			if !ok {
				return false, fmt.Errorf("an attribute name must be a string, got %s", typeName(k))
			}
			e := m.Get(k)
			if e == types.NullValue {
				s.setAttribute(string(name), "", true)
				continue
			}
			t, err := text(e, s.new())
			if err != nil {
				return false, fmt.Errorf("attribute %q: %w", name, err)
			}
			s.setAttribute(string(name), t, false)
		}
		return true, nil
	}
}

func evalString(x *expression, s *state) (string, error) {
	v, err := x.eval(s)
	if err != nil {
		return "", err
	}
	str, ok := v.(types.String)
	if !ok {
		return "", fmt.Errorf("the expression gave %s, want a string", typeName(v))
	}
	return string(str), nil
}

// typeName names a CEL value's type for an error ("a value of type int").
func typeName(v ref.Val) string { return "a value of type " + v.Type().TypeName() }

// Result types the expression steps accept at compile time.
var (
	boolResult   = []*cel.Type{cel.BoolType}
	stringResult = []*cel.Type{cel.StringType}
	mapResult    = []*cel.Type{cel.MapType(cel.StringType, cel.DynType)}
)

func errExprNotMap(v ref.Val) error {
	return fmt.Errorf("the expression gave %s, want a map", typeName(v))
}
