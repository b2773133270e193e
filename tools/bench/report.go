package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// header is the columns of the printed table and of the page's tables. The ratios compare each
// variant with its setting's baseline: msgs/s ratio (higher is better) and CPU ratio (lower is
// better).
var header = []string{"case", "setting", "variant", "msgs", "msgs/s", "ratio", "CPU µs/msg", "CPU ratio", "peak RSS MiB"}

// cells turns a case's result into table rows, one per variant.
func cells(name string, res Result) [][]string {
	var rows [][]string
	for _, g := range res.Groups {
		if len(g.Rows) == 0 {
			continue
		}
		base := g.Rows[0]
		for i, r := range g.Rows {
			ratio, cpuRatio := "baseline", "baseline"
			if i > 0 {
				ratio, cpuRatio = fmtRatio(r.Rate, base.Rate), fmtRatio(r.CPUMicros, base.CPUMicros)
			}
			rss := "n/a"
			if r.RSSMiB > 0 {
				rss = fmt.Sprintf("%.1f", r.RSSMiB)
			}
			rows = append(rows, []string{name, g.Setting, r.Variant, fmt.Sprint(r.Msgs), fmt.Sprintf("%.0f", r.Rate),
				ratio, fmt.Sprintf("%.1f", r.CPUMicros), cpuRatio, rss})
		}
	}
	return rows
}

func fmtRatio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// printTable writes the results as an aligned text table.
func printTable(w io.Writer, results []caseResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(c []string) { fmt.Fprintln(tw, strings.Join(c, "\t")) }
	line(header)
	for _, r := range results {
		for _, c := range cells(r.c.Name(), r.res) {
			line(c)
		}
	}
	return tw.Flush()
}

// markdownTable writes rows (without the case column) as a Markdown table.
func markdownTable(w io.Writer, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header[1:], " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)-1))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r[1:], " | "))
	}
}
