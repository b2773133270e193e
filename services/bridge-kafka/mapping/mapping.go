// Package mapping parses the bridge's topic mappings: IMPORT_MAPPINGS (Kafka topic → Danube topic)
// and EXPORT_MAPPINGS (Danube topic → Kafka topic), each a semicolon-separated list of
// source=destination pairs.
package mapping

import (
	"errors"
	"fmt"
	"strings"

	"github.com/danube-messaging/danube-connect-go/libs/danube"
)

// Route pairs one Kafka topic with one Danube topic; the direction is the list's.
type Route struct {
	Kafka  string // Kafka topic name
	Danube string // Danube topic, /namespace/topic
}

// Imports is IMPORT_MAPPINGS: "orders=/default/orders;payments=/default/payments". Each Kafka topic
// is imported once and each Danube topic has one import, so that a record has exactly one way in.
type Imports struct{ Routes []Route }

// Exports is EXPORT_MAPPINGS: "/default/shipments=shipments". Each Danube topic is exported once;
// several Danube topics may feed one Kafka topic.
type Exports struct{ Routes []Route }

// UnmarshalText parses IMPORT_MAPPINGS, reporting every bad pair at once.
func (m *Imports) UnmarshalText(b []byte) error {
	routes, err := parse(string(b), true)
	m.Routes = routes
	return err
}

// UnmarshalText parses EXPORT_MAPPINGS, reporting every bad pair at once.
func (m *Exports) UnmarshalText(b []byte) error {
	routes, err := parse(string(b), false)
	m.Routes = routes
	return err
}

// String renders the mappings as they are written (for --print-config and the start-up log).
func (m Imports) String() string { return format(m.Routes, true) }

// String renders the mappings as they are written.
func (m Exports) String() string { return format(m.Routes, false) }

func format(routes []Route, imports bool) string {
	parts := make([]string, len(routes))
	for i, r := range routes {
		if imports {
			parts[i] = r.Kafka + "=" + r.Danube
		} else {
			parts[i] = r.Danube + "=" + r.Kafka
		}
	}
	return strings.Join(parts, ";")
}

func parse(s string, imports bool) ([]Route, error) {
	var routes []Route
	var errs []error
	byKafka, byDanube := map[string]bool{}, map[string]bool{}
	for pair := range strings.SplitSeq(s, ";") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		src, dst, ok := strings.Cut(pair, "=")
		src, dst = strings.TrimSpace(src), strings.TrimSpace(dst)
		want := "kafka-topic=/namespace/topic"
		if !imports {
			want = "/namespace/topic=kafka-topic"
		}
		if !ok || src == "" || dst == "" {
			errs = append(errs, fmt.Errorf("%q: want %s", pair, want))
			continue
		}
		r := Route{Kafka: src, Danube: dst}
		if !imports {
			r = Route{Kafka: dst, Danube: src}
		}
		bad := false
		if err := CheckKafkaTopic(r.Kafka); err != nil {
			errs, bad = append(errs, fmt.Errorf("%q: Kafka topic %q: %w", pair, r.Kafka, err)), true
		}
		if err := danube.CheckTopic(r.Danube); err != nil {
			errs, bad = append(errs, fmt.Errorf("%q: Danube topic %q: %w", pair, r.Danube, err)), true
		}
		if bad {
			continue
		}
		switch {
		case imports && byKafka[r.Kafka]:
			errs = append(errs, fmt.Errorf("%q: Kafka topic %q is imported twice", pair, r.Kafka))
		case byDanube[r.Danube] && imports:
			errs = append(errs, fmt.Errorf("%q: Danube topic %q has two imports", pair, r.Danube))
		case byDanube[r.Danube]:
			errs = append(errs, fmt.Errorf("%q: Danube topic %q is exported twice", pair, r.Danube))
		default:
			byKafka[r.Kafka], byDanube[r.Danube] = true, true
			routes = append(routes, r)
		}
	}
	if len(errs) == 0 {
		return routes, nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return routes, errors.New(strings.Join(msgs, "; "))
}

// CheckKafkaTopic applies Kafka's topic name rule: 1 to 249 of [A-Za-z0-9._-], not "." or "..".
func CheckKafkaTopic(t string) error {
	if t == "." || t == ".." {
		return errors.New(`"." and ".." are not topic names`)
	}
	if len(t) > 249 {
		return errors.New("longer than 249 characters")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q not allowed (letters, digits, '.', '_', '-')", r)
		}
	}
	return nil
}
