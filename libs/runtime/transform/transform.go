// Package transform is the runtime's transform stage: an ordered chain of steps that filter,
// reshape, route and mask records, in a source before they are published and in a sink before the
// connector writes them. The chain is configured by environment only: TRANSFORMS lists the steps
// in order and TRANSFORM_<STEP>_* configure each (see Steps); expressions are CEL
// (cel.dev/cel-go), compiled and type-checked when the configuration is loaded.
//
// A step keeps, changes or drops a record, or fails on it: the runtime then dead-letters the record
// with the step and the reason. The payload is parsed once per record, when the first step needs
// it, and encoded once, after the last step that changed it.
package transform

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fastjson"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// Record is a record as the steps see it. Apply changes its fields in place; it never writes into
// Attributes (a source may share one map between records) but replaces it with a changed copy.
type Record struct {
	Payload    []byte
	Attributes map[string]string
	Key        string
	Topic      string          // a source's destination topic; the topic a sink's message came from
	Message    *danube.Message // in a sink, the Danube message (id, offset, publish time); nil in a source
}

// StepError is a step's failure on one record.
type StepError struct {
	Step string // the step's name in TRANSFORMS
	Type string // its type
	Err  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("transform %q (%s): %v", e.Step, e.Type, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Chain is a compiled, ordered list of steps. It is safe for concurrent use; the zero value (no
// steps) keeps every record unchanged.
type Chain struct {
	steps []*step
}

// Copy returns a chain with the same steps and counters of its own, for a runner that exports
// them under its own name (one per mapping of a bridge).
func (c *Chain) Copy() *Chain {
	out := &Chain{steps: make([]*step, len(c.steps))}
	for i, st := range c.steps {
		out.steps[i] = &step{name: st.name, typ: st.typ, apply: st.apply, fields: st.fields}
	}
	return out
}

// Len returns the number of steps.
func (c *Chain) Len() int { return len(c.steps) }

// step is one compiled step and its counters.
type step struct {
	name, typ string
	apply     func(s *state) (keep bool, err error)
	// fields: a step on the payload's fields, which passes a record with an empty payload (a
	// tombstone) unchanged.
	fields bool
	stats  stats
}

// Apply runs the chain on r. keep false means a step dropped the record (r unchanged). An error
// is a *StepError; r then holds the record as the steps before the failing one left it, so that
// what a mask step removed does not reappear in a dead letter.
func (c *Chain) Apply(r *Record) (keep bool, err error) {
	if len(c.steps) == 0 {
		return true, nil
	}
	s := states.Get().(*state) // an expression's activation holds it: it would escape per record
	*s = state{rec: *r}
	defer s.release()
	start := time.Now() // each step's end is the next one's start: one clock read per step
	for _, st := range c.steps {
		if st.fields && len(s.rec.Payload) == 0 && !s.parsed {
			continue
		}
		keep, err := st.apply(s)
		start = st.stats.record(start, keep, err)
		if err != nil {
			s.flush(r)
			return false, &StepError{Step: st.name, Type: st.typ, Err: err}
		}
		if !keep {
			return false, nil
		}
	}
	s.flush(r)
	c.steps[len(c.steps)-1].stats.nanos.Add(int64(time.Since(start))) // the encode counts as the last step's
	return true, nil
}

// flush writes the record into r, its payload encoded if a step changed it.
func (s *state) flush(r *Record) {
	if s.dirty { // sized for what steps usually do (a few fields more or less): one allocation
		s.rec.Payload = s.root.MarshalTo(make([]byte, 0, len(r.Payload)+len(r.Payload)/4+64))
	}
	*r = s.rec
}

// state is one record on its way through the chain: the record and, once a step asked for it,
// its payload parsed. The parsed values and the values steps build live in a pooled parser and
// arena until Apply returns.
type state struct {
	rec    Record
	root   *fastjson.Value // the payload parsed (or built by a step), once a step asked for it
	parsed bool            // root holds the payload
	bad    error           // why the payload is not JSON, once tried
	dirty  bool            // root changed since it was parsed: encode it at the end
	owned  bool            // rec.Attributes is the chain's own copy
	parser *fastjson.Parser
	arena  *fastjson.Arena
	cel    celValues
}

// fastjson keeps an object's field order and a number's text, so that a payload a step changes
// keeps its shape and its exact numbers (a bigint id, an LSN), and parses several times faster
// than a generic decoder: the chain's cost is mostly this parse and the encode.
var (
	parsers fastjson.ParserPool
	arenas  fastjson.ArenaPool
	states  = sync.Pool{New: func() any { return new(state) }}
)

// release returns the parser, the arena and s itself: nothing they hold may be used after.
func (s *state) release() {
	if s.parser != nil {
		parsers.Put(s.parser)
	}
	if s.arena != nil {
		arenas.Put(s.arena)
	}
	*s = state{}
	states.Put(s)
}

// new returns the arena new values are made in.
func (s *state) new() *fastjson.Arena {
	if s.arena == nil {
		s.arena = arenas.Get()
	}
	return s.arena
}

// value returns the payload parsed as JSON, or why it is not JSON.
func (s *state) value() (*fastjson.Value, error) {
	if s.parsed || s.bad != nil {
		return s.root, s.bad
	}
	if len(s.rec.Payload) == 0 {
		s.bad = errors.New("the payload is empty, not JSON")
		return nil, s.bad
	}
	if s.parser == nil {
		s.parser = parsers.Get()
	}
	v, err := s.parser.ParseBytes(s.rec.Payload)
	if err != nil {
		s.bad = fmt.Errorf("the payload is not JSON: %s", strings.TrimPrefix(err.Error(), "cannot parse JSON: "))
		return nil, s.bad
	}
	s.root, s.parsed = v, true
	return v, nil
}

// object returns the payload as a JSON object, or why it is not one.
func (s *state) object() (*fastjson.Value, error) {
	v, err := s.value()
	if err != nil {
		return nil, err
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("the payload is %s, not a JSON object", describe(v))
	}
	return v, nil
}

// setValue replaces the payload with v, encoded at the end.
func (s *state) setValue(v *fastjson.Value) {
	s.root, s.parsed, s.bad, s.dirty = v, true, nil, true
	s.cel = celValues{}
}

// setPayload replaces the payload with raw bytes (which must not point into the parser).
func (s *state) setPayload(b []byte) {
	s.rec.Payload = b
	s.root, s.parsed, s.bad, s.dirty = nil, false, nil, false
	s.cel = celValues{}
}

// changed notes that a step changed the parsed payload in place.
func (s *state) changed() {
	s.dirty = true
	s.cel.payload = nil
}

// setAttribute sets (or with remove, deletes) an attribute on the chain's own copy of the map.
func (s *state) setAttribute(k, v string, remove bool) {
	if !s.owned {
		s.rec.Attributes = maps.Clone(s.rec.Attributes)
		if s.rec.Attributes == nil {
			s.rec.Attributes = map[string]string{}
		}
		s.owned = true
	}
	if remove {
		delete(s.rec.Attributes, k)
	} else {
		s.rec.Attributes[k] = v
	}
	s.cel.attributes = nil
}

// describe names the JSON type of v for an error.
func describe(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeObject:
		return "an object"
	case fastjson.TypeArray:
		return "an array"
	case fastjson.TypeString:
		return "a string"
	case fastjson.TypeNumber:
		return "a number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "a boolean"
	}
	return "null"
}
