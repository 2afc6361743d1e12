// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is the Markdown output of one comparison.
type report struct {
	base, head          string
	rounds, heavyRounds int
	started             time.Time
	took                time.Duration
	loadStart, loadEnd  string
}

// markdown renders one row per figure: the median over the rounds for each
// revision, with the range and the number of runs that produced it.
func (rep report) markdown(sel []group, results map[string]map[string][]result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BASE: %s  \nHEAD: %s  \n", rep.base, rep.head)
	fmt.Fprintf(&b, "%d rounds (long benchmarks: %d), BASE and HEAD alternating (ABBA); started %s UTC, took %v; load average %s at start, %s at end.\n\n",
		rep.rounds, min(rep.rounds, rep.heavyRounds), rep.started.UTC().Format("2006-01-02 15:04"), rep.took.Round(time.Second), rep.loadStart, rep.loadEnd)
	b.WriteString("| Figure | BASE median (min-max, runs) | HEAD median (min-max, runs) | HEAD/BASE | Target |\n|---|---|---|---|---|\n")
	var failures []string
	for _, g := range sel {
		for _, f := range g.figs {
			var med [2]float64
			var ok [2]bool
			cells := [2]string{}
			for i, label := range []string{"BASE", "HEAD"} {
				var vs []float64
				for _, res := range results[g.name][label] {
					if v, found := f.value(res.m); found {
						vs = append(vs, v)
					}
				}
				cells[i] = "n/a"
				if len(vs) > 0 {
					med[i], ok[i] = median(vs), true
					cells[i] = fmt.Sprintf("%s (%s .. %s, %d)", num(med[i]), num(slices.Min(vs)), num(slices.Max(vs)), len(vs))
				}
			}
			ratio := ""
			if ok[0] && ok[1] && med[0] > 0 && med[1] > 0 { // a ratio across zero means nothing
				ratio = fmt.Sprintf("%.2fx", med[1]/med[0])
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.label, cells[0], cells[1], ratio, f.target)
		}
		for _, label := range []string{"BASE", "HEAD"} {
			for _, res := range results[g.name][label] {
				if res.err != nil {
					failures = append(failures, res.err.Error())
				}
			}
		}
	}
	var durs []string
	for _, g := range sel {
		var d []string
		for _, label := range []string{"BASE", "HEAD"} {
			for _, res := range results[g.name][label] {
				d = append(d, res.dur.Round(time.Second).String())
			}
		}
		durs = append(durs, g.name+" "+strings.Join(d, "/"))
	}
	fmt.Fprintf(&b, "\nRun times (BASE runs, then HEAD runs): %s.\n", strings.Join(durs, "; "))
	if len(failures) > 0 {
		b.WriteString("\nFailed runs (their figures, where printed before the failure, are in the table):\n")
		for _, f := range failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	return b.String()
}

// value reads the figure from one run's metrics.
func (f figure) value(m metrics) (float64, bool) {
	if f.derive != nil {
		return f.derive(m)
	}
	return m.get(f.bench, f.metric)
}

// median returns the middle value of v (the mean of the two middle ones
// for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// num formats a figure with three significant digits (at least the integer
// part).
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}
