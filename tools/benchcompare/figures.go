// SPDX-License-Identifier: Apache-2.0

package main

import "fmt"

// group is one run of a test binary: the benchmarks it selects, with
// their -benchtime, and the figures read from its output.
type group struct {
	name      string // short name, for -only and log files
	pkg       string // package directory, relative to the tree's root
	bench     string // -test.bench
	benchtime string
	timeout   string
	// binDir: the benchmark runs the binaries cluster.BinDirEnv names, so
	// HEAD's benchmark code measures both revisions. Otherwise it builds
	// the daemons from the tree it runs in (its working directory), so it
	// runs in the measured revision's package directory.
	binDir bool
	heavy  bool // at most -heavy-rounds rounds
	figs   []figure
}

// figure is one row of the table: a metric of one benchmark, or a value
// derived from a run's metrics.
type figure struct {
	label  string
	bench  string // benchmark name without the -GOMAXPROCS suffix
	metric string // unit as ReportMetric names it
	target string // from issue 13 ("no regression" where it names none)
	// derive computes the figure from one run's metrics instead (nil: read
	// bench/metric).
	derive func(m metrics) (float64, bool)
}

// metrics are one run's values by benchmark and unit.
type metrics map[string]map[string]float64

func (m metrics) get(bench, unit string) (float64, bool) {
	v, ok := m[bench][unit]
	return v, ok
}

// first returns the first of units a benchmark reported (benchmarks get
// renamed metrics over time; HEAD's code may differ from BASE's), with
// ns/op in ms.
func (m metrics) first(bench string, units ...string) (float64, bool) {
	for _, u := range units {
		if v, ok := m.get(bench, u); ok {
			if u == "ns/op" {
				v /= 1e6
			}
			return v, true
		}
	}
	return 0, false
}

// firstOf is a figure's derive function for metrics.first.
func firstOf(bench string, units ...string) func(metrics) (float64, bool) {
	return func(m metrics) (float64, bool) { return m.first(bench, units...) }
}

// slope is the per-node growth of a metric between two sub-benchmarks.
func slope(bench, lo, hi string, nlo, nhi int, units ...string) func(metrics) (float64, bool) {
	return func(m metrics) (float64, bool) {
		a, ok1 := m.first(bench+"/"+lo, units...)
		b, ok2 := m.first(bench+"/"+hi, units...)
		if !ok1 || !ok2 {
			return 0, false
		}
		return (b - a) / float64(nhi-nlo), true
	}
}

