// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/systemd"
)

// Benchmarks on real clusters (make bench-cluster):
//
//	go test ./internal/cluster -run XXX -bench . -benchtime 200x

// BenchmarkStartUnit compares start->JobRemoved of a oneshot service through
// the controller with the same start made directly on the node's systemd.
// Both clients are built alike (see rawJobs), so the difference is the
// controller and the agent, not the client library. The two alternate
// within one loop, so that drift in the machine's load hits both alike,
// and the medians are reported with their ratio (bluechi-ms, systemd-ms,
// ratio); ns/op is one pair. The same comparison with godbus clients on
// both sides is in BenchmarkStartUnitFloor, with python3-dasbus in
// BenchmarkStartUnitDasbus.
func BenchmarkStartUnit(b *testing.B) {
	c := start(b, cluster.Options{Names: cluster.DefaultNames(2)})
	alternate(b, "bluechi-ms", rawStartThrough(b, c.BusAddress, "node2"), rawStartDirect(b, c.Node("node2").BusAddress))
}

// startThrough returns a timed start of the oneshot service through the
// controller, until its JobRemoved.
func startThrough(b *testing.B, node *bluechi.NodeClient, jobs *jobWaiter) func() time.Duration {
	return func() time.Duration {
		t0 := time.Now()
		job, err := node.StartUnit(context.Background(), sandbox.OneshotServiceName, "replace")
		if err != nil {
			b.Fatal(err)
		}
		if r := jobs.wait(b, job); r != "done" {
			b.Fatal(r)
		}
		return time.Since(t0)
	}
}

// alternate times ours and direct in turns over b.Loop, after a warm-up of
// both, and reports the medians (ours as name, direct as systemd-ms) and
// their ratio. It returns the direct median.
func alternate(b *testing.B, name string, ours, direct func() time.Duration) time.Duration {
	m := alternateAll(b, ours, direct)
	b.ReportMetric(ms(m[0]), name)
	b.ReportMetric(ms(m[1]), "systemd-ms")
	b.ReportMetric(float64(m[0])/float64(m[1]), "ratio")
	return m[1]
}

// alternateAll times fns in turns over b.Loop, after a warm-up of each,
// rotating which goes first so that drift in the machine's load hits all
// alike, and returns their medians.
func alternateAll(b *testing.B, fns ...func() time.Duration) []time.Duration {
	for i := 0; i < 10; i++ {
		for _, f := range fns {
			f()
		}
	}
	times := make([][]time.Duration, len(fns))
	for i := 0; b.Loop(); i++ {
		for k := range fns {
			j := (i + k) % len(fns)
			times[j] = append(times[j], fns[j]())
		}
	}
	m := make([]time.Duration, len(fns))
	for i := range times {
		m[i] = median(times[i])
	}
	return m
}

// jobCluster starts a cluster of two nodes and returns it with a bus
// client's job waiter and its client of node2, the node jobs run on.
func jobCluster(b *testing.B) (*cluster.Cluster, *jobWaiter, *bluechi.NodeClient) {
	c := start(b, cluster.Options{Names: cluster.DefaultNames(2)})
	conn, err := c.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return c, newJobWaiter(b, conn), bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("node2"))
}

