// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bluechi-go/bluechi/internal/syncbuf"
)

var seen = time.Unix(1700000000, 500000000)

func threeNodes() []Node {
	return []Node{{"n1", "online", seen}, {"n2", "online", seen}, {"n3", "offline", time.Time{}}}
}

func TestSnapshotAndNodeSignals(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	_, reg := run(t, Options{}, b)
	waitMetrics(t, reg, map[string]float64{
		`bluechi_up`: 1,
		`bluechi_controller_status{status="degraded"}`:        1,
		`bluechi_controller_status{status="up"}`:              0,
		`bluechi_controller_status{status="down"}`:            0,
		`bluechi_nodes{status="online"}`:                      2,
		`bluechi_nodes{status="offline"}`:                     1,
		`bluechi_node_online{node="n1"}`:                      1,
		`bluechi_node_online{node="n3"}`:                      0,
		`bluechi_node_last_seen_timestamp_seconds{node="n1"}`: 1700000000.5,
		`bluechi_node_last_seen_timestamp_seconds{node="n3"}`: -1,
		`bluechi_exporter_controller_sessions_total`:          1,
	})
	h := b.handler(t)
	b.mu.Lock()
	b.nodes[2].LastSeen = seen.Add(time.Second)
	b.mu.Unlock()
	h.NodeStatusChanged("n3", "online")
	h.NodeStatusChanged("n1", "offline")
	h.ControllerStatusChanged("up")
	waitMetrics(t, reg, map[string]float64{
		`bluechi_node_online{node="n1"}`:                      0,
		`bluechi_node_online{node="n3"}`:                      1,
		`bluechi_node_last_seen_timestamp_seconds{node="n3"}`: 1700000001.5,
		`bluechi_controller_status{status="up"}`:              1,
		`bluechi_controller_status{status="degraded"}`:        0,
	})
}

func TestScrapeMakesNoCalls(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	_, reg := run(t, Options{}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1}) // the snapshot's calls are over
	before := b.callCount()
	for range 10 {
		scrape(t, reg)
	}
	if after := b.callCount(); after != before {
		t.Fatalf("10 scrapes made %d calls", after-before)
	}
}

