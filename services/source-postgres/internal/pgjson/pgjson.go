// Package pgjson writes PostgreSQL values, as the text form logical replication and COPY send, as
// JSON the way CDC consumers expect: integers, floats and booleans as JSON numbers and booleans,
// numeric as strings (no float loss), timestamps in RFC 3339, bytea in base64, json and jsonb
// embedded, arrays as arrays, everything else (uuid, enums, unknown types) as its text form.
//
// Values must come from a session with TimeZone=UTC and DateStyle=ISO (the connector sets both).
package pgjson

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type OIDs with a JSON form other than a string (pg_type.dat).
const (
	Bool        = 16
	Bytea       = 17
	Int8        = 20
	Int2        = 21
	Int4        = 23
	OID         = 26
	JSON        = 114
	Float4      = 700
	Float8      = 701
	Date        = 1082
	Timestamp   = 1114
	Timestamptz = 1184
	Numeric     = 1700
	JSONB       = 3802
)

// arrays maps array type OIDs to their element type OIDs (the arrays of the types above and of the
// common string types; arrays of other types are sent as their text form).
var arrays = map[uint32]uint32{
	1000: Bool, 1001: Bytea, 1016: Int8, 1005: Int2, 1007: Int4, 1028: OID, 199: JSON, 1021: Float4,
	1022: Float8, 1182: Date, 1115: Timestamp, 1185: Timestamptz, 1231: Numeric, 3807: JSONB,
	1009: 25, 1015: 1043, 1014: 1042, 2951: 2950, 1183: 1083, 1187: 1186,
}

