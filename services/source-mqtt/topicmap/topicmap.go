// Package topicmap maps MQTT topics to Danube topics with an ordered table of MQTT topic filters
// (MQTT_TOPIC_MAPPINGS): the first filter that matches a message's topic names its Danube topic.
//
// Filters follow MQTT 3.1.1/5 §4.7: "+" matches one level, "#" (last, alone in its level) matches
// the rest including the parent level ("a/#" matches "a"), and a wildcard in the first level never
// matches a topic starting with "$" ($SYS and the like). A filter may be a shared subscription,
// "$share/<group>/<filter>": the broker then hands each message to one of the clients subscribed
// with that group (several connector replicas); matching uses the filter after the group.
package topicmap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// Rule is one mapping: messages whose topic matches Filter go to the Danube topic Topic.
type Rule struct {
	// Subscription is the filter as written, what a client subscribes to ("$share/g/a/+").
	Subscription string
	// Filter is the part that matches topics ("a/+"): Subscription without a $share/<group>/ prefix.
	Filter string
	// Group is the shared-subscription group, "" for an ordinary subscription.
	Group string
	// Topic is the Danube destination, /namespace/topic.
	Topic string

	levels []string
}

// Table is an ordered list of rules; the first match wins.
type Table struct{ rules []Rule }

// Parse reads "filter=topic;filter=topic" (whitespace around entries is ignored). Every bad entry
// is reported, each naming the entry and the reason. A filter that an earlier one covers (a/b after
// a/#) is refused: the first match wins, so it could never apply.
func Parse(s string) (*Table, error) {
	var t Table
	var errs []error
	seen := map[string]bool{}
	for entry := range strings.SplitSeq(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		filter, topic, ok := strings.Cut(entry, "=")
		filter, topic = strings.TrimSpace(filter), strings.TrimSpace(topic)
		if !ok || filter == "" || topic == "" {
			errs = append(errs, fmt.Errorf("%q: want <mqtt filter>=</namespace/topic>", entry))
			continue
		}
		r, err := NewRule(filter, topic)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", entry, err))
			continue
		}
		if seen[r.Subscription] {
			errs = append(errs, fmt.Errorf("%q: filter %q is listed twice (the first match wins, so the second never applies)", entry, r.Subscription))
			continue
		}
		seen[r.Subscription] = true
		if i := slices.IndexFunc(t.rules, func(e Rule) bool { return covers(e.levels, r.levels) }); i >= 0 {
			errs = append(errs, fmt.Errorf("%q: filter %q is shadowed by the earlier filter %q, which matches every topic it matches (the first match wins, so it never applies): list the narrower filter first or remove it",
				entry, r.Subscription, t.rules[i].Subscription))
			continue
		}
		t.rules = append(t.rules, r)
	}
	if len(errs) == 0 && len(t.rules) == 0 {
		errs = append(errs, errors.New("no mapping: want at least one <mqtt filter>=</namespace/topic>"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &t, nil
}

// NewRule checks filter (optionally $share/<group>/<filter>) and topic and returns their rule.
func NewRule(filter, topic string) (Rule, error) {
	r := Rule{Subscription: filter, Filter: filter, Topic: topic}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		group, f, ok := strings.Cut(rest, "/")
		if !ok || group == "" || f == "" || strings.ContainsAny(group, "+#") {
			return Rule{}, fmt.Errorf("shared subscription %q: want $share/<group>/<filter> with a group name without + or #", filter)
		}
		r.Group, r.Filter = group, f
	}
	if err := ValidFilter(r.Filter); err != nil {
		return Rule{}, err
	}
	if err := danube.CheckTopic(topic); err != nil {
		return Rule{}, fmt.Errorf("destination %q: %w", topic, err)
	}
	r.levels = strings.Split(r.Filter, "/")
	return r, nil
}

// ValidFilter reports why f is not an MQTT topic filter.
func ValidFilter(f string) error {
	if f == "" {
		return errors.New("empty MQTT filter")
	}
	if strings.ContainsRune(f, 0) {
		return fmt.Errorf("MQTT filter %q contains a NUL character", f)
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case strings.Contains(l, "#") && (l != "#" || i != len(levels)-1):
			return fmt.Errorf("MQTT filter %q: '#' must be the whole last level", f)
		case strings.Contains(l, "+") && l != "+":
			return fmt.Errorf("MQTT filter %q: '+' must be a whole level", f)
		}
	}
	return nil
}

// Rules returns the rules in order.
func (t *Table) Rules() []Rule { return t.rules }

// Subscriptions returns the filters a client subscribes to, in order ($share prefixes kept): every
// rule's, except a filter that a later rule of the same group covers (factory/+/temp before
// factory/#). The broader subscription brings its messages anyway, and MQTT allows a broker to send a
// message once per matching subscription: overlapping subscriptions could bring it twice.
func (t *Table) Subscriptions() []string {
	var out []string
	for i, r := range t.rules {
		if !slices.ContainsFunc(t.rules[i+1:], func(l Rule) bool { return l.Group == r.Group && covers(l.levels, r.levels) }) {
			out = append(out, r.Subscription)
		}
	}
	return out
}

// covers reports whether filter a matches every topic that filter b matches (both split in levels).
func covers(a, b []string) bool {
	if (a[0] == "+" || a[0] == "#") && strings.HasPrefix(b[0], "$") {
		return false // b may match $ topics, which a wildcard first level never matches
	}
	for i, l := range a {
		switch {
		case l == "#":
			return true
		case i >= len(b) || b[i] == "#":
			return false
		case l != "+" && l != b[i]:
			return false
		}
	}
	return len(a) == len(b)
}

// Lookup returns the Danube topic of the first rule whose filter matches the MQTT topic.
func (t *Table) Lookup(topic string) (string, bool) {
	for i := range t.rules {
		if t.rules[i].matches(topic) {
			return t.rules[i].Topic, true
		}
	}
	return "", false
}

// Match reports whether the MQTT topic filter matches the topic name (MQTT §4.7).
func Match(filter, topic string) bool {
	return Rule{levels: strings.Split(filter, "/")}.matches(topic)
}

func (r Rule) matches(topic string) bool {
	if topic == "" {
		return false
	}
	if topic[0] == '$' && (r.levels[0] == "+" || r.levels[0] == "#") {
		return false // [MQTT-4.7.2-1]
	}
	rest := topic
	for i, l := range r.levels {
		if l == "#" {
			return true // matches the parent level too: "a/#" matches "a"
		}
		level, after, more := strings.Cut(rest, "/")
		if l != "+" && l != level {
			return false
		}
		if !more {
			// topic ends here: the filter must end too, or continue with a lone "#"
			return i == len(r.levels)-1 || (i == len(r.levels)-2 && r.levels[i+1] == "#")
		}
		rest = after
	}
	return false // the topic has more levels than the filter
}
