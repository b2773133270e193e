package transform

import (
	"fmt"
	"strings"

	"github.com/valyala/fastjson"
)

// Deletes is what unwrap does with a delete event.
type Deletes uint8

const (
	// DeletesDrop drops delete events (the sink never hears of them).
	DeletesDrop Deletes = iota
	// DeletesRewrite writes the deleted row (the event's before) with DELETED_FIELD true; every
	// other row gets it false: what ClickHouse's ReplacingMergeTree(version, is_deleted) wants.
	DeletesRewrite
	// DeletesTombstone passes an empty payload with the row's key: a marker for sinks that delete
	// by key.
	DeletesTombstone
)

// unwrapper turns a change event ({op, before, after, source, …}: source-postgres's, or
// Debezium's c/u/d/r) into the row it describes. Events that describe no row (TRUNCATE, BEGIN,
// COMMIT, a Debezium message m or truncate t) are dropped.
type unwrapper struct {
	deletes      Deletes
	opField      string  // "": none
	opAttribute  string  // "": none
	deletedField string  // DeletesRewrite's
	add          []added // event fields copied into the row
}

// added is an event field (a path: source.lsn) copied into the row under name.
type added struct {
	from path
	name string
}

// parseAdded parses "source.lsn" (named __lsn) or "source.lsn:lsn".
func parseAdded(spec string) (added, error) {
	from, name, named := strings.Cut(spec, ":")
	if from == "" || named && name == "" {
		return added{}, fmt.Errorf("%q: want a field path, or path:name", spec)
	}
	p := parsePath(from)
	if !named {
		name = "__" + p[len(p)-1]
	}
	return added{from: p, name: name}, nil
}

// operation is a change event's kind, whatever vocabulary the event uses.
type operation uint8

const (
	opNone operation = iota // not a row
	opUpsert
	opDelete
)

func classify(op string) operation {
	switch op {
	case "INSERT", "UPDATE", "READ", "c", "u", "r":
		return opUpsert
	case "DELETE", "d":
		return opDelete
	}
	return opNone
}

func (u *unwrapper) apply(s *state) (bool, error) {
	ev, err := s.object()
	if err != nil {
		return false, err
	}
	opv := ev.Get("op")
	if !is(opv, fastjson.TypeString) {
		return false, fmt.Errorf(`the payload has no "op" string field: not a change event`)
	}
	op := string(opv.GetStringBytes())
	var row *fastjson.Value
	switch classify(op) {
	case opNone:
		return false, nil
	case opUpsert:
		if row = ev.Get("after"); !is(row, fastjson.TypeObject) {
			return false, fmt.Errorf(`%s event without an "after" object`, op)
		}
	case opDelete:
		switch u.deletes {
		case DeletesDrop:
			return false, nil
		case DeletesTombstone:
			s.setPayload(nil)
			u.mark(s, nil, op)
			return true, nil
		}
		if row = ev.Get("before"); !is(row, fastjson.TypeObject) {
			return false, fmt.Errorf(`%s event without a "before" object (PostgreSQL sends the old row only with REPLICA IDENTITY FULL or its key)`, op)
		}
	}
	a := s.new()
	if u.deletes == DeletesRewrite {
		deleted := a.NewFalse()
		if classify(op) == opDelete {
			deleted = a.NewTrue()
		}
		row.Set(u.deletedField, deleted)
	}
	for _, f := range u.add {
		if v := ev.Get(f.from...); v != nil {
			row.Set(f.name, v)
		}
	}
	u.mark(s, row, op)
	s.setValue(row)
	return true, nil
}

// mark records the operation in the row and the attributes, as configured.
func (u *unwrapper) mark(s *state, row *fastjson.Value, op string) {
	if u.opField != "" && row != nil {
		row.Set(u.opField, s.new().NewString(op))
	}
	if u.opAttribute != "" && s.rec.Attributes[u.opAttribute] != op {
		s.setAttribute(u.opAttribute, op, false)
	}
}

// is reports whether v is present and of type t.
func is(v *fastjson.Value, t fastjson.Type) bool { return v != nil && v.Type() == t }