// Append appends the JSON form of the value of type oid whose text form is text. The error names
// what is wrong with the text; the caller adds table, column and position.
func Append(dst []byte, oid uint32, text []byte) ([]byte, error) {
	switch oid {
	case Int2, Int4, Int8, OID:
		if len(text) == 0 {
			return dst, errors.New("empty integer")
		}
		for i, c := range text {
			if !(c >= '0' && c <= '9' || c == '-' && i == 0) {
				return dst, fmt.Errorf("invalid integer %q", text)
			}
		}
		return append(dst, text...), nil
	case Bool:
		switch string(text) {
		case "t", "true":
			return append(dst, "true"...), nil
		case "f", "false":
			return append(dst, "false"...), nil
		}
		return dst, fmt.Errorf("invalid boolean %q", text)
	case Float4, Float8:
		if _, err := strconv.ParseFloat(string(text), 64); err != nil || !finite(text) {
			if string(text) == "NaN" || string(text) == "Infinity" || string(text) == "-Infinity" {
				return AppendString(dst, text), nil
			}
			return dst, fmt.Errorf("invalid float %q", text)
		}
		return append(dst, text...), nil
	case JSON, JSONB:
		return append(dst, text...), nil
	case Bytea:
		b, ok := text, len(text) >= 2 && text[0] == '\\' && text[1] == 'x'
		if !ok {
			return dst, fmt.Errorf("bytea %.20q is not in hex format (set bytea_output=hex)", text)
		}
		raw := make([]byte, hex.DecodedLen(len(b)-2))
		if _, err := hex.Decode(raw, b[2:]); err != nil {
			return dst, fmt.Errorf("invalid bytea: %w", err)
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		return append(dst, '"'), nil
	case Timestamptz, Timestamp:
		return appendTime(dst, oid, text), nil
	}
	if elem, ok := arrays[oid]; ok {
		return appendArray(dst, elem, text)
	}
	return AppendString(dst, text), nil
}

func finite(text []byte) bool {
	for _, c := range text {
		if c == 'N' || c == 'I' || c == 'n' || c == 'i' {
			return false
		}
	}
	return true
}

// appendTime writes a timestamp in UTC as ISO 8601: RFC 3339 for the years 0000 to 9999 (1 BC is
// year 0000, PostgreSQL's calendar being the proleptic Gregorian one), and beyond them ISO 8601's
// expanded years as java.time's Instant writes them: "+12024-02-29T11:14:15Z", "-0043-03-15T12:00:00Z"
// (44 BC). PostgreSQL's infinity and -infinity stay the strings "infinity" and "-infinity". A
// timestamp without time zone is written as UTC. Text in no form PostgreSQL writes keeps its text.
func appendTime(dst []byte, oid uint32, text []byte) []byte {
	if out, ok := appendISOTime(dst, oid, text); ok {
		return out
	}
	t, ok := parseTime(string(text), oid == Timestamptz)
	if !ok {
		return AppendString(dst, text)
	}
	dst = append(dst, '"')
	switch y := t.Year(); {
	case y > 9999:
		dst = append(dst, '+')
		dst = strconv.AppendInt(dst, int64(y), 10)
	case y < 0:
		dst = append(dst, '-')
		dst = appendPadded(dst, -y, 4)
	default:
		dst = appendPadded(dst, y, 4)
	}
	// the rest of RFC 3339, from a year Go's formatting handles
	return append(t.AddDate(2000-t.Year(), 0, 0).AppendFormat(dst, "-01-02T15:04:05.999999999Z07:00"), '"')
}

func appendPadded(dst []byte, v, width int) []byte {
	for n := len(strconv.Itoa(v)); n < width; n++ {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(v), 10)
}

// parseTime reads PostgreSQL's ISO text of a timestamp — "Y-MM-DD HH:MM:SS[.frac]" with a year of
// four or more digits, then for timestamptz an offset "+HH[:MM[:SS]]", then " BC" for years before
// 1 — as a time in UTC.
func parseTime(s string, tz bool) (time.Time, bool) {
	bc := strings.HasSuffix(s, " BC")
	s = strings.TrimSuffix(s, " BC")
	i := strings.IndexByte(s, '-')
	if i < 4 {
		return time.Time{}, false
	}
	year, err := strconv.Atoi(s[:i])
	if err != nil || year < 1 {
		return time.Time{}, false
	}
	if bc {
		year = 1 - year
	}
	s = s[i:] // -MM-DD HH:MM:SS[.frac][offset]
	offset := 0
	if tz {
		j := strings.LastIndexAny(s, "+-")
		if j < len("-01-02 15:04:05") {
			return time.Time{}, false
		}
		sign := 1
		if s[j] == '-' {
			sign = -1
		}
		for k, part := range strings.Split(s[j+1:], ":") {
			v, err := strconv.Atoi(part)
			if err != nil || len(part) != 2 || k > 2 {
				return time.Time{}, false
			}
			offset += sign * v * []int{3600, 60, 1}[k]
		}
		s = s[:j]
	}
	// Go's parser takes years 0000 to 9999 only: parse the rest with year 2000 (a leap year, so
	// February 29 passes) and put the year back.
	t, err := time.Parse("2006-01-02 15:04:05.999999999", "2000"+s)
	if err != nil {
		return time.Time{}, false
	}
	if t.Month() == time.February && t.Day() == 29 && !leap(year) {
		return time.Time{}, false
	}
	return time.Date(year, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC).Add(-time.Duration(offset) * time.Second), true
}

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// appendISOTime is appendTime's fast path for what PostgreSQL writes in the connector's sessions
// (DateStyle ISO, TimeZone UTC): "2006-01-02 15:04:05[.fraction]", plus "+00" for timestamptz,
// becomes "2006-01-02T15:04:05[.fraction]Z" with no parsing; anything else is left to time.Parse.
func appendISOTime(dst []byte, oid uint32, text []byte) ([]byte, bool) {
	n := len(text)
	if oid == Timestamptz {
		if n < 3 || string(text[n-3:]) != "+00" {
			return dst, false
		}
		n -= 3
	}
	const base = len("2006-01-02 15:04:05")
	if n < base || n == base+1 || n > base+10 {
		return dst, false
	}
	for i, c := range text[:n] {
		switch {
		case i == 4 || i == 7:
			if c != '-' {
				return dst, false
			}
		case i == 10:
			if c != ' ' {
				return dst, false
			}
		case i == 13 || i == 16:
			if c != ':' {
				return dst, false
			}
		case i == base:
			if c != '.' {
				return dst, false
			}
		case c < '0' || c > '9':
			return dst, false
		}
	}
	if n > base && text[n-1] == '0' { // a fraction with trailing zeros: not PostgreSQL's form
		return dst, false
	}
	dst = append(dst, '"')
	dst = append(dst, text[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, text[11:n]...)
	return append(dst, 'Z', '"'), true
}

// appendArray parses a PostgreSQL array literal ({1,2,NULL,"a b"}, nested for several dimensions).
func appendArray(dst []byte, elem uint32, text []byte) ([]byte, error) {
	p := arrayParser{src: text}
	if len(text) > 0 && text[0] == '[' { // explicit bounds: [0:1]={…}
		i := 0
		for i < len(text) && text[i] != '=' {
			i++
		}
		p.pos = i + 1
	}
	out, err := p.value(dst, elem)
	if err != nil {
		return dst, fmt.Errorf("invalid array %.40q: %w", text, err)
	}
	return out, nil
}

type arrayParser struct {
	src []byte
	pos int
	buf []byte
}

func (p *arrayParser) value(dst []byte, elem uint32) ([]byte, error) {
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return dst, errors.New("want '{'")
	}
	p.pos++
	dst = append(dst, '[')
	first := true
	for {
		if p.pos >= len(p.src) {
			return dst, errors.New("unterminated")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			return append(dst, ']'), nil
		}
		if !first {
			if p.src[p.pos] != ',' {
				return dst, fmt.Errorf("want ',' at %d", p.pos)
			}
			p.pos++
			dst = append(dst, ',')
		}
		first = false
		var err error
		switch {
		case p.pos < len(p.src) && p.src[p.pos] == '{':
			dst, err = p.value(dst, elem)
		case p.pos < len(p.src) && p.src[p.pos] == '"':
			p.buf = p.buf[:0]
			p.pos++
			for ; p.pos < len(p.src) && p.src[p.pos] != '"'; p.pos++ {
				if p.src[p.pos] == '\\' {
					p.pos++
					if p.pos >= len(p.src) {
						return dst, errors.New("unterminated escape")
					}
				}
				p.buf = append(p.buf, p.src[p.pos])
			}
			if p.pos >= len(p.src) {
				return dst, errors.New("unterminated quote")
			}
			p.pos++
			dst, err = Append(dst, elem, p.buf)
		default:
			start := p.pos
			for p.pos < len(p.src) && p.src[p.pos] != ',' && p.src[p.pos] != '}' {
				p.pos++
			}
			item := p.src[start:p.pos]
			if len(item) == 4 && (string(item) == "NULL" || string(item) == "null") {
				dst = append(dst, "null"...)
			} else {
				dst, err = Append(dst, elem, item)
			}
		}
		if err != nil {
			return dst, err
		}
	}
}

// AppendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func AppendString[S string | []byte](dst []byte, s S) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
