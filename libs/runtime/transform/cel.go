package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Side is where a chain runs: what its expressions can see.
type Side uint8

const (
	// Source: before publish; payload, attributes, key and topic (the destination).
	Source Side = iota
	// Sink: before the connector's write; also message_id, offset and publish_time.
	Sink
)

func (s Side) String() string {
	if s == Sink {
		return "sink"
	}
	return "source"
}

// costLimit bounds the work of one evaluation (CEL's cost units, about one per operation and per
// element a comprehension visits): an expression over a huge array fails on that record instead of
// stalling the connector.
const costLimit = 10_000_000

// expression is a compiled CEL expression.
type expression struct {
	prg cel.Program
}

// environments are the CEL environments, one per side, built once.
var environments [2]*cel.Env

func environment(side Side) (*cel.Env, error) {
	if e := environments[side]; e != nil {
		return e, nil
	}
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(reg), cel.CustomTypeAdapter(celAdapter),
		cel.Variable("payload", cel.DynType),
		cel.Variable("attributes", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("key", cel.StringType),
		cel.Variable("topic", cel.StringType),
		cel.OptionalTypes(), ext.Strings(), ext.Encoders(), ext.Math(), ext.Lists(), ext.Sets(),
	}
	if side == Sink {
		opts = append(opts, cel.Variable("message_id", cel.StringType), cel.Variable("offset", cel.UintType),
			cel.Variable("publish_time", cel.TimestampType))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	environments[side] = e
	return e, nil
}

// compile compiles src for side; want lists the result types the step accepts (dyn is always
// accepted and checked per record). The error quotes CEL's message: position and reason.
func compile(side Side, src string, want ...*cel.Type) (*expression, error) {
	env, err := environment(side)
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "ERROR: ", ""))
	}
	if out := ast.OutputType(); len(want) > 0 && out.Kind() != types.DynKind {
		ok := false
		for _, w := range want {
			ok = ok || w.IsAssignableType(out)
		}
		if !ok {
			names := make([]string, len(want))
			for i, w := range want {
				names[i] = w.String()
			}
			return nil, fmt.Errorf("the expression is of type %s, want %s", out, strings.Join(names, " or "))
		}
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(costLimit))
	if err != nil {
		return nil, err
	}
	return &expression{prg: prg}, nil
}

// eval evaluates the expression on s's record.
func (x *expression) eval(s *state) (ref.Val, error) {
	v, _, err := x.prg.Eval(s.activation())
	if err != nil {
		return nil, err
	}
	return v, nil
}

// celValues are a record's CEL values, built when an expression first asks for them.
type celValues struct {
	payload    ref.Val
	attributes ref.Val
}

// activation resolves the expression variables of s's record.
type activation struct{ s *state }

func (s *state) activation() interpreter.Activation { return activation{s} }

func (a activation) Parent() interpreter.Activation { return nil }

func (a activation) ResolveName(name string) (any, bool) {
	s := a.s
	switch name {
	case "payload":
		if s.cel.payload == nil {
			if v, err := s.value(); err == nil {
				s.cel.payload = celAdapter.NativeToValue(v)
			} else {
				s.cel.payload = types.Bytes(s.rec.Payload)
			}
		}
		return s.cel.payload, true
	case "attributes":
		if s.cel.attributes == nil {
			s.cel.attributes = types.NewStringStringMap(celAdapter, s.rec.Attributes)
		}
		return s.cel.attributes, true
	case "key":
		return types.String(s.rec.Key), true
	case "topic":
		return types.String(s.rec.Topic), true
	}
	if m := s.rec.Message; m != nil {
		switch name {
		case "message_id":
			return types.String(m.ID()), true
		case "offset":
			return types.Uint(m.Offset), true
		case "publish_time":
			return types.Timestamp{Time: m.PublishTime}, true
		}
	}
	return nil, false
}

// adapter makes CEL values of a parsed payload lazily: a json.Number becomes an int, a uint or a
// double (whichever holds it exactly), and objects and arrays are wrapped, not copied.
type adapter struct{ types.Adapter }

var celAdapter = adapter{types.DefaultTypeAdapter}

func (a adapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return types.Int(i)
		}
		if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return types.Uint(u)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return types.NewErr("number %s: %v", v, err)
		}
		return types.Double(f)
	case map[string]any:
		return types.NewStringInterfaceMap(a, v)
	case []any:
		return types.NewDynamicList(a, v)
	}
	return a.Adapter.NativeToValue(v)
}

// native turns a CEL result into a JSON value: parts that came from the payload are returned as
// they were parsed (numbers stay exact), new ones converted.
func native(v ref.Val) (any, error) {
	switch n := v.Value().(type) {
	case map[string]any, []any, json.Number, string, bool, int64, uint64, []byte:
		return n, nil
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, fmt.Errorf("%v has no JSON form", n)
		}
		return n, nil
	case time.Time:
		return n.UTC().Format(time.RFC3339Nano), nil
	case time.Duration:
		return n.String(), nil
	}
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case traits.Mapper:
		return nativeMap(v)
	case traits.Lister:
		n := int(v.Size().(types.Int))
		out := make([]any, n)
		for i := range n {
			e, err := native(v.Get(types.Int(i)))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s has no JSON form", v.Type().(ref.Type).TypeName())
}

func nativeMap(m traits.Mapper) (map[string]any, error) {
	out := make(map[string]any, int(m.Size().(types.Int)))
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("a map key must be a string to be written as JSON, got %s", k.Type().(ref.Type).TypeName())
		}
		e, err := native(m.Get(k))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ks, err)
		}
		out[string(ks)] = e
	}
	return out, nil
}

// text returns a CEL result as text: a string as it is, anything else as its JSON.
func text(v ref.Val) (string, error) {
	if s, ok := v.(types.String); ok {
		return string(s), nil
	}
	n, err := native(v)
	if err != nil {
		return "", err
	}
	b, err := encode(n)
	return string(b), err
}
