// Command bench runs the connector benchmarks, each case beside its baseline in the same run, prints
// a table, and writes the page docs/benchmarks.md with one chart per case under docs/bench/:
//
//	go run ./tools/bench                  # every case
//	go run ./tools/bench sink-http        # one case
//	go run ./tools/bench -count 3         # median of three runs, on a busy machine
//	go run ./tools/bench -quick -out /tmp # small counts (what the test runs)
//	go run ./tools/bench -list
//
// A case is one file, case_<name>.go, that registers itself (see Case in case.go). Everything runs on
// 127.0.0.1: an in-process development broker, local receivers, and binaries built with go build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "docs", "directory of benchmarks.md; charts go to its bench/ subdirectory")
	quick := fs.Bool("quick", false, "small message counts: a smoke run (the test's), not a measurement")
	list := fs.Bool("list", false, "list the cases and exit")
	count := fs.Int("count", 1, "run each case `n` times and report the median of each number")
	for _, c := range cases() {
		if f, ok := c.(Flagger); ok {
			f.Flags(fs)
		}
	}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./tools/bench [flags] [case...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, c := range cases() {
			fmt.Fprintln(stdout, c.Name())
		}
		return nil
	}
	if *quick && !isSet(fs, "out") {
		return errors.New("-quick numbers are a smoke test, not for docs/: give -out DIR")
	}
	selected, err := selectCases(fs.Args())
	if err != nil {
		return err
	}

	bins, err := newBuilder()
	if err != nil {
		return err
	}
	defer bins.close()
	env := &Env{Quick: *quick, Log: stderr, bins: bins}
	load := loadAvg()
	var results []caseResult
	for _, c := range selected {
		res, err := runCase(ctx, c, env, *count)
		var ue *unavailableError
		if errors.As(err, &ue) && os.Getenv("CI_REQUIRE_INTEGRATION") != "1" {
			env.Logf("%s: skipped: %s", c.Name(), ue.reason)
			results = append(results, caseResult{c: c, skipped: ue.reason})
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
		results = append(results, caseResult{c: c, res: res})
	}
	if err := printTable(stdout, results); err != nil {
		return err
	}
	for _, r := range results {
		if r.skipped != "" {
			continue
		}
		if err := writeChart(filepath.Join(*out, "bench", r.c.Name()+".svg"), r.c.Name(), r.res); err != nil {
			return err
		}
	}
	return writePage(*out, strings.TrimSpace("go run ./tools/bench "+strings.Join(args, " ")), load, results, *quick)
}

// runCase runs c count times and keeps the median of each number.
func runCase(ctx context.Context, c Case, env *Env, count int) (Result, error) {
	var runs []Result
	for range max(count, 1) {
		res, err := c.Run(ctx, env)
		if err != nil {
			return Result{}, err
		}
		runs = append(runs, res)
	}
	return median(runs)
}

// isSet reports whether flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