// median returns the middle of v (which it sorts).
func median[T cmp.Ordered](v []T) T {
	if len(v) == 0 {
		var zero T
		return zero
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkListUnits compares Controller.ListUnits over 20 nodes with one
// node's own systemd ListUnits, alternating within one loop like
// BenchmarkStartUnit (medians: controller-ms, systemd-ms, ratio). The
// cluster is quiet, so the controller answers from its unit cache; the
// "uncached" ratio is one call each right after every node's cache was
// invalidated (a unit change on every node: a miss costs a fan-out).
func BenchmarkListUnits(b *testing.B) {
	names := cluster.DefaultNames(20)
	c := start(b, cluster.Options{Names: names})
	conn, err := c.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	sd, err := systemd.Connect(ctx, systemd.Options{Address: c.Node("node2").BusAddress})
	if err != nil {
		b.Fatal(err)
	}
	defer sd.Close()
	viaBluechi := func() time.Duration {
		t0 := time.Now()
		units, err := ctrl.ListUnits(ctx)
		if err != nil || len(units) != len(names) {
			b.Fatalf("%d nodes, %v", len(units), err)
		}
		return time.Since(t0)
	}
	direct := func() time.Duration {
		t0 := time.Now()
		if _, err := sd.ListUnits(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	ms := alternate(b, "controller-ms", viaBluechi, direct)
	b.ReportMetric(float64(uncachedListUnits(b, ctrl, names))/float64(ms), "uncached-ratio")
}

// uncachedListUnits returns the median time of Controller.ListUnits right
// after a unit change on every node (a oneshot started on each), which makes
// every node's cache entry invalid.
func uncachedListUnits(b *testing.B, ctrl *bluechi.ControllerClient, names []string) time.Duration {
	ctx := context.Background()
	jobs := newJobWaiter(b, ctrl.Conn())
	var ds []time.Duration
	for i := 0; i < 15; i++ {
		for _, n := range names {
			node := bluechi.NewNodeClient(ctrl.Conn(), bluechi.NodeBusName, bluechi.NodePath(n))
			job, err := node.StartUnit(ctx, sandbox.OneshotServiceName, "replace")
			if err != nil {
				b.Fatal(err)
			}
			if r := jobs.wait(b, job); r != "done" {
				b.Fatal(r)
			}
		}
		t0 := time.Now()
		if _, err := ctrl.ListUnits(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	return median(ds)
}

// rssKB reads a process's resident set size.
func rssKB(tb testing.TB, pid int) float64 { return statusKB(tb, pid, "VmRSS:") }

// statusKB reads one kB field of /proc/PID/status.
func statusKB(tb testing.TB, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	tb.Fatalf("no %s for %d", field, pid)
	return 0
}

// BenchmarkMemory reports the daemons' RSS idle with 3 nodes (right after
// start-up, and settled after 300 start/stop cycles), their RSS right after
// b.N further cycles (controller-after-kB, agent-after-kB; the controller's
// also as RssAnon and RssFile) and settled again
// (controller-end-kB, agent-end-kB), and the growth between the two settled
// points (run with -benchtime 1000x for the figures).
func BenchmarkMemory(b *testing.B) {
	c := start(b, cluster.Options{Names: cluster.DefaultNames(3)})
	conn, err := c.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	ctrlPid, agentPid := c.Controller().Process.Pid, c.Agent("node2").Process.Pid
	// Idle means idle: let the daemons settle (they drop start-up pages of
	// their executable 2 s after start) while heartbeats keep flowing.
	time.Sleep(4 * time.Second)
	ctrlIdle, agentIdle := rssKB(b, ctrlPid), rssKB(b, agentPid)
	jobs := newJobWaiter(b, conn)
	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("node2"))
	cycle := func() {
		for _, op := range []func(context.Context, string, string) (dbus.ObjectPath, error){node.StartUnit, node.StopUnit} {
			job, err := op(ctx, sandbox.SimpleServiceName, "replace")
			if err != nil {
				b.Fatal(err)
			}
			if r := jobs.wait(b, job); r != "done" {
				b.Fatal(r)
			}
		}
	}
	// Warm up so that one-time allocations do not count as growth: the
	// controller's runtime metadata and heap settle at a level about
	// 300 kB above the one after 50 cycles, reached before 250 cycles and
	// flat from there (measured up to 3000 cycles). The
	// settled figures are the median of 30 samples over 6 s of idling,
	// taken once the daemons had 5 s to notice they are idle (memtrim
	// checks every 2 s) and return the burst's heap pages. The daemons
	// drop their executable's pages whenever they fall quiet after a
	// garbage collection, and the pages they then use come back within a
	// second, so the median is what an idle daemon holds. Growth compares
	// the medians of the two windows: then it is what stayed, not the
	// last burst's high-water mark or where the garbage collector happened
	// to be at one sample.
	for i := 0; i < 300; i++ {
		cycle()
	}
	settled := func() (ctrl, agent, ctrlAnon, agentAnon float64) {
		var cs, as, cas, aas []float64
		time.Sleep(5 * time.Second)
		for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			cs, as = append(cs, rssKB(b, ctrlPid)), append(as, rssKB(b, agentPid))
			cas = append(cas, statusKB(b, ctrlPid, "RssAnon:"))
			aas = append(aas, statusKB(b, agentPid, "RssAnon:"))
		}
		return median(cs), median(as), median(cas), median(aas)
	}
	ctrlWarm, agentWarm, ctrlAnon, agentAnon := settled()
	b.ResetTimer()
	for b.Loop() {
		cycle()
	}
	b.StopTimer()
	// Right after the cycles: what upstream's figure compares (one sample,
	// before the daemons had time to fall quiet and trim).
	ctrlAfter, agentAfter := rssKB(b, ctrlPid), rssKB(b, agentPid)
	ctrlAfterAnon, ctrlAfterFile := statusKB(b, ctrlPid, "RssAnon:"), statusKB(b, ctrlPid, "RssFile:")
	ctrlEnd, agentEnd, ctrlAnonEnd, agentAnonEnd := settled()
	b.ReportMetric(ctrlIdle, "controller-idle-kB")
	b.ReportMetric(agentIdle, "agent-idle-kB")
	// Idle again after work, with the garbage collector run at least once.
	b.ReportMetric(ctrlWarm, "controller-settled-kB")
	b.ReportMetric(agentWarm, "agent-settled-kB")
	b.ReportMetric(ctrlAfter, "controller-after-kB")
	b.ReportMetric(agentAfter, "agent-after-kB")
	// Its parts: the heap, stacks and runtime metadata; and the pages of
	// the executable the work touched (text, function tables, types).
	b.ReportMetric(ctrlAfterAnon, "controller-after-anon-kB")
	b.ReportMetric(ctrlAfterFile, "controller-after-file-kB")
	b.ReportMetric(ctrlEnd, "controller-end-kB")
	b.ReportMetric(agentEnd, "agent-end-kB")
	b.ReportMetric(ctrlEnd-ctrlWarm, "controller-growth-kB")
	b.ReportMetric(agentEnd-agentWarm, "agent-growth-kB")
	b.ReportMetric(ctrlAnonEnd-ctrlAnon, "controller-anon-growth-kB")
	b.ReportMetric(agentAnonEnd-agentAnon, "agent-anon-growth-kB")
}

// BenchmarkJobCPU reports the CPU time the controller, the agent and the
// node's systemd spend per start of a oneshot service through the API
// (controller-us, agent-us, systemd-us; from /proc, so run enough jobs:
// the clock tick is 10 ms).
func BenchmarkJobCPU(b *testing.B) {
	c, jobs, node := jobCluster(b)
	ctx := context.Background()
	systemdPid := 0
	for _, p := range c.Node("node2").Pids() {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "systemd" {
			systemdPid = p
		}
	}
	if systemdPid == 0 {
		b.Fatal("no systemd in node2")
	}
	pids := []int{c.Controller().Process.Pid, c.Agent("node2").Process.Pid, systemdPid}
	var before [3]float64
	for i, p := range pids {
		before[i] = cpuSeconds(b, p)
	}
	for b.Loop() {
		job, err := node.StartUnit(ctx, sandbox.OneshotServiceName, "replace")
		if err != nil {
			b.Fatal(err)
		}
		if r := jobs.wait(b, job); r != "done" {
			b.Fatal(r)
		}
	}
	for i, name := range []string{"controller-us", "agent-us", "systemd-us"} {
		b.ReportMetric((cpuSeconds(b, pids[i])-before[i])*1e6/float64(b.N), name)
	}
}

// cpuSeconds reads a process's user and system CPU time.
func cpuSeconds(tb testing.TB, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// BenchmarkAgentOnline measures the time from starting bluechi-agent (its
// exec through the node's sandbox) until the API bus carries node2's Status
// "online" (online-ms, the median; the agent is stopped and the node seen
// offline before each start). sandbox-exec-ms is the median time to run
// /bin/true the same way: the share of the figure that is the sandbox's
// shell and nsenter, not the agent. Run it with -benchtime 20x.
func BenchmarkAgentOnline(b *testing.B) {
	c := start(b, cluster.Options{Names: cluster.DefaultNames(2)})
	conn, err := c.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("node2"))
	status := make(chan string, 16)
	sub, err := node.OnPropertiesChanged(ctx, func(p *bluechi.NodePropertiesChanged) {
		if s, ok := p.Status(); ok {
			status <- s
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	waitStatus := func(want string) {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case s := <-status:
				if s == want {
					return
				}
			case <-timeout:
				b.Fatalf("node2 not %s within 30 s", want)
			}
		}
	}
	// stop ends node2's agent and waits until it has exited and the
	// controller has reported the node offline.
	stop := func() {
		agent := c.Agent("node2")
		if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		waitStatus("offline")
		deadline := time.Now().Add(10 * time.Second)
		for agent.Process.Signal(syscall.Signal(0)) == nil { // until reaped
			if time.Now().After(deadline) {
				b.Fatal("agent did not exit within 10 s of SIGTERM")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	online := func() time.Duration {
		stop()
		t0 := time.Now()
		if _, err := c.StartAgent("node2"); err != nil {
			b.Fatal(err)
		}
		waitStatus("online")
		return time.Since(t0)
	}
	exec := func() time.Duration {
		t0 := time.Now()
		if out, err := c.Node("node2").Command(ctx, "/bin/true").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		return time.Since(t0)
	}
	for range 3 {
		online()
		exec()
	}
	var onlines, execs []time.Duration
	for b.Loop() {
		onlines = append(onlines, online())
		execs = append(execs, exec())
	}
	b.ReportMetric(ms(median(onlines)), "online-ms")
	b.ReportMetric(ms(median(execs)), "sandbox-exec-ms")
}