// groups are the benchmarks behind the figures issue 13 lists, cheapest
// first. scaleLo and scaleHi are the node counts of the scale benchmark.
func groups(scaleLo, scaleHi int) []group {
	lo, hi := fmt.Sprint(scaleLo), fmt.Sprint(scaleHi)
	sizes := lo + "|" + hi
	if scaleHi != 1000 && scaleLo != 1000 {
		sizes += "|1000" // ListNodes is measured with 1000 nodes
	}
	scaleFig := func(label, sub, unit, target string) figure {
		return figure{label: label, bench: "BenchmarkScale/" + sub, metric: unit, target: target}
	}
	return []group{
		{name: "startunit", pkg: "internal/cluster", bench: "^BenchmarkStartUnit$", benchtime: "100x", timeout: "10m", binDir: true,
			figs: []figure{
				{label: "start -> JobRemoved via API, median ms", bench: "BenchmarkStartUnit", metric: "bluechi-ms", target: "no regression"},
				{label: "start -> JobRemoved, ratio to direct systemd", bench: "BenchmarkStartUnit", metric: "ratio", target: "no regression (README 1.02-1.06x)"},
			}},
		{name: "jobcpu", pkg: "internal/cluster", bench: "^BenchmarkJobCPU$", benchtime: "400x", timeout: "10m", binDir: true,
			figs: []figure{
				{label: "CPU per job, controller µs", bench: "BenchmarkJobCPU", metric: "controller-us", target: "no regression"},
				{label: "CPU per job, agent µs", bench: "BenchmarkJobCPU", metric: "agent-us", target: "no worse"},
			}},
		{name: "online", pkg: "internal/cluster", bench: "^BenchmarkAgentOnline$", benchtime: "20x", timeout: "10m", binDir: true,
			figs: []figure{
				{label: "agent exec -> node online, median ms", bench: "BenchmarkAgentOnline", metric: "online-ms", target: "<= 15 (upstream 15-17)"},
				{label: "  of which sandbox exec (sh + nsenter), ms", bench: "BenchmarkAgentOnline", metric: "sandbox-exec-ms", target: "(same for both)"},
			}},
		{name: "eventcost", pkg: "internal/e2e", bench: "^BenchmarkControllerEventCost$", benchtime: "40000x", timeout: "10m", binDir: true,
			figs: []figure{
				{label: "controller CPU per state event, ns", bench: "BenchmarkControllerEventCost/state", metric: "ctrl-cpu-ns/event", target: "no regression"},
				{label: "controller CPU per props event, ns", bench: "BenchmarkControllerEventCost/props", metric: "ctrl-cpu-ns/event", target: "no regression"},
			}},
		{name: "storm", pkg: "internal/e2e", bench: "^BenchmarkMonitorStorm$", benchtime: "1x", timeout: "10m", binDir: true,
			figs: []figure{
				{label: "event storm: controller CPU %", bench: "BenchmarkMonitorStorm", metric: "ctrl-cpu-%", target: "no regression (< 4)"},
				{label: "event storm: CPU % per agent", bench: "BenchmarkMonitorStorm", metric: "agent-cpu-%", target: "<= 6 (upstream 6.2)"},
			}},
		{name: "memory", pkg: "internal/cluster", bench: "^BenchmarkMemory$", benchtime: "1000x", timeout: "15m", binDir: true, heavy: true,
			figs: []figure{
				{label: "idle RSS 3 nodes, controller kB", bench: "BenchmarkMemory", metric: "controller-idle-kB", target: "<= 5120"},
				{label: "idle RSS 3 nodes, agent kB", bench: "BenchmarkMemory", metric: "agent-idle-kB", target: "<= 5120"},
				{label: "controller RSS right after 1000 start/stop, kB", bench: "BenchmarkMemory", metric: "controller-after-kB", target: "<= 4096 (upstream 3.3 MB)"},
				{label: "  of which RssAnon (heap, stacks, runtime metadata)", bench: "BenchmarkMemory", metric: "controller-after-anon-kB", target: "-"},
				{label: "  of which RssFile (executable pages the work touched)", bench: "BenchmarkMemory", metric: "controller-after-file-kB", target: "-"},
				{label: "controller RSS settled after the cycles, kB", bench: "BenchmarkMemory", metric: "controller-end-kB", target: "no regression"},
				{label: "agent RSS settled after the cycles, kB", bench: "BenchmarkMemory", metric: "agent-end-kB", target: "no worse"},
				{label: "agent RSS growth over 1000 cycles, kB", bench: "BenchmarkMemory", metric: "agent-growth-kB", target: "no worse"},
			}},
		{name: "listunits", pkg: "internal/cluster", bench: "^BenchmarkListUnits$", benchtime: "50x", timeout: "15m", binDir: true, heavy: true,
			figs: []figure{
				{label: "Controller.ListUnits 20 nodes (cached), median ms", bench: "BenchmarkListUnits", metric: "controller-ms", target: "no regression"},
				{label: "  ratio to one node's systemd ListUnits", bench: "BenchmarkListUnits", metric: "ratio", target: "no regression (README 4.1-4.7x)"},
				{label: "  uncached, ratio", bench: "BenchmarkListUnits", metric: "uncached-ratio", target: "no regression"},
			}},
		{name: "scale", pkg: "internal/scalebench", bench: "^BenchmarkScale$/^(absent|registered)-(" + sizes + ")$", benchtime: "100x", timeout: "30m", heavy: true,
			figs: []figure{
				{label: fmt.Sprintf("controller RssAnon per registered node, kB (%s..%s)", lo, hi), derive: slope("BenchmarkScale", "registered-"+lo, "registered-"+hi, scaleLo, scaleHi, "rss-anon-kB"), target: "<= 16 (issue: slope 100..2000)"},
				{label: fmt.Sprintf("controller RssAnon per configured node, kB (%s..%s)", lo, hi), derive: slope("BenchmarkScale", "absent-"+lo, "absent-"+hi, scaleLo, scaleHi, "absent-rss-anon-kB", "rss-anon-kB"), target: "<= 4"},
				scaleFig("ListNodes median, 1000 registered nodes, ms", "registered-1000", "listnodes-med-ms", "<= 2 (was 4.4)"),
				{label: "ListNodes, 1000 configured nodes none connected, ms (median; mean where the benchmark has none)",
					derive: firstOf("BenchmarkScale/absent-1000", "absent-listnodes-med-ms", "ns/op"), target: "<= 2"},
				scaleFig("GetNode median, 1000 nodes, ms", "registered-1000", "getnode-med-ms", "no regression"),
				scaleFig("Node.ListUnits median, 1000 nodes, ms", "registered-1000", "node-listunits-med-ms", "no regression"),
				scaleFig("idle CPU %, 1000 nodes", "registered-1000", "idle-cpu-%", "no regression"),
				scaleFig("10% of 1000 nodes offline seen after, ms", "registered-1000", "offline-10pct-ms", "no regression"),
			}},
	}
}
