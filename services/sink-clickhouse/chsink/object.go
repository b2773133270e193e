package chsink

import (
	"bytes"
	"encoding/json"
	"errors"
)

// errNotObject: the payload is not one JSON object.
var errNotObject = errors.New("not a JSON object")

// eachField calls fn with the name and the raw value of every top-level field of the JSON object
// in payload, without decoding the values or copying them: raw points into payload. It checks the
// whole payload is valid JSON first (encoding/json's validator), so the walk below only has to
// find the boundaries. The standard library has no streaming object reader outside the jsonv2
// experiment, and decoding into map[string]json.RawMessage cost four times as much.
func eachField(payload []byte, fn func(name string, raw []byte) error) error {
	if !json.Valid(payload) {
		return errNotObject
	}
	i := skipSpace(payload, 0)
	if i >= len(payload) || payload[i] != '{' {
		return errNotObject
	}
	i = skipSpace(payload, i+1)
	if payload[i] == '}' {
		return nil
	}
	for {
		end := stringEnd(payload, i)
		key := payload[i:end]
		name := string(key[1 : len(key)-1])
		if bytes.IndexByte(key, '\\') >= 0 {
			if err := json.Unmarshal(key, &name); err != nil {
				return err
			}
		}
		i = skipSpace(payload, end)
		i = skipSpace(payload, i+1) // ':'
		vend := valueEnd(payload, i)
		if err := fn(name, payload[i:vend]); err != nil {
			return err
		}
		i = skipSpace(payload, vend)
		if payload[i] == '}' {
			return nil
		}
		i = skipSpace(payload, i+1) // ','
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the (valid) JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
