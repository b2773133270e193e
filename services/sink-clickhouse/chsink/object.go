package chsink

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

// errNotObject: the payload is not one JSON object.
var errNotObject = errors.New("not a JSON object")

// field is one top-level field of a JSON object: its name (unescaped) and its raw value, both
// pointing into the payload unless the name had escapes.
type field struct{ name, raw []byte }

// eachField calls fn with the name and the raw value of every top-level field of the JSON object
// in payload, without decoding the values or copying them: raw points into payload. The whole
// payload is checked to be valid JSON (RFC 8259, as encoding/json's Valid accepts it) in the same
// pass that finds the fields, and fn runs only once it is: a payload that is not a JSON object is
// reported as such, whatever its fields hold. The standard library has no streaming object reader
// outside the jsonv2 experiment; json.Valid followed by a walk cost twice the scan, and decoding
// into map[string]json.RawMessage four times.
func eachField(payload []byte, fn func(name, raw []byte) error) error {
	var buf [16]field
	fields, ok := scanObject(buf[:0], payload)
	if !ok {
		return errNotObject
	}
	for _, f := range fields {
		if err := fn(f.name, f.raw); err != nil {
			return err
		}
	}
	return nil
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// scanObject appends the fields of the object in b to dst; ok is false unless b is exactly one
// valid JSON object (surrounding white space allowed).
func scanObject(dst []field, b []byte) (_ []field, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return dst, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return dst, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, false
		}
		end, escaped, ok := scanString(b, i)
		if !ok {
			return dst, false
		}
		name := b[i+1 : end-1]
		if escaped {
			var s string
			if json.Unmarshal(b[i:end], &s) != nil {
				return dst, false
			}
			name = []byte(s)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return dst, false
		}
		i = skipSpace(b, i+1)
		vend, ok := scanValue(b, i, 1)
		if !ok {
			return dst, false
		}
		dst = append(dst, field{name: name, raw: b[i:vend]})
		i = skipSpace(b, vend)
		if i >= len(b) {
			return dst, false
		}
		switch b[i] {
		case '}':
			return dst, skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return dst, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString checks the string starting at b[i] == '"' and returns the index after it, and
// whether it has escapes. Runs of plain bytes are skipped eight at a time: string values are most
// of a message's bytes.
func scanString(b []byte, i int) (end int, escaped, ok bool) {
	for i++; i < len(b); i++ {
		for len(b)-i >= 8 && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return 0, false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return 0, false, false
				}
				i += 4
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		}
	}
	return 0, false, false
}

// plain8 reports whether none of the eight bytes in w ends or escapes a string or is a control
// character ('"', '\\', < 0x20), with the bit tricks of "Bit Twiddling Hacks" (haszero, hasless).
func plain8(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := w^(ones*'"'), w^(ones*'\\')
	special := (quote - ones) &^ quote
	special |= (backslash - ones) &^ backslash
	special |= (w - ones*0x20) &^ w
	return special&highs == 0
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanValue checks the JSON value starting at b[i] and returns the index after it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case c == '{' || c == '[':
		return scanContainer(b, i, depth)
	case c == '-' || isDigit(c):
		return scanNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return 0, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, true
}

// scanContainer checks the object or array starting at b[i].
func scanContainer(b []byte, i, depth int) (int, bool) {
	if depth >= maxDepth {
		return 0, false
	}
	obj := b[i] == '{'
	closing := byte(']')
	if obj {
		closing = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closing {
		return i + 1, true
	}
	for {
		if obj {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			end, _, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			i = skipSpace(b, i+1)
		}
		end, ok := scanValue(b, i, depth+1)
		if !ok {
			return 0, false
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case closing:
			return i + 1, true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return 0, false
		}
	}
}
