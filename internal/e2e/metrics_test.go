// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// metricsLog records the public metrics signals.
type metricsLog struct {
	mu     sync.Mutex
	starts []*bluechi.MetricsStartUnitJobMetricsSignal
	agents []*bluechi.MetricsAgentJobMetricsSignal
}

func (m *metricsLog) snapshot() ([]*bluechi.MetricsStartUnitJobMetricsSignal, []*bluechi.MetricsAgentJobMetricsSignal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*bluechi.MetricsStartUnitJobMetricsSignal(nil), m.starts...), append([]*bluechi.MetricsAgentJobMetricsSignal(nil), m.agents...)
}

// introspectMetrics introspects the Metrics object as proxy libraries do.
func (c *cluster) introspectMetrics() error {
	return c.client.Object(bluechi.ControllerBusName, bluechi.MetricsPath).Call(dbusrt.IntrospectableInterface+".Introspect", 0).Err
}

// TestMetrics re-creates metrics-enable-and-disable and metrics-start-unit:
// the Metrics object exists only while metrics are on, and a start and a
// stop on a real node give StartUnitJobMetrics and AgentJobMetrics with
// plausible times (the slow unit spends 2 s in ExecStartPre).
func TestMetrics(t *testing.T) {
	c := newCluster(t, "node-m")
	c.startAgent("node-m")
	c.waitStatus("node-m", "online")
	ctx := context.Background()
	ctrl := c.controller()
	jobs := c.jobs()

	if err := c.introspectMetrics(); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("Metrics object before EnableMetrics: %v", err)
	}
	if err := ctrl.EnableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.EnableMetrics(ctx); dbusrt.ErrorName(err) != dbusrt.ErrInconsistentMessage {
		t.Fatalf("EnableMetrics twice: %v", err)
	}
	if err := c.introspectMetrics(); err != nil {
		t.Fatalf("Metrics object after EnableMetrics: %v", err)
	}
	log := &metricsLog{}
	m := bluechi.NewMetricsClient(c.client, bluechi.ControllerBusName, bluechi.MetricsPath)
	s1, err := m.OnStartUnitJobMetrics(ctx, func(s *bluechi.MetricsStartUnitJobMetricsSignal) {
		log.mu.Lock()
		log.starts = append(log.starts, s)
		log.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := m.OnAgentJobMetrics(ctx, func(s *bluechi.MetricsAgentJobMetricsSignal) {
		log.mu.Lock()
		log.agents = append(log.agents, s)
		log.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	slow := sandbox.SlowServiceName
	job, err := c.node("node-m").StartUnit(ctx, slow, "replace")
	if err != nil {
		t.Fatal(err)
	}
	if r := jobs.result(job); r != "done" {
		t.Fatalf("start: %s", r)
	}
	if r := c.runJob(jobs, "node-m", "stop", slow); r != "done" {
		t.Fatalf("stop: %s", r)
	}
	c.waitFor("metrics signals", func() bool {
		starts, agents := log.snapshot()
		return len(starts) == 1 && len(agents) == 2
	})
	starts, agents := log.snapshot()
	st := starts[0]
	t.Logf("StartUnitJobMetrics %+v", *st)
	for _, a := range agents {
		t.Logf("AgentJobMetrics %+v", *a)
	}
	const sec = uint64(time.Second / time.Microsecond)
	if st.NodeName != "node-m" || st.JobID != string(job) || st.Unit != slow {
		t.Fatalf("StartUnitJobMetrics %+v for job %s", *st, job)
	}
	if st.UnitStartPropTimeMicros < 2*sec || st.UnitStartPropTimeMicros > 10*sec {
		t.Errorf("unit start time %d µs, want the 2 s of ExecStartPre", st.UnitStartPropTimeMicros)
	}
	if st.JobMeasuredTimeMicros < st.UnitStartPropTimeMicros || st.JobMeasuredTimeMicros > 15*sec {
		t.Errorf("job time %d µs, want at least the unit's %d µs", st.JobMeasuredTimeMicros, st.UnitStartPropTimeMicros)
	}
	if a := agents[0]; a.NodeName != "node-m" || a.Unit != slow || a.Method != "StartUnit" ||
		a.SystemdJobTimeMicros < 2*sec || a.SystemdJobTimeMicros > st.JobMeasuredTimeMicros {
		t.Errorf("AgentJobMetrics of the start %+v", *a)
	}
	if a := agents[1]; a.NodeName != "node-m" || a.Unit != slow || a.Method != "StopUnit" ||
		a.SystemdJobTimeMicros == 0 || a.SystemdJobTimeMicros > 10*sec {
		t.Errorf("AgentJobMetrics of the stop %+v", *a)
	}

	if err := ctrl.DisableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.DisableMetrics(ctx); dbusrt.ErrorName(err) != dbusrt.ErrInconsistentMessage {
		t.Fatalf("DisableMetrics twice: %v", err)
	}
	if err := c.introspectMetrics(); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("Metrics object after DisableMetrics: %v", err)
	}
	// Off again: a job leaves no metrics (the agent is off too: after
	// turning metrics back on, only the new job reports).
	if r := c.runJob(jobs, "node-m", "start", sandbox.SimpleServiceName); r != "done" {
		t.Fatalf("start: %s", r)
	}
	if err := ctrl.EnableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if r := c.runJob(jobs, "node-m", "stop", sandbox.SimpleServiceName); r != "done" {
		t.Fatalf("stop: %s", r)
	}
	c.waitFor("metrics of the stop", func() bool { _, agents := log.snapshot(); return len(agents) == 3 })
	starts, agents = log.snapshot()
	if len(starts) != 1 || agents[2].Method != "StopUnit" || agents[2].Unit != sandbox.SimpleServiceName {
		t.Fatalf("metrics while off: %d starts, last agent metrics %+v", len(starts), *agents[2])
	}

	// An agent that reconnects is switched on again at registration.
	stop(c.agents["node-m"])
	c.waitStatus("node-m", "offline")
	c.startAgent("node-m")
	c.waitStatus("node-m", "online")
	if r := c.runJob(jobs, "node-m", "start", sandbox.OneshotServiceName); r != "done" {
		t.Fatalf("oneshot: %s", r)
	}
	c.waitFor("metrics after reconnect", func() bool { starts, agents := log.snapshot(); return len(starts) == 2 && len(agents) == 4 })
}
