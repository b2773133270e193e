package transform

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/danube-messaging/danube-connect-go/libs/runtime/config"
)

// Steps is TRANSFORMS: the names of the chain's steps, in order. Step NAME is configured by the
// variables TRANSFORM_<NAME>_*: TYPE (the step's name when it names a type: TRANSFORMS=unwrap needs
// nothing else) and those of its type. The chain is compiled when the configuration loads
// (config.Expander), so that a bad expression or variable stops the connector at start with every
// other problem. Use SourceSteps or SinkSteps as the config field.
type Steps struct {
	names  []string
	chain  Chain
	vars   [][2]string
	unread map[string]string
}

// SourceSteps is TRANSFORMS of a source: its expressions see payload, attributes, key and topic.
type SourceSteps struct{ Steps }

// SinkSteps is TRANSFORMS of a sink: its expressions also see message_id, offset and publish_time.
type SinkSteps struct{ Steps }

// Expand implements config.Expander.
func (s *SourceSteps) Expand(vars map[string]string) []error { return s.expand(Source, vars) }

// Expand implements config.Expander.
func (s *SinkSteps) Expand(vars map[string]string) []error { return s.expand(Sink, vars) }

// Chain returns the compiled chain (no steps before Expand).
func (s *Steps) Chain() *Chain { return &s.chain }

func (s Steps) String() string { return strings.Join(s.names, ",") }

var stepName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// UnmarshalText parses the comma-separated step names (letters, digits and _, case-insensitive).
func (s *Steps) UnmarshalText(b []byte) error {
	s.names = nil
	for n := range strings.SplitSeq(string(b), ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		switch {
		case n == "":
			continue
		case !stepName.MatchString(n):
			return fmt.Errorf("step name %q: want letters, digits and _, starting with a letter", n)
		case slices.Contains(s.names, n):
			return fmt.Errorf("step %q is listed twice; give each step its own name", n)
		}
		s.names = append(s.names, n)
	}
	return nil
}

// Expanded implements config.Expander: the step variables that were set, secrets redacted.
func (s *Steps) Expanded() [][2]string { return s.vars }

// Unread implements config.Unreader: a TRANSFORM_* variable of no listed step is reported, since
// a step forgotten in TRANSFORMS (a mask) would otherwise be skipped without a word.
func (s *Steps) Unread() map[string]string { return s.unread }

// prefix is the variable prefix of step name.
func prefix(name string) string { return "TRANSFORM_" + strings.ToUpper(name) + "_" }

// expand reads every step's variables from vars and compiles the chain.
func (s *Steps) expand(side Side, vars map[string]string) []error {
	s.chain, s.vars = Chain{}, nil
	own := s.assign(vars)
	var problems []error
	for _, name := range s.names {
		st, errs := s.build(side, name, own[name])
		problems = append(problems, errs...)
		if st != nil {
			s.chain.steps = append(s.chain.steps, st)
		}
	}
	if len(problems) > 0 {
		s.chain = Chain{}
	}
	return problems
}

// assign gives each TRANSFORM_* variable to the step whose prefix it has, the longest one when
// two steps' prefixes match (mask and mask_pii): step → variable without the prefix → value.
func (s *Steps) assign(vars map[string]string) map[string]map[string]string {
	own := map[string]map[string]string{}
	s.unread = map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		best := ""
		for _, name := range s.names {
			if strings.HasPrefix(k, prefix(name)) && len(name) > len(best) {
				best = name
			}
		}
		if best == "" {
			if strings.HasPrefix(k, "TRANSFORM_") {
				s.unread[k] = k + " is set, but no step it configures is listed in TRANSFORMS (" + s.String() + "): it is ignored"
			}
			continue
		}
		if own[best] == nil {
			own[best] = map[string]string{}
		}
		own[best][strings.TrimPrefix(k, prefix(best))] = vars[k]
	}
	return own
}

