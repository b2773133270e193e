package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
)

// Case is one benchmark: a connector (or library) path measured beside the baseline it is judged
// against. A case is one file, case_<name>.go, that registers itself:
//
//	func init() { register(myCase{}) }
//
// Its Run returns one Group per setting, baseline row first; the command prints the rows, computes
// the ratios, writes the page's section and the chart. Helpers for the measuring: Env.Build (a
// binary of this module), startChild (a process's CPU and peak RSS), startReceiver (a local HTTP
// endpoint timing arrivals), selfCPU (in-process CPU), and the Flagger interface for case flags.
type Case interface {
	// Name is the command-line name and the chart's file name (docs/bench/<name>.svg).
	Name() string
	// About is the page's paragraph: what is measured and what the baseline is.
	About() string
	// Run measures every setting of the case; env.Quick asks for small message counts.
	Run(ctx context.Context, env *Env) (Result, error)
}

// Flagger is implemented by cases with flags of their own (such as -sink-http-bin), so that a case
// stays one file.
type Flagger interface {
	Flags(fs *flag.FlagSet)
}

// Result is what a case measured: one group per setting.
type Result struct {
	Groups []Group
}

// Group is one setting (for example "tuned, latency 2ms"): the baseline first, then the variants
// judged against it, all measured in the same run.
type Group struct {
	Setting string
	Rows    []Row // Rows[0] is the baseline
}

// Row is one variant's measurement.
type Row struct {
	Variant   string
	Msgs      int     // messages measured
	Rate      float64 // msgs/s
	CPUMicros float64 // CPU µs (user+system) per message of the measured process
	RSSMiB    float64 // peak resident set size of the measured process; 0 = not measured
}

// Env is what the command hands every case.
type Env struct {
	Quick bool      // small message counts: a smoke run, not a measurement
	Log   io.Writer // progress lines
	bins  *builder
}

// Build returns the path of pkg's binary, built once per run with go build into a temp dir.
func (e *Env) Build(ctx context.Context, pkg string) (string, error) { return e.bins.build(ctx, pkg) }

// Logf writes one progress line.
func (e *Env) Logf(format string, args ...any) { fmt.Fprintf(e.Log, format+"\n", args...) }

// unavailableError is a case's "the external system I measure is not here" (no IT_* address).
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason }

// unavailable is what a case that needs an external system (PostgreSQL, ClickHouse, Kafka, MQTT)
// returns when it has none: the command then skips the case, as the integration harness skips its
// tests, unless CI_REQUIRE_INTEGRATION=1, where it fails.
func unavailable(format string, args ...any) error {
	return &unavailableError{reason: fmt.Sprintf(format, args...)}
}

var registry = map[string]Case{}

// register adds c to the cases the command knows; it panics on a duplicate name.
func register(c Case) {
	if _, dup := registry[c.Name()]; dup {
		panic("bench: case " + c.Name() + " registered twice")
	}
	registry[c.Name()] = c
}

// cases returns the registered cases by name.
func cases() []Case {
	all := make([]Case, 0, len(registry))
	for _, c := range registry {
		all = append(all, c)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name() < all[j].Name() })
	return all
}

// selectCases returns the named cases in the order given, or every case when none is named.
func selectCases(names []string) ([]Case, error) {
	if len(names) == 0 {
		return cases(), nil
	}
	var sel []Case
	for _, n := range names {
		c, ok := registry[n]
		if !ok {
			return nil, fmt.Errorf("unknown case %q (-list shows the cases)", n)
		}
		sel = append(sel, c)
	}
	return sel, nil
}
