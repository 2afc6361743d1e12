// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"runtime"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bluechi-go/bluechi/internal/version"
)

// jobBuckets spread from 10 ms to 5 min: systemd jobs take from a fork to
// a slow start.
var jobBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// activeStates are systemd's ActiveState values, the members of the
// bluechi_unit_active state set (an unlisted value is added as it comes).
var activeStates = []string{"active", "reloading", "inactive", "failed", "activating", "deactivating", "maintenance", "refreshing"}

// controllerStates are the members of the bluechi_controller_status state set.
var controllerStates = []string{"up", "degraded", "down"}

var (
	descUp = prometheus.NewDesc("bluechi_up",
		"1 while the exporter follows a controller that answers, 0 otherwise.", nil, nil)
	descControllerStatus = prometheus.NewDesc("bluechi_controller_status",
		"The controller's Status property as a state set (down while it is unreachable).", []string{"status"}, nil)
	descNodes = prometheus.NewDesc("bluechi_nodes",
		"Configured nodes by connection status.", []string{"status"}, nil)
	descNodeOnline = prometheus.NewDesc("bluechi_node_online",
		"1 while the node's agent is registered, 0 otherwise.", []string{"node"}, nil)
	descNodeLastSeen = prometheus.NewDesc("bluechi_node_last_seen_timestamp_seconds",
		"Last registration or heartbeat of the node's agent, seconds since the epoch (absent if never seen).", []string{"node"}, nil)
	descUnitActive = prometheus.NewDesc("bluechi_unit_active",
		"ActiveState of each unit matching --units, as a state set.", []string{"node", "unit", "state"}, nil)
	descUnitSubState = prometheus.NewDesc("bluechi_unit_sub_state",
		"SubState of each unit matching --units: 1 for the current one.", []string{"node", "unit", "state"}, nil)
)

// metrics holds the exporter's collectors: counters and histograms updated
// by signals, and a collector that reads the kept state at scrape time.
type metrics struct {
	e            *Exporter
	jobsTotal    *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	stateChanges *prometheus.CounterVec
	agentJob     *prometheus.HistogramVec
	startUnitJob *prometheus.HistogramVec
	sessions     prometheus.Counter
	buildInfo    *prometheus.GaugeVec
}

func newMetrics(e *Exporter) *metrics {
	m := &metrics{e: e,
		jobsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bluechi_jobs_total",
			Help: "Finished BlueChi jobs (JobRemoved) by node, job type and result."}, []string{"node", "job_type", "result"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bluechi_job_duration_seconds",
			Help: "Time from JobNew to JobRemoved of BlueChi jobs.", Buckets: jobBuckets}, []string{"node", "job_type"}),
		stateChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bluechi_unit_state_changes_total",
			Help: "Unit active or sub state changes reported by systemd, by node."}, []string{"node"}),
		agentJob: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bluechi_agent_job_seconds",
			Help:    "Time systemd took for lifecycle jobs as measured by the agent (AgentJobMetrics; needs metrics enabled on the controller).",
			Buckets: jobBuckets}, []string{"node", "method"}),
		startUnitJob: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bluechi_start_unit_job_seconds",
			Help:    "Time from a StartUnit call to the end of its job (StartUnitJobMetrics; needs metrics enabled on the controller).",
			Buckets: jobBuckets}, []string{"node"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{Name: "bluechi_exporter_controller_sessions_total",
			Help: "Times the exporter started following a controller (the first connection and every reconnection)."}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bluechi_exporter_build_info",
			Help: "Version of bluechi-exporter and the Go release it was built with; always 1."}, []string{"version", "goversion"}),
	}
	m.buildInfo.WithLabelValues(version.Version, runtime.Version()).Set(1)
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{stateCollector{m.e}, m.jobsTotal, m.jobDuration, m.stateChanges,
		m.agentJob, m.startUnitJob, m.sessions, m.buildInfo}
}

// jobDone accounts a job whose JobRemoved and lookup are both in.
func (m *metrics) jobDone(j *jobState) {
	m.jobsTotal.WithLabelValues(j.node, j.typ, j.result).Inc()
	m.jobDuration.WithLabelValues(j.node, j.typ).Observe(j.end.Sub(j.start).Seconds())
}

// forgetNode drops every series of a node that left the configuration.
func (m *metrics) forgetNode(node string) {
	l := prometheus.Labels{"node": node}
	m.jobsTotal.DeletePartialMatch(l)
	m.jobDuration.DeletePartialMatch(l)
	m.stateChanges.DeletePartialMatch(l)
	m.agentJob.DeletePartialMatch(l)
	m.startUnitJob.DeletePartialMatch(l)
}

// stateCollector turns the kept state into gauges at scrape time: O(series),
// no calls to the controller.
type stateCollector struct{ e *Exporter }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descControllerStatus, descNodes, descNodeOnline, descNodeLastSeen, descUnitActive, descUnitSubState} {
		ch <- d
	}
}

type nodeRow struct {
	name     string
	online   bool
	lastSeen float64
}

type unitRow struct {
	unitKey
	unitState
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	up, status := e.up, e.ctrlStatus
	nodes := make([]nodeRow, 0, len(e.nodes))
	for name, n := range e.nodes {
		r := nodeRow{name: name, online: n.online}
		if !n.lastSeen.IsZero() {
			r.lastSeen = float64(n.lastSeen.UnixMicro()) / 1e6
		}
		nodes = append(nodes, r)
	}
	units := make([]unitRow, 0, len(e.units))
	for k, u := range e.units {
		units = append(units, unitRow{k, u})
	}
	e.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descUp, b2f(up))
	if !up {
		status = "down"
	}
	for _, s := range controllerStates {
		gauge(descControllerStatus, b2f(s == status), s)
	}
	if !contains(controllerStates, status) {
		gauge(descControllerStatus, 1, status)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].name < nodes[j].name })
	online := 0
	for _, n := range nodes {
		if n.online {
			online++
		}
		gauge(descNodeOnline, b2f(n.online), n.name)
		if n.lastSeen != 0 {
			gauge(descNodeLastSeen, n.lastSeen, n.name)
		}
	}
	gauge(descNodes, float64(online), "online")
	gauge(descNodes, float64(len(nodes)-online), "offline")
	for _, u := range units {
		for _, s := range activeStates {
			gauge(descUnitActive, b2f(s == u.active), u.node, u.unit, s)
		}
		if !contains(activeStates, u.active) {
			gauge(descUnitActive, 1, u.node, u.unit, u.active)
		}
		gauge(descUnitSubState, 1, u.node, u.unit, u.sub)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