// build parses and compiles one step from its variables (without their prefix).
func (s *Steps) build(side Side, name string, vars map[string]string) (*step, []error) {
	pre := prefix(name)
	typ, ok := vars["TYPE"]
	if !ok || typ == "" {
		typ = name
	}
	k, ok := kindOf(typ)
	if !ok {
		v := vars["TYPE"]
		reason := "want one of " + strings.Join(kindNames(), ", ")
		if v == "" {
			reason = "required: step " + name + " is not a type's name; " + reason
		}
		return nil, []error{config.Invalid(pre+"TYPE", v, reason)}
	}
	if side == Sink && typ == "route" {
		return nil, []error{config.Invalid(pre+"TYPE", typ, "route sets a source's destination topic; a sink writes to the one target it is configured with")}
	}
	cfg := k.config()
	known := declared(cfg)
	var problems []error
	environ := make([]string, 0, len(vars))
	for _, v := range slices.Sorted(maps.Keys(vars)) {
		switch {
		case v == "TYPE":
		case !known[v]:
			reason := fmt.Sprintf("not a variable of a %s step (it has %s)", typ, strings.Join(k.variables(), ", "))
			if best := config.Closest(v, k.variables()); best != "" {
				reason += "; did you mean " + pre + best + "?"
			}
			problems = append(problems, config.Invalid(pre+v, "", reason))
		default:
			environ = append(environ, v+"="+vars[v])
		}
		s.vars = append(s.vars, [2]string{pre + v, redact(cfg, v, vars[v])})
	}
	if err := config.Load(cfg, environ); err != nil {
		return nil, append(problems, prefixed(pre, err)...)
	}
	apply, errs := cfg.build(side, pre)
	if problems = append(problems, errs...); len(problems) > 0 {
		return nil, problems
	}
	return &step{name: name, typ: typ, apply: apply, fields: k.fields}, nil
}

// prefixed returns Load's problems with the step's prefix on every variable name.
func prefixed(pre string, err error) []error {
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		return []error{err}
	}
	out := make([]error, len(cerr.Problems))
	for i, p := range cerr.Problems {
		var fe *config.FieldError
		if errors.As(p, &fe) {
			c := *fe
			c.Var = pre + c.Var
			p = &c
		}
		out[i] = p
	}
	return out
}

// declared returns the variables cfg's fields declare (NAME_FILE too for a secret).
func declared(cfg builder) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(cfg).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		out[name] = true
		if t.Field(i).Type == reflect.TypeOf(config.Secret{}) {
			out[name+"_FILE"] = true
		}
	}
	return out
}

// redact hides the value of a secret variable of cfg.
func redact(cfg builder, v, value string) string {
	t := reflect.TypeOf(cfg).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		if name == v && t.Field(i).Type == reflect.TypeOf(config.Secret{}) {
			return config.NewSecret(value).String()
		}
	}
	return value
}

// ExpandUsage implements config.Expander: every step variable, by type.
func (s *Steps) ExpandUsage(w io.Writer) error {
	fmt.Fprintln(w, "\nTransform steps: TRANSFORMS=step,step,… runs them in order; step NAME is configured by "+
		"TRANSFORM_<NAME>_<VARIABLE> (docs/transforms.md):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tSTEP TYPE\tDEFAULT\tDESCRIPTION")
	fmt.Fprintf(tw, "TYPE\tall\tthe step's name\t%s\n", strings.Join(kindNames(), ", "))
	for _, k := range kinds {
		name, t := k.name, reflect.TypeOf(k.config()).Elem()
		for i := range t.NumField() {
			f := t.Field(i)
			key, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
			def, hasDef := f.Tag.Lookup("envDefault")
			switch {
			case strings.Contains(opts, "required"):
				def = "(required)"
			case !hasDef:
				def = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", key, name, def, f.Tag.Get("desc"))
		}
	}
	return tw.Flush()
}
