package main

import (
	"fmt"
	"slices"
)

// median merges the results of repeated runs of one case (-count) into one: each row's rate, CPU
// and RSS is the median over the runs, which keeps one disturbed run on a shared machine from
// setting the numbers.
func median(runs []Result) (Result, error) {
	if len(runs) == 1 {
		return runs[0], nil
	}
	out := Result{Groups: slices.Clone(runs[0].Groups)}
	for gi, g := range out.Groups {
		rows := slices.Clone(g.Rows)
		for ri := range rows {
			var rate, cpu, rss []float64
			for _, run := range runs {
				if gi >= len(run.Groups) || ri >= len(run.Groups[gi].Rows) ||
					run.Groups[gi].Setting != g.Setting || run.Groups[gi].Rows[ri].Variant != rows[ri].Variant {
					return Result{}, fmt.Errorf("runs differ in shape at %s / %s", g.Setting, rows[ri].Variant)
				}
				r := run.Groups[gi].Rows[ri]
				rate, cpu, rss = append(rate, r.Rate), append(cpu, r.CPUMicros), append(rss, r.RSSMiB)
			}
			rows[ri].Rate, rows[ri].CPUMicros, rows[ri].RSSMiB = mid(rate), mid(cpu), mid(rss)
		}
		out.Groups[gi].Rows = rows
	}
	return out, nil
}

// mid is the median of xs (the mean of the middle two for an even count).
func mid(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
