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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

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

// Apply runs the chain on r. keep false means a step dropped the record; an error is a
// *StepError and leaves r as it was.
func (c *Chain) Apply(r *Record) (keep bool, err error) {
	if len(c.steps) == 0 {
		return true, nil
	}
	s := state{rec: *r}
	for _, st := range c.steps {
		if st.fields && len(s.rec.Payload) == 0 && !s.parsed {
			continue
		}
		start := time.Now()
		keep, err := st.apply(&s)
		st.stats.record(start, keep, err)
		if err != nil {
			return false, &StepError{Step: st.name, Type: st.typ, Err: err}
		}
		if !keep {
			return false, nil
		}
	}
	if s.dirty {
		b, err := encode(s.val)
		if err != nil {
			last := c.steps[len(c.steps)-1]
			return false, &StepError{Step: last.name, Type: last.typ, Err: err}
		}
		s.rec.Payload = b
	}
	*r = s.rec
	return true, nil
}

// state is one record on its way through the chain: the record and, once a step asked for it,
// its payload parsed.
type state struct {
	rec    Record
	val    any   // the payload as JSON values (json.Number for numbers), once parsed
	parsed bool  // val holds the payload
	bad    error // why the payload is not JSON, once tried
	dirty  bool  // val changed since it was parsed: encode it at the end
	owned  bool  // rec.Attributes is the chain's own copy
	cel    celValues
}

// value returns the payload parsed as JSON, or why it is not JSON.
func (s *state) value() (any, error) {
	if !s.parsed && s.bad == nil {
		s.val, s.bad = decode(s.rec.Payload)
		s.parsed = s.bad == nil
	}
	return s.val, s.bad
}

// object returns the payload as a JSON object, or why it is not one.
func (s *state) object() (map[string]any, error) {
	v, err := s.value()
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the payload is %s, not a JSON object", describe(v))
	}
	return m, nil
}

// setValue replaces the payload with v, encoded at the end.
func (s *state) setValue(v any) {
	s.val, s.parsed, s.bad, s.dirty = v, true, nil, true
	s.cel = celValues{}
}

// setPayload replaces the payload with raw bytes.
func (s *state) setPayload(b []byte) {
	s.rec.Payload = b
	s.val, s.parsed, s.bad, s.dirty = nil, false, nil, false
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

// decode parses a JSON payload keeping numbers exact (json.Number): a bigint id or an LSN must
// come out as it went in.
func decode(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, errors.New("the payload is empty, not JSON")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("the payload is not JSON: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("the payload is not JSON: data after the value at byte %d", d.InputOffset())
	}
	return v, nil
}

// encode writes v as JSON without escaping <, > and & (a payload is not HTML).
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, fmt.Errorf("encode the payload as JSON: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// describe names the JSON type of v for an error.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int64, uint64:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}
