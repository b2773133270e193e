package deploytest

import (
	"bufio"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// notMetrics are the PromQL words that are not metric names when they stand where one could:
// binary operators and modifiers, aggregation operators (which may be followed by "by (...)"
// rather than their argument list) and the float literals.
var notMetrics = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"sum": true, "avg": true, "count": true, "min": true, "max": true, "group": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true,
	"limitk": true, "limit_ratio": true, "inf": true, "nan": true,
}

// labelLists are the keywords followed by a parenthesised list of label names.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// nameMatcher finds a metric name given as a label matcher: {__name__="x"}.
var nameMatcher = regexp.MustCompile(`__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// MetricNames returns the metric names a PromQL expression selects, sorted, without duplicates.
// It is a tokenizer, not a parser: it skips strings, comments, label matchers ({...}), range and
// subquery brackets ([...]), numbers and durations, Grafana variables ($name), the label lists of
// by/without/on/ignoring/group_left/group_right, keywords, and identifiers followed by "(" (function
// calls); every other identifier is a metric name. Unbalanced brackets or strings are an error.
func MetricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '#': // a comment, to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{' || c == '[':
			end, err := skipGroup(s, i)
			if err != nil {
				return nil, err
			}
			if c == '{' {
				for _, m := range nameMatcher.FindAllStringSubmatch(s[i:end], -1) {
					names = append(names, m[1])
				}
			}
			i = end
		case c == '}' || c == ']':
			return nil, fmt.Errorf("unbalanced %q at %d in %q", c, i, expr)
		case c == '$': // a Grafana variable
			i++
			for i < len(s) && isIdent(s[i]) {
				i++
			}
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]): // a number or a duration
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdent(s[i]) {
				i++
			}
			word := s[start:i]
			j := i
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
				j++
			}
			lower := strings.ToLower(word)
			switch {
			case labelLists[lower]:
				if j < len(s) && s[j] == '(' {
					end, err := skipGroup(s, j)
					if err != nil {
						return nil, err
					}
					i = end
				}
			case notMetrics[lower]:
			case j < len(s) && s[j] == '(': // a function call
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// skipString returns the index just after the string literal starting at s[i].
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d in %q", i, s)
}

// skipGroup returns the index just after the bracket that closes the one at s[i], skipping
// strings and nested brackets.
func skipGroup(s string, i int) (int, error) {
	var stack []byte
	for j := i; j < len(s); j++ {
		switch c := s[j]; c {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '(', '[', '{':
			stack = append(stack, map[byte]byte{'(': ')', '[': ']', '{': '}'}[c])
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return 0, fmt.Errorf("unbalanced %q at %d in %q", c, j, s)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q at %d in %q", s[i], i, s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) }

// ExposedNames returns the names of the samples in a Prometheus text exposition (a /metrics
// page): histograms contribute their _bucket, _sum and _count series, as PromQL names them.
func ExposedNames(page string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if end := strings.IndexAny(line, "{ "); end > 0 {
			names[line[:end]] = true
		}
	}
	return names
}
