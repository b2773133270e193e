package transform

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fastjson"

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
	src string // quoted in errors: CEL's own ("no such overload") do not say where
}

// environments are the CEL environments, one per side, built once.
var environments = [2]func() (*cel.Env, error){
	sync.OnceValues(func() (*cel.Env, error) { return newEnvironment(Source) }),
	sync.OnceValues(func() (*cel.Env, error) { return newEnvironment(Sink) }),
}

func newEnvironment(side Side) (*cel.Env, error) {
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
	return cel.NewEnv(opts...)
}

// compile compiles src for side; want lists the result types the step accepts (dyn is always
// accepted and checked per record). The error quotes CEL's message: position and reason.
func compile(side Side, src string, want ...*cel.Type) (*expression, error) {
	env, err := environments[side]()
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
	return &expression{prg: prg, src: src}, nil
}

// eval evaluates the expression on s's record.
func (x *expression) eval(s *state) (ref.Val, error) {
	v, _, err := x.prg.Eval(s.activation())
	if err != nil {
		return nil, fmt.Errorf("%w, evaluating %s", err, x.src)
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
				s.cel.payload = jsonValue(v)
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

// adapter makes CEL values of the parsed payload lazily: an object or array is wrapped, not
// copied, and a number becomes an int, a uint or a double, whichever holds it exactly.
type adapter struct{ types.Adapter }

var celAdapter = adapter{types.DefaultTypeAdapter}

func (a adapter) NativeToValue(v any) ref.Val {
	if j, ok := v.(*fastjson.Value); ok {
		return jsonValue(j)
	}
	return a.Adapter.NativeToValue(v)
}

func jsonValue(v *fastjson.Value) ref.Val {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		return jsonObject{o: o, v: v}
	case fastjson.TypeArray:
		a, _ := v.Array()
		return types.NewDynamicList(celAdapter, a)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return types.String(b) // a copy: the parser's memory is reused
	case fastjson.TypeNumber:
		if i, err := v.Int64(); err == nil {
			return types.Int(i)
		}
		if u, err := v.Uint64(); err == nil {
			return types.Uint(u)
		}
		f, err := v.Float64()
		if err != nil {
			return types.NewErr("number %s: %v", v, err)
		}
		return types.Double(f)
	case fastjson.TypeTrue:
		return types.True
	case fastjson.TypeFalse:
		return types.False
	}
	return types.NullValue
}

// jsonObject is a JSON object as a CEL map: a field is looked up when an expression reads it.
type jsonObject struct {
	o *fastjson.Object
	v *fastjson.Value
}

var _ traits.Mapper = jsonObject{}

func (m jsonObject) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return nil, false
	}
	if e := m.o.Get(string(k)); e != nil {
		return jsonValue(e), true
	}
	return nil, false
}

func (m jsonObject) Get(key ref.Val) ref.Val {
	if v, found := m.Find(key); found {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

func (m jsonObject) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

func (m jsonObject) Size() ref.Val { return types.Int(m.o.Len()) }

func (m jsonObject) Type() ref.Type { return types.MapType }

// Value is the object itself, so that a map step returning it (or a part of it) writes it as it
// was, in its order.
func (m jsonObject) Value() any { return m.v }

// The rest goes through an ordinary CEL map of the fields.
func (m jsonObject) Iterator() traits.Iterator { return m.std().Iterator() }

func (m jsonObject) Equal(other ref.Val) ref.Val { return m.std().Equal(other) }

func (m jsonObject) ConvertToNative(t reflect.Type) (any, error) { return m.std().ConvertToNative(t) }

func (m jsonObject) ConvertToType(t ref.Type) ref.Val {
	if t == types.MapType {
		return m
	}
	return m.std().ConvertToType(t)
}

func (m jsonObject) std() traits.Mapper {
	fields := make(map[string]any, m.o.Len())
	m.o.Visit(func(k []byte, v *fastjson.Value) { fields[string(k)] = v })
	return types.NewStringInterfaceMap(celAdapter, fields)
}

// toJSON makes a CEL result a JSON value in a: parts of the payload are used as they are, new
// values are built.
func toJSON(v ref.Val, a *fastjson.Arena) (*fastjson.Value, error) {
	switch n := v.Value().(type) {
	case *fastjson.Value:
		return n, nil
	case []*fastjson.Value:
		arr := a.NewArray()
		for i, e := range n {
			arr.SetArrayItem(i, e)
		}
		return arr, nil
	}
	switch v := v.(type) {
	case types.String:
		return a.NewString(string(v)), nil
	case types.Bytes:
		return a.NewString(base64.StdEncoding.EncodeToString(v)), nil
	case types.Int:
		return a.NewNumberString(strconv.FormatInt(int64(v), 10)), nil
	case types.Uint:
		return a.NewNumberString(strconv.FormatUint(uint64(v), 10)), nil
	case types.Double:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%v has no JSON form", float64(v))
		}
		return a.NewNumberFloat64(float64(v)), nil
	case types.Bool:
		if v {
			return a.NewTrue(), nil
		}
		return a.NewFalse(), nil
	case types.Null:
		return a.NewNull(), nil
	case types.Timestamp:
		return a.NewString(v.UTC().Format(time.RFC3339Nano)), nil
	case types.Duration:
		return a.NewString(v.String()), nil
	case traits.Mapper:
		return mapToJSON(v, a)
	case traits.Lister:
		arr := a.NewArray()
		for i := range int(v.Size().(types.Int)) {
			e, err := toJSON(v.Get(types.Int(i)), a)
			if err != nil {
				return nil, err
			}
			arr.SetArrayItem(i, e)
		}
		return arr, nil
	}
	return nil, fmt.Errorf("%s has no JSON form", typeName(v))
}

// mapToJSON writes a CEL map as a JSON object, its fields sorted by name (a CEL map has no order).
func mapToJSON(m traits.Mapper, a *fastjson.Arena) (*fastjson.Value, error) {
	var fields []field
	if lit, ok := m.Value().(map[ref.Val]ref.Val); ok { // a map literal: no iterator, no second lookup
		fields = make([]field, 0, len(lit))
		for k, v := range lit {
			fields = append(fields, field{k, v})
		}
	} else {
		for it := m.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			fields = append(fields, field{k, m.Get(k)})
		}
	}
	for _, f := range fields {
		if _, ok := f.k.(types.String); !ok {
			return nil, fmt.Errorf("a map key must be a string to be written as JSON, got %s", typeName(f.k))
		}
	}
	slices.SortFunc(fields, func(x, y field) int { return strings.Compare(string(x.k.(types.String)), string(y.k.(types.String))) })
	obj := a.NewObject()
	for _, f := range fields {
		e, err := toJSON(f.v, a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.k, err)
		}
		obj.Set(string(f.k.(types.String)), e)
	}
	return obj, nil
}

// field is an entry of a CEL map.
type field struct{ k, v ref.Val }

// text returns a CEL result as text: a string as it is, anything else as its JSON.
func text(v ref.Val, a *fastjson.Arena) (string, error) {
	if s, ok := v.(types.String); ok {
		return string(s), nil
	}
	j, err := toJSON(v, a)
	if err != nil {
		return "", err
	}
	return string(j.MarshalTo(nil)), nil
}
