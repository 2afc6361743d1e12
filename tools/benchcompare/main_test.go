// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const sample = `goos: linux
BenchmarkStartUnit-2   	     100	  30000000 ns/op	        14.50 bluechi-ms	        13.90 systemd-ms	         1.043 ratio
BenchmarkScale/absent-100-2         	     100	    800000 ns/op	      3000 rss-anon-kB
BenchmarkScale/registered-100-2     	     100	    900000 ns/op	      4000 rss-anon-kB	         1.50 listnodes-med-ms
BenchmarkScale/registered-1000-2    	     100	   4000000 ns/op	     22000 rss-anon-kB	         3.90 listnodes-med-ms
BenchmarkMonitorStorm-2
--- FAIL: BenchmarkMonitorStorm-2
    storm_test.go:351: figure 4.500 ctrl-cpu-%
    storm_test.go:352: figure 7.250 agent-cpu-%
    storm_test.go:370: controller used 4.50 % of one core
FAIL
`

func TestParse(t *testing.T) {
	m := parse(strings.NewReader(sample), 2)
	for _, c := range []struct {
		bench, unit string
		want        float64
	}{
		{"BenchmarkStartUnit", "ratio", 1.043},
		{"BenchmarkStartUnit", "bluechi-ms", 14.5},
		{"BenchmarkScale/registered-1000", "listnodes-med-ms", 3.9},
		{"BenchmarkScale/absent-100", "rss-anon-kB", 3000},
		{"BenchmarkMonitorStorm", "agent-cpu-%", 7.25},
		{"BenchmarkMonitorStorm", "ctrl-cpu-%", 4.5},
	} {
		if got, ok := m.get(c.bench, c.unit); !ok || got != c.want {
			t.Errorf("%s %s = %v, %v; want %v", c.bench, c.unit, got, ok, c.want)
		}
	}
	f := slope("BenchmarkScale", "registered-100", "registered-1000", 100, 1000, "rss-anon-kB")
	if v, ok := f(m); !ok || v != 20 {
		t.Errorf("slope = %v, %v; want 20", v, ok)
	}
	if _, ok := slope("BenchmarkScale", "absent-100", "absent-1000", 100, 1000, "rss-anon-kB")(m); ok {
		t.Error("slope without its larger point")
	}
	if v, ok := firstOf("BenchmarkScale/absent-100", "absent-listnodes-med-ms", "ns/op")(m); !ok || v != 0.8 {
		t.Errorf("absent ListNodes from ns/op = %v, %v; want 0.8", v, ok)
	}
}

func TestMarkdown(t *testing.T) {
	g := group{name: "startunit", figs: []figure{
		{label: "ratio", bench: "BenchmarkStartUnit", metric: "ratio", target: "no regression"},
		{label: "missing", bench: "BenchmarkStartUnit", metric: "nothing", target: "-"},
	}}
	run := func(v float64) result {
		return result{m: metrics{"BenchmarkStartUnit": {"ratio": v}}, dur: time.Second}
	}
	results := map[string]map[string][]result{"startunit": {
		"BASE": {run(1.10), run(1.00), run(1.30)},
		"HEAD": {run(1.05), {err: errors.New("startunit HEAD round 2: exit status 1")}},
	}}
	out := report{base: "b", head: "h", rounds: 3, heavyRounds: 2}.markdown([]group{g}, results)
	for _, want := range []string{
		"| ratio | 1.10 (1.00 .. 1.30, 3) | 1.05 (1.05 .. 1.05, 1) | 0.95x | no regression |",
		"| missing | n/a | n/a |  | - |",
		"- startunit HEAD round 2: exit status 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestSelectGroups(t *testing.T) {
	sel, err := selectGroups(groups(100, 1000), "storm,memory")
	if err != nil || len(sel) != 2 || sel[0].name != "storm" {
		t.Fatalf("%v %v", sel, err)
	}
	if _, err := selectGroups(groups(100, 1000), "nope"); err == nil {
		t.Error("unknown group accepted")
	}
}
