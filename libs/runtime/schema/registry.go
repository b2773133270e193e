package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// ErrUnusable marks a registered schema no connector can use: of a type it does not read
// (bytes, string, number, protobuf), or that does not compile.
var ErrUnusable = errors.New("unusable schema")

// Registered is one version of a subject as the registry holds it, compiled.
type Registered struct {
	Schema
	Subject string
	ID      uint64 // the subject's id
	Version uint32
	check   *Validator
}

// Validator returns the version's validator.
func (r *Registered) Validator() *Validator { return r.check }

// Cache fetches registered schemas by id and version, once each: a sink sees the id and version
// on every message. It is safe for concurrent use.
type Cache struct {
	reg *danube.SchemaRegistry
	mu  sync.Mutex
	m   map[cacheKey]*Registered
}

type cacheKey struct {
	id      uint64
	version uint32
}

// NewCache returns a cache over reg.
func NewCache(reg *danube.SchemaRegistry) *Cache {
	return &Cache{reg: reg, m: map[cacheKey]*Registered{}}
}

// Get returns version of the subject with id, fetching it the first time. A schema of a type a
// connector cannot read (bytes, string, number, protobuf) is an error.
func (c *Cache) Get(ctx context.Context, id uint64, version uint32) (*Registered, error) {
	k := cacheKey{id, version}
	c.mu.Lock()
	r := c.m[k]
	c.mu.Unlock()
	if r != nil {
		return r, nil
	}
	s, err := c.reg.Get(ctx, id, version)
	if err != nil {
		return nil, err
	}
	typ, ok := typeOf(s.Type)
	if !ok {
		return nil, fmt.Errorf("%w: subject %q version %d is %s: only json_schema and avro are read", ErrUnusable, s.Subject, s.Version, s.Type)
	}
	r = &Registered{Schema: Schema{Type: typ, Text: s.Definition}, Subject: s.Subject, ID: s.ID, Version: s.Version}
	if r.check, err = r.Compile(); err != nil {
		return nil, fmt.Errorf("%w: subject %q version %d: %w", ErrUnusable, s.Subject, s.Version, err)
	}
	c.mu.Lock()
	c.m[k] = r
	c.mu.Unlock()
	return r, nil
}

// AvroToJSON decodes an Avro payload of v's schema and writes it as JSON: unions as their value,
// bytes as base64, timestamps and dates as RFC 3339 text, times of day as 15:04:05.123, decimals
// as exact numbers.
func (v *Validator) AvroToJSON(payload []byte) ([]byte, error) {
	if v.avro == nil {
		return nil, fmt.Errorf("not an Avro schema")
	}
	out, err := v.decodeAvro(payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(jsonable(unwrapUnions(out, v.avro)))
}

// unwrapUnions replaces, in v decoded with s, each union value hamba leaves wrapped (a record,
// array or map branch decodes as {"<type name>": value}; a primitive branch as the value) by the
// value, so that JSON readers see the row, not the union.
func unwrapUnions(v any, s avro.Schema) any {
	switch s := s.(type) {
	case *avro.RecordSchema:
		if m, ok := v.(map[string]any); ok {
			for _, f := range s.Fields() {
				if e, ok := m[f.Name()]; ok {
					m[f.Name()] = unwrapUnions(e, f.Type())
				}
			}
		}
	case *avro.UnionSchema:
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for _, t := range s.Types() {
				name := string(t.Type())
				if n, ok := t.(avro.NamedSchema); ok {
					name = n.FullName()
				}
				if e, ok := m[name]; ok {
					return unwrapUnions(e, t)
				}
			}
		}
	case *avro.ArraySchema:
		if a, ok := v.([]any); ok {
			for i, e := range a {
				a[i] = unwrapUnions(e, s.Items())
			}
		}
	case *avro.MapSchema:
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				m[k] = unwrapUnions(e, s.Values())
			}
		}
	}
	return v
}

// jsonable replaces what encoding/json would write wrongly: a decimal (*big.Rat) as a fraction.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	case *big.Rat:
		return json.Number(decimal(v))
	case time.Duration: // time-millis, time-micros: a time of day
		return timeOfDay(v)
	}
	return v
}

// timeOfDay writes d as SQL's TIME does: 15:04:05, with the fraction it has (15:04:05.123).
func timeOfDay(d time.Duration) string {
	s := fmt.Sprintf("%02d:%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second))
	if frac := d % time.Second / time.Microsecond; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	return s
}

// decimal writes r exactly in decimal notation (an Avro decimal's denominator is a power of 10).
func decimal(r *big.Rat) string {
	for digits := 0; digits < 80; digits++ {
		s := r.FloatString(digits)
		if back, ok := new(big.Rat).SetString(s); ok && back.Cmp(r) == 0 {
			return s
		}
	}
	return r.FloatString(80)
}