func TestJobs(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	b.jobs["/j/1"] = [2]string{"n1", "start"}
	b.jobs["/j/2"] = [2]string{"n2", "stop"}
	_, reg := run(t, Options{}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
	h := b.handler(t)
	h.JobNew(1, "/j/1")
	h.JobRemoved(1, "/j/1", "n1", "u.service", "done")
	// JobRemoved before the job's type is read: counted once it is.
	gate := make(chan struct{})
	b.mu.Lock()
	b.jobGate = gate
	b.mu.Unlock()
	h.JobNew(2, "/j/2")
	h.JobRemoved(2, "/j/2", "n2", "u.service", "failed")
	got := scrape(t, reg)
	if _, ok := got[`bluechi_jobs_total{job_type="stop",node="n2",result="failed"}`]; ok {
		t.Fatal("job 2 counted before its type was known")
	}
	close(gate)
	// A job whose JobNew came before the session, and one that vanished
	// before its type could be read.
	h.JobRemoved(7, "/j/7", "n1", "v.service", "done")
	h.JobNew(8, "/j/8")
	h.JobRemoved(8, "/j/8", "n2", "w.service", "canceled")
	waitMetrics(t, reg, map[string]float64{
		`bluechi_jobs_total{job_type="start",node="n1",result="done"}`:       1,
		`bluechi_jobs_total{job_type="stop",node="n2",result="failed"}`:      1,
		`bluechi_jobs_total{job_type="unknown",node="n1",result="done"}`:     1,
		`bluechi_jobs_total{job_type="unknown",node="n2",result="canceled"}`: 1,
		`bluechi_job_duration_seconds_count{job_type="start",node="n1"}`:     1,
		`bluechi_job_duration_seconds_count{job_type="stop",node="n2"}`:      1,
		`bluechi_job_duration_seconds_count{job_type="unknown",node="n1"}`:   -1,
	})
}

func TestUnits(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	b.units["n1"] = []Unit{{"web.service", "active", "running"}, {"db.service", "inactive", "dead"}, {"other.mount", "active", "mounted"}}
	_, reg := run(t, Options{Units: []string{"*.service"}}, b)
	waitMetrics(t, reg, map[string]float64{
		`bluechi_unit_active{node="n1",state="active",unit="web.service"}`:     1,
		`bluechi_unit_active{node="n1",state="inactive",unit="web.service"}`:   0,
		`bluechi_unit_sub_state{node="n1",state="running",unit="web.service"}`: 1,
		`bluechi_unit_active{node="n1",state="inactive",unit="db.service"}`:    1,
		`bluechi_unit_active{node="n1",state="active",unit="other.mount"}`:     -1,
	})
	h := b.handler(t)
	h.UnitStateChanged("n1", "db.service", "failed", "failed", false)
	h.UnitStateChanged("n1", "other.mount", "inactive", "dead", false)
	h.UnitStateChanged("n2", "*", "inactive", "agent-offline", true)
	h.UnitStateChanged("n2", "x.service", "active", "running", true)
	waitMetrics(t, reg, map[string]float64{
		`bluechi_unit_active{node="n1",state="failed",unit="db.service"}`:    1,
		`bluechi_unit_sub_state{node="n1",state="failed",unit="db.service"}`: 1,
		`bluechi_unit_sub_state{node="n1",state="dead",unit="db.service"}`:   -1,
		`bluechi_unit_state_changes_total{node="n1"}`:                        2,
		`bluechi_unit_state_changes_total{node="n2"}`:                        -1,
		`bluechi_unit_active{node="n2",state="active",unit="x.service"}`:     1,
	})
	h.UnitRemoved("n1", "web.service", false)
	h.UnitRemoved("n2", "*", true)
	waitMetrics(t, reg, map[string]float64{
		`bluechi_unit_active{node="n1",state="active",unit="web.service"}`: -1,
		`bluechi_unit_active{node="n2",state="active",unit="x.service"}`:   -1,
		`bluechi_unit_active{node="n1",state="failed",unit="db.service"}`:  1,
	})
	h.NodeStatusChanged("n1", "offline")
	waitMetrics(t, reg, map[string]float64{`bluechi_unit_active{node="n1",state="failed",unit="db.service"}`: -1})
}

func TestAgentMetrics(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	_, reg := run(t, Options{EnableMetrics: true}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
	b.mu.Lock()
	on := b.metricOn
	b.mu.Unlock()
	if !on {
		t.Fatal("EnableMetrics not called")
	}
	h := b.handler(t)
	h.AgentJob("n1", "u.service", "StartUnit", 1500*time.Millisecond)
	h.StartUnitJob("n1", "u.service", 2*time.Second)
	waitMetrics(t, reg, map[string]float64{
		`bluechi_agent_job_seconds_count{method="StartUnit",node="n1"}`: 1,
		`bluechi_agent_job_seconds_sum{method="StartUnit",node="n1"}`:   1.5,
		`bluechi_start_unit_job_seconds_sum{node="n1"}`:                 2,
	})
}

func TestControllerRestartKeepsCounters(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	b.jobs["/j/1"] = [2]string{"n1", "start"}
	_, reg := run(t, Options{}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
	h := b.handler(t)
	h.JobNew(1, "/j/1")
	h.JobRemoved(1, "/j/1", "n1", "u.service", "done")
	h.UnitStateChanged("n1", "u.service", "active", "running", false)
	counters := map[string]float64{
		`bluechi_jobs_total{job_type="start",node="n1",result="done"}`: 1,
		`bluechi_unit_state_changes_total{node="n1"}`:                  1,
	}
	waitMetrics(t, reg, counters)

	b.mu.Lock()
	b.openErr = errors.New("not yet")
	b.mu.Unlock()
	b.setOwner("")
	down := map[string]float64{`bluechi_up`: 0, `bluechi_controller_status{status="down"}`: 1,
		`bluechi_node_online{node="n1"}`: 0, `bluechi_nodes{status="online"}`: 0}
	for k, v := range counters {
		down[k] = v
	}
	waitMetrics(t, reg, down)
	// Signals of the old session are ignored.
	h.NodeStatusChanged("n1", "online")
	waitMetrics(t, reg, down)

	// The controller is back but its first answers fail: retried with backoff.
	opens := b.openCount()
	b.setOwner(":1.9")
	deadline := time.Now().Add(10 * time.Second)
	for b.openCount() < opens+3 {
		if time.Now().After(deadline) {
			t.Fatal("no retries")
		}
		time.Sleep(time.Millisecond)
	}
	b.mu.Lock()
	b.openErr = nil
	b.mu.Unlock()
	up := map[string]float64{`bluechi_up`: 1, `bluechi_node_online{node="n1"}`: 1, `bluechi_exporter_controller_sessions_total`: 2}
	for k, v := range counters {
		up[k] = v
	}
	waitMetrics(t, reg, up)
}

func TestBusLostRedials(t *testing.T) {
	b1, b2 := newFakeBus(threeNodes()...), newFakeBus(threeNodes()[:1]...)
	_, reg := run(t, Options{}, b1, b2)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1, `bluechi_nodes{status="offline"}`: 1})
	b1.Close()
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1, `bluechi_nodes{status="offline"}`: 0,
		`bluechi_node_online{node="n2"}`: -1, `bluechi_exporter_controller_sessions_total`: 2})
}

