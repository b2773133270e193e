package config

import (
	"sort"
	"strings"

	"github.com/agnivade/levenshtein"
)

// Warnings lists the environment variables that look like misspellings of cfg's variables
// (SUBSCRIPTON_TYPE for SUBSCRIPTION_TYPE, DANUBE_TOKEN_FIEL for DANUBE_TOKEN_FILE): an unknown
// variable is otherwise ignored without a word. environ nil means os.Environ().
func Warnings(cfg any, environ []string) []string {
	fields, ok := fieldsOf(cfg)
	if !ok {
		return nil
	}
	known := map[string]bool{}
	for _, f := range fields {
		known[f.Key] = true
		if f.Secret {
			known[f.Key+"_FILE"] = true
		}
	}
	for _, x := range expanders(fields) { // they check their own variables
		for _, kv := range x.Expanded() {
			known[kv[0]] = true
		}
	}
	out := unread(fields)
	for _, kv := range environOrOS(environ) {
		name, _, _ := strings.Cut(kv, "=")
		if name == "" || known[name] || strings.ToUpper(name) != name {
			continue
		}
		if best := closest(name, known); best != "" {
			out = append(out, name+" is not a variable of this connector; did you mean "+best+"?")
		}
	}
	sort.Strings(out)
	return out
}

// unread returns the warnings of the variables every Unreader among fields left unread.
func unread(fields []field) []string {
	var (
		out   []string
		count = map[string]int{}
		n     int
		say   = map[string]string{}
	)
	for _, x := range expanders(fields) {
		u, ok := x.(Unreader)
		if !ok {
			continue
		}
		n++
		for v, w := range u.Unread() {
			count[v]++
			say[v] = w
		}
	}
	for v, c := range count {
		if c == n {
			out = append(out, say[v])
		}
	}
	return out
}

// Closest returns the name among known that name looks like a misspelling of, or "".
func Closest(name string, known []string) string {
	set := make(map[string]bool, len(known))
	for _, k := range known {
		set[k] = true
	}
	return closest(name, set)
}

// closest returns the known name within a small edit distance of name ("" when none): one edit
// per five characters, at most two, so that short unrelated names (PATH, HOME) never match.
func closest(name string, known map[string]bool) string {
	limit := min(2, len(name)/5)
	best, bestD := "", limit+1
	for k := range known {
		if d := distance(name, k); d <= limit && (d < bestD || d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the edit distance of a and b, with two adjacent letters swapped (PG_HOTS, CH_TABEL)
// counting as one edit, as people mistype.
func distance(a, b string) int {
	d := levenshtein.ComputeDistance(a, b)
	if d != 2 || len(a) != len(b) {
		return d
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:] {
		return 1
	}
	return d
}
