package topicmap_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/danube-messaging/danube-connect-go/services/source-mqtt/topicmap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"factory/+/temp", "factory/a/temp", true},
		{"factory/+/temp", "factory/a/b/temp", false},
		{"factory/+/temp", "factory//temp", true}, // + matches an empty level
		{"factory/+/temp", "factory/a/temp/x", false},
		{"factory/#", "factory", true}, // # includes the parent level
		{"factory/#", "factory/a/b/c", true},
		{"factory/#", "factoryx/a", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker/load", false}, // wildcards do not match $ topics at the first level
		{"+/broker/load", "$SYS/broker/load", false},
		{"$SYS/#", "$SYS/broker/load", true},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a/+", "a/", true},
		{"a/+/#", "a/b", true},
		{"+", "a", true},
		{"+", "a/b", false},
		{"/+", "/a", true},
		{"+/+", "/a", true},
		{"a", "", false},
	} {
		if got := topicmap.Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestFirstMatchWins(t *testing.T) {
	tab, err := topicmap.Parse(" factory/+/temp=/default/factory-temp ; factory/#=/iot/factory;$share/replicas/devices/+=/iot/devices")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"factory/l1/temp":     "/default/factory-temp",
		"factory/l1/humidity": "/iot/factory",
		"factory":             "/iot/factory",
		"devices/d7":          "/iot/devices",
	} {
		if got, ok := tab.Lookup(topic); !ok || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", topic, got, ok, want)
		}
	}
	for _, topic := range []string{"other/x", "devices/d7/x", "$share/replicas/devices/d7"} {
		if got, ok := tab.Lookup(topic); ok {
			t.Errorf("Lookup(%q) = %q, want no match", topic, got)
		}
	}
	// factory/# brings factory/+/temp's messages: subscribing to both could bring them twice
	if got, want := strings.Join(tab.Subscriptions(), " "), "factory/# $share/replicas/devices/+"; got != want {
		t.Errorf("Subscriptions() = %q, want %q", got, want)
	}
	if r := tab.Rules()[2]; r.Group != "replicas" || r.Filter != "devices/+" {
		t.Errorf("shared rule = %+v, want group replicas and filter devices/+", r)
	}
}

// TestSubscriptionsSkipCoveredFilters: a filter is left out of the subscriptions only when a later
// filter of the same shared-subscription group matches every topic it matches.
func TestSubscriptionsSkipCoveredFilters(t *testing.T) {
	for mappings, want := range map[string]string{
		"a/+/c=/x/a;a/b/+=/x/b":               "a/+/c a/b/+", // overlap, neither covers the other
		"a/b=/x/a;a/+=/x/b;#=/x/c":            "#",
		"$SYS/x=/x/a;#=/x/b":                  "$SYS/x #", // # does not match $ topics
		"a=/x/a;a/#=/x/b":                     "a/#",      // a/# matches its parent level
		"a/b=/x/a;$share/g/a/#=/x/b":          "a/b $share/g/a/#",
		"$share/g/a/b=/x/a;$share/g/a/#=/x/b": "$share/g/a/#",
		"$share/g/a/b=/x/a;$share/h/a/#=/x/b": "$share/g/a/b $share/h/a/#",
	} {
		tab, err := topicmap.Parse(mappings)
		if err != nil {
			t.Fatalf("%s: %v", mappings, err)
		}
		if got := strings.Join(tab.Subscriptions(), " "); got != want {
			t.Errorf("%s: Subscriptions() = %q, want %q", mappings, got, want)
		}
	}
}

// TestParseRefusesShadowedFilters: a filter after one that matches all its topics is dead
// configuration (first match wins) and is refused, naming both filters.
func TestParseRefusesShadowedFilters(t *testing.T) {
	for mappings, want := range map[string]string{
		"a/#=/x/a;a/b=/x/b":                   `"a/b=/x/b": filter "a/b" is shadowed by the earlier filter "a/#"`,
		"a/+=/x/a;a/b=/x/b":                   `"a/b=/x/b": filter "a/b" is shadowed by the earlier filter "a/+"`,
		"#=/x/a;$share/g/a/+/c=/x/b":          `"$share/g/a/+/c=/x/b": filter "$share/g/a/+/c" is shadowed by the earlier filter "#"`,
		"a/#=/x/a;a=/x/b":                     `"a=/x/b": filter "a" is shadowed by the earlier filter "a/#"`,
		"$share/g/a/b=/x/a;$share/h/a/b=/x/b": `"$share/h/a/b=/x/b": filter "$share/h/a/b" is shadowed by the earlier filter "$share/g/a/b"`,
	} {
		_, err := topicmap.Parse(mappings)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", mappings, err, want)
		}
	}
	for _, ok := range []string{"a/b=/x/a;a/#=/x/b", "a/+/c=/x/a;a/b/+=/x/b", "$SYS/#=/x/a;#=/x/b", "#=/x/a;$SYS/x=/x/b", "a/+=/x/a;a/#=/x/b"} {
		if _, err := topicmap.Parse(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := topicmap.Parse("a/#/b=/x/y;a+=/x/y;ok/+=/ns;$share//f=/x/y;nofilter;c=/x/y;c=/x/z")
	if err == nil {
		t.Fatal("want an error")
	}
	want := []string{
		`"a/#/b=/x/y": MQTT filter "a/#/b": '#' must be the whole last level`,
		`"a+=/x/y": MQTT filter "a+": '+' must be a whole level`,
		`"ok/+=/ns": destination "/ns": want /namespace/topic`,
		`"$share//f=/x/y": shared subscription "$share//f": want $share/<group>/<filter> with a group name without + or #`,
		`"nofilter": want <mqtt filter>=</namespace/topic>`,
		`"c=/x/z": filter "c" is listed twice (the first match wins, so the second never applies)`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if _, err := topicmap.Parse(" ; "); err == nil || err.Error() != "no mapping: want at least one <mqtt filter>=</namespace/topic>" {
		t.Errorf("empty table: %v", err)
	}
}
