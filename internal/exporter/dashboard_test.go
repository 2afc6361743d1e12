// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

const dashboardFile = "../../install/grafana/bluechi-fleet.json"

// servedNames returns every series name an exporter with all its metrics
// populated serves (histograms as _bucket, _sum and _count).
func servedNames(t *testing.T) map[string]bool {
	b := newFakeBus(threeNodes()...)
	b.units["n1"] = []Unit{{"web.service", "active", "running"}}
	b.jobs["/j/1"] = [2]string{"n1", "start"}
	_, reg := run(t, Options{Units: []string{"*"}}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1, `bluechi_unit_active{node="n1",state="active",unit="web.service"}`: 1})
	h := b.handler(t)
	h.JobNew(1, "/j/1")
	h.JobRemoved(1, "/j/1", "n1", "web.service", "done")
	h.UnitStateChanged("n1", "web.service", "active", "running", false)
	h.AgentJob("n1", "web.service", "StartUnit", time.Second)
	h.StartUnitJob("n1", "web.service", time.Second)
	waitMetrics(t, reg, map[string]float64{`bluechi_job_duration_seconds_count{job_type="start",node="n1"}`: 1})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

// queries returns every PromQL text of the dashboard: panel targets and
// template variable queries.
func queries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition" || k == "query") {
				*out = append(*out, s)
				continue
			}
			queries(x, out)
		}
	case []any:
		for _, x := range v {
			queries(x, out)
		}
	}
}

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string           `json:"uid"`
		Title  string           `json:"title"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: uid %q, title %q, %d panels", dashboardFile, d.UID, d.Title, len(d.Panels))
	}
	var all any
	json.Unmarshal(raw, &all)
	var qs []string
	queries(all, &qs)
	served := servedNames(t)
	name := regexp.MustCompile(`\bbluechi_[a-z0-9_]+`)
	used := map[string]bool{}
	for _, q := range qs {
		for _, n := range name.FindAllString(q, -1) {
			used[n] = true
			if !served[n] {
				t.Errorf("dashboard query %q uses %s, which the exporter does not serve", q, n)
			}
		}
	}
	// The panels the issue asks for: fleet map, job rate and durations by
	// node, unit state changes.
	for _, n := range []string{"bluechi_node_online", "bluechi_jobs_total", "bluechi_job_duration_seconds_bucket", "bluechi_unit_state_changes_total"} {
		if !used[n] {
			t.Errorf("dashboard does not show %s", n)
		}
	}
	var titles []string
	for _, p := range d.Panels {
		title, _ := p["title"].(string)
		titles = append(titles, title)
		if tg, _ := p["targets"].([]any); len(tg) == 0 {
			t.Errorf("panel %q has no query", title)
		}
	}
	sort.Strings(titles)
	t.Logf("panels: %s", strings.Join(titles, "; "))
}