func TestLastSeenRefresh(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	_, reg := run(t, Options{LastSeenInterval: 5 * time.Millisecond}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_node_last_seen_timestamp_seconds{node="n2"}`: 1700000000.5})
	b.mu.Lock()
	b.nodes[1].LastSeen = seen.Add(2 * time.Second)
	b.mu.Unlock()
	waitMetrics(t, reg, map[string]float64{`bluechi_node_last_seen_timestamp_seconds{node="n2"}`: 1700000002.5})
}

// TestNoGoroutineLeak: after Run returns, no goroutine of the exporter is
// left, lookups in flight included.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("run", func(t *testing.T) {
		b := newFakeBus(threeNodes()...)
		b.jobGate = make(chan struct{}) // lookups that never answer
		_, reg := run(t, Options{Units: []string{"*"}, LastSeenInterval: time.Millisecond}, b)
		waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
		h := b.handler(t)
		for i := range uint32(10) {
			h.JobNew(i, "/j/x")
		}
		b.setOwner("")
		b.setOwner(":1.7")
		waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1, `bluechi_exporter_controller_sessions_total`: 2})
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before, %d after", before, runtime.NumGoroutine())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHungController(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	_, reg := run(t, Options{LastSeenInterval: 2 * time.Millisecond}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
	b.mu.Lock()
	b.hung, b.openErr = true, errors.New("timeout")
	b.mu.Unlock()
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 0, `bluechi_node_online{node="n1"}`: 0})
	b.mu.Lock()
	b.hung, b.openErr = false, nil
	b.mu.Unlock()
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1, `bluechi_exporter_controller_sessions_total`: 2})
}

// A node that is no longer configured when the controller comes back loses
// all its series, counters and histograms included; the others keep theirs.
func TestRemovedNodeSeriesDropped(t *testing.T) {
	b := newFakeBus(threeNodes()...)
	b.jobs["/j/1"] = [2]string{"n3", "start"}
	b.jobs["/j/2"] = [2]string{"n1", "start"}
	_, reg := run(t, Options{}, b)
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
	h := b.handler(t)
	for id, n := range map[uint32]string{1: "n3", 2: "n1"} {
		h.JobNew(id, fmt.Sprintf("/j/%d", id))
		h.JobRemoved(id, fmt.Sprintf("/j/%d", id), n, "u.service", "done")
		h.UnitStateChanged(n, "u.service", "active", "running", false)
		h.AgentJob(n, "u.service", "StartUnit", time.Second)
		h.StartUnitJob(n, "u.service", time.Second)
	}
	series := func(n string) []string {
		return []string{
			`bluechi_node_online{node="` + n + `"}`,
			`bluechi_jobs_total{job_type="start",node="` + n + `",result="done"}`,
			`bluechi_job_duration_seconds_count{job_type="start",node="` + n + `"}`,
			`bluechi_unit_state_changes_total{node="` + n + `"}`,
			`bluechi_agent_job_seconds_count{method="StartUnit",node="` + n + `"}`,
			`bluechi_start_unit_job_seconds_count{node="` + n + `"}`,
		}
	}
	all := map[string]float64{}
	for _, k := range append(series("n1"), series("n3")...) {
		all[k] = 1
	}
	all[`bluechi_node_online{node="n3"}`] = 0
	waitMetrics(t, reg, all)

	// The controller restarts with n3 gone from its configuration.
	b.setOwner("")
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 0})
	b.mu.Lock()
	b.nodes = threeNodes()[:2]
	b.mu.Unlock()
	b.setOwner(":1.9")
	want := map[string]float64{`bluechi_up`: 1, `bluechi_exporter_controller_sessions_total`: 2}
	for _, k := range series("n1")[1:] {
		want[k] = 1
	}
	for _, k := range series("n3") {
		want[k] = -1
	}
	waitMetrics(t, reg, want)
}

// TestBusDialFailuresLoggedOnce: while the bus stays away with the same
// error, the exporter warns once and logs each further attempt at debug
// level; once connected it says after how many failures.
func TestBusDialFailuresLoggedOnce(t *testing.T) {
	var sink syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := newFakeBus(threeNodes()...)
	var mu sync.Mutex
	dials := 0
	dial := func(ctx context.Context) (Bus, error) {
		mu.Lock()
		defer mu.Unlock()
		dials++
		if dials <= 5 {
			return nil, errors.New("dial unix /run/dbus/system_bus_socket: connect: no such file or directory")
		}
		return b, nil
	}
	e := New(dial, Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Logger: logger})
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collectors()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitMetrics(t, reg, map[string]float64{`bluechi_up`: 1})
	out := sink.String()
	if n := strings.Count(out, `level=WARN msg="cannot connect to the bus"`); n != 1 {
		t.Errorf("%d warnings for 5 failed dials, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `level=DEBUG msg="cannot connect to the bus"`); n != 4 {
		t.Errorf("%d debug lines for the 4 repeated failures, want 4:\n%s", n, out)
	}
	if !strings.Contains(out, `msg="connected to the bus" failed_attempts=5`) {
		t.Errorf("no line on connecting after the failures:\n%s", out)
	}
}
