package pgcdc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/danube-messaging/danube-connect-go/services/source-postgres/internal/pgjson"
)

// Operations (the event's "op" and the "op" attribute).
const (
	OpInsert   = "INSERT"
	OpUpdate   = "UPDATE"
	OpDelete   = "DELETE"
	OpTruncate = "TRUNCATE"
	OpRead     = "READ" // a snapshot row
	OpBegin    = "BEGIN"
	OpCommit   = "COMMIT"
)

// column is a column of a captured table as the stream or the snapshot describes it.
type column struct {
	name string
	oid  uint32
}

// value is one column's value in a tuple: text form, NULL, or unchanged TOAST (not sent).
type value struct {
	data      []byte
	null      bool
	unchanged bool
}

// source is an event's "source" block.
type source struct {
	lsn        pglogrepl.LSN
	txid       uint32 // 0: none (snapshot)
	commitTime time.Time
	snapshot   bool
}

// encoder writes events; one per goroutine (it reuses its buffer).
type encoder struct {
	db  string
	buf []byte

	commitTime time.Time // the last commit_time written, and its text
	commitText []byte
}

// appendLSN writes lsn as PostgreSQL does (pg_lsn, %X/%X) without fmt.
func appendLSN(b []byte, lsn pglogrepl.LSN) []byte {
	const digits = "0123456789ABCDEF"
	hex := func(b []byte, v uint32) []byte {
		var tmp [8]byte
		i := len(tmp)
		for {
			i--
			tmp[i] = digits[v&0xF]
			v >>= 4
			if v == 0 {
				break
			}
		}
		return append(b, tmp[i:]...)
	}
	b = hex(b, uint32(lsn>>32))
	b = append(b, '/')
	return hex(b, uint32(lsn))
}

// encode returns the JSON event. before or after nil means JSON null; a value that cannot be
// encoded is an error naming table, column and position.
func (e *encoder) encode(op string, t Table, cols []column, before, after []value, src source) ([]byte, error) {
	b := e.buf[:0]
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, `","schema":`...)
	b = pgjson.AppendString(b, t.Schema)
	b = append(b, `,"table":`...)
	b = pgjson.AppendString(b, t.Name)
	var err error
	var unchanged []string
	for _, part := range []struct {
		name string
		vals []value
	}{{"before", before}, {"after", after}} {
		b = append(b, `,"`...)
		b = append(b, part.name...)
		b = append(b, `":`...)
		if part.vals == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '{')
		first := true
		for i, v := range part.vals {
			if i >= len(cols) {
				break
			}
			if v.unchanged {
				if part.name == "after" {
					unchanged = append(unchanged, cols[i].name)
				}
				continue
			}
			if v.data == nil && !v.null {
				continue // not part of the old key
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = pgjson.AppendString(b, cols[i].name)
			b = append(b, ':')
			if v.null {
				b = append(b, "null"...)
				continue
			}
			if b, err = pgjson.Append(b, cols[i].oid, v.data); err != nil {
				e.buf = b[:0]
				return nil, fmt.Errorf("table %s, column %q (type oid %d), LSN %s: cannot encode value: %w", t, cols[i].name, cols[i].oid, src.lsn, err)
			}
		}
		b = append(b, '}')
	}
	if len(unchanged) > 0 {
		b = append(b, `,"unchanged_toast":[`...)
		for i, c := range unchanged {
			if i > 0 {
				b = append(b, ',')
			}
			b = pgjson.AppendString(b, c)
		}
		b = append(b, ']')
	}
	b = e.appendSource(b, src)
	b = append(b, '}')
	e.buf = b
	return append([]byte(nil), b...), nil
}

func (e *encoder) appendSource(b []byte, src source) []byte {
	b = append(b, `,"source":{"db":`...)
	b = pgjson.AppendString(b, e.db)
	b = append(b, `,"lsn":"`...)
	b = appendLSN(b, src.lsn)
	b = append(b, `","txid":`...)
	if src.txid == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, uint64(src.txid), 10)
	}
	b = append(b, `,"commit_time":`...)
	if src.commitTime.IsZero() {
		b = append(b, "null"...)
	} else {
		if !src.commitTime.Equal(e.commitTime) { // the same for every event of a transaction
			e.commitTime = src.commitTime
			e.commitText = src.commitTime.UTC().AppendFormat(e.commitText[:0], time.RFC3339Nano)
		}
		b = append(b, '"')
		b = append(b, e.commitText...)
		b = append(b, '"')
	}
	b = append(b, `,"snapshot":`...)
	b = strconv.AppendBool(b, src.snapshot)
	return append(b, '}')
}

// marker returns a BEGIN or COMMIT event (TX_MARKERS).
func (e *encoder) marker(op string, src source) []byte {
	b := e.buf[:0]
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, '"')
	b = e.appendSource(b, src)
	b = append(b, '}')
	e.buf = b
	return append([]byte(nil), b...)
}

// routingKey is the row's primary key: the value's text for one column, a JSON array of the texts
// for several; "" when the table has no primary key or a key value is missing.
func routingKey(pk []int, vals []value) string {
	if len(pk) == 0 {
		return ""
	}
	for _, i := range pk {
		if i >= len(vals) || vals[i].null || vals[i].unchanged || vals[i].data == nil {
			return ""
		}
	}
	if len(pk) == 1 {
		return string(vals[pk[0]].data)
	}
	b := []byte{'['}
	for n, i := range pk {
		if n > 0 {
			b = append(b, ',')
		}
		b = pgjson.AppendString(b, vals[i].data)
	}
	return string(append(b, ']'))
}

// origin names a record in PostgreSQL's terms (runtime.SourceRecord.Origin: the error or the
// dead-letter descriptor of a record Danube refuses): the table, the primary key as a JSON object
// ({"id":7}) read back from the routing key, and where the record comes from (at).
func origin(t Table, cols []column, pk []int, key, at string) string {
	b := append([]byte("table "), t.String()...)
	var texts []string
	switch {
	case key == "" || len(pk) == 0:
	case len(pk) == 1:
		texts = []string{key}
	default:
		_ = json.Unmarshal([]byte(key), &texts)
	}
	if len(texts) == len(pk) && len(texts) > 0 {
		b = append(b, ", key {"...)
		for n, i := range pk {
			if n > 0 {
				b = append(b, ',')
			}
			b = pgjson.AppendString(b, cols[i].name)
			b = append(b, ':')
			v, err := pgjson.Append(b, cols[i].oid, []byte(texts[n]))
			if err != nil {
				v = pgjson.AppendString(b, texts[n])
			}
			b = v
		}
		b = append(b, '}')
	} else {
		b = append(b, ", no primary key"...)
	}
	b = append(b, ", "...)
	return string(append(b, at...))
}
