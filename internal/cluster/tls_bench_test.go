// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// BenchmarkTLSCost runs a plain and a mutual-TLS cluster side by side
// (node2 over TCP in both) and alternates a start of the oneshot service
// through each, until its JobRemoved, and directly on the systemd of a
// node without an agent (one with an agent would see those jobs' events
// too): medians plain-ms, tls-ms, systemd-ms, the ratios of
// both to systemd (plain-ratio, tls-ratio) and the CPU per job of the
// controller and node2's agent in each cluster (plain-controller-us,
// tls-controller-us, plain-agent-us, tls-agent-us; from /proc, so run
// enough jobs: -benchtime 300x).
func BenchmarkTLSCost(b *testing.B) {
	plain := start(b, cluster.Options{Names: cluster.DefaultNames(2)})
	secure := start(b, cluster.Options{Names: cluster.DefaultNames(2), TLS: true})
	type proc struct {
		name string
		pid  int
		cpu  float64
	}
	procs := []*proc{
		{name: "plain-controller-us", pid: plain.Controller().Process.Pid},
		{name: "tls-controller-us", pid: secure.Controller().Process.Pid},
		{name: "plain-agent-us", pid: plain.Agent("node2").Process.Pid},
		{name: "tls-agent-us", pid: secure.Agent("node2").Process.Pid},
	}
	throughPlain := rawStartThrough(b, plain.BusAddress, "node2")
	throughTLS := rawStartThrough(b, secure.BusAddress, "node2")
	bare := sandbox.StartT(b, sandbox.Options{Name: "bare", Units: sandbox.DemoUnits()})
	direct := rawStartDirect(b, bare.BusAddress)
	jobs := 0
	counted := func(f func() time.Duration) func() time.Duration {
		return func() time.Duration { jobs++; return f() }
	}
	// CPU counts the warm-up rounds too; so does jobs.
	for _, p := range procs {
		p.cpu = cpuSeconds(b, p.pid)
	}
	m := alternateAll(b, counted(throughPlain), counted(throughTLS), direct)
	perCluster := float64(jobs) / 2
	for _, p := range procs {
		b.ReportMetric((cpuSeconds(b, p.pid)-p.cpu)*1e6/perCluster, p.name)
	}
	b.ReportMetric(ms(m[0]), "plain-ms")
	b.ReportMetric(ms(m[1]), "tls-ms")
	b.ReportMetric(ms(m[2]), "systemd-ms")
	b.ReportMetric(float64(m[0])/float64(m[2]), "plain-ratio")
	b.ReportMetric(float64(m[1])/float64(m[2]), "tls-ratio")
}
