// SPDX-License-Identifier: Apache-2.0

package exporter_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// fakeController serves the public API of a controller with n online
// nodes on a private bus: ListNodes, node and controller properties, and
// monitors whose signals the benchmark emits.
type fakeController struct {
	daemonapi.UnimplementedControllerServer
	conn  *dbus.Conn
	nodes []bluechi.NodeInfo

	mu       sync.Mutex // guards monitors
	monitors []*fakeMonitor
}

type fakeMonitor struct {
	daemonapi.UnimplementedMonitorServer
	obj   *daemonapi.MonitorObject
	owner string
}

func (m *fakeMonitor) Subscribe(ctx context.Context, node, unit string) (uint32, error) {
	return 1, nil
}
func (m *fakeMonitor) Close(ctx context.Context) error { return nil }

type fakeNode struct {
	daemonapi.UnimplementedNodeServer
}

func (c *fakeController) ListNodes(ctx context.Context) ([]bluechi.NodeInfo, error) {
	return c.nodes, nil
}

func (c *fakeController) CreateMonitor(ctx context.Context) (dbus.ObjectPath, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &fakeMonitor{owner: dbusrt.SenderFrom(ctx)}
	path := bluechi.MonitorPath(uint32(len(c.monitors) + 1))
	obj, err := daemonapi.ExportMonitor(c.conn, path, m, bluechi.MonitorProperties{})
	if err != nil {
		return "", err
	}
	m.obj = obj
	c.monitors = append(c.monitors, m)
	return path, nil
}

func (c *fakeController) monitor() *fakeMonitor {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.monitors) == 0 {
		return nil
	}
	return c.monitors[len(c.monitors)-1]
}

func startFakeController(tb testing.TB, n int) (*fakeController, string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "bx-") // short: a unix socket path has 108 bytes
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	bus, err := testbus.StartDaemon(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(bus.Stop)
	return serveFakeController(tb, bus.Address, n), bus.Address
}

// serveFakeController serves a fake controller with n online nodes on the
// bus at address.
func serveFakeController(tb testing.TB, address string, n int) *fakeController {
	tb.Helper()
	conn, _, err := dbusrt.ConnectBus(address)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := &fakeController{conn: conn}
	now := uint64(time.Now().UnixMicro())
	for i := range n {
		name := fmt.Sprintf("node%04d", i)
		path := bluechi.NodePath(name)
		c.nodes = append(c.nodes, bluechi.NodeInfo{Name: name, Path: path, Status: "online"})
		if _, err := daemonapi.ExportNode(conn, path, &fakeNode{}, bluechi.NodeProperties{Name: name, Status: "online", LastSeenTimestamp: now}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := daemonapi.ExportController(conn, bluechi.ControllerPath, c, bluechi.ControllerProperties{Status: "up", LogLevel: "INFO", LogTarget: "stderr"}); err != nil {
		tb.Fatal(err)
	}
	if err := dbusrt.RequestName(conn, bluechi.ControllerBusName); err != nil {
		tb.Fatal(err)
	}
	return c
}

// procStat returns a process's resident set (kB) and CPU time.
func procStat(tb testing.TB, pid int) (rssKB int, cpu time.Duration) {
	tb.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:])
	ut, _ := strconv.Atoi(f[11])                               // utime, field 14
	st, _ := strconv.Atoi(f[12])                               // stime, field 15
	return rssKB, time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// settle waits until the process has used no CPU for 200 ms.
func settle(tb testing.TB, pid int) {
	_, last := procStat(tb, pid)
	for quiet := 0; quiet < 2; {
		time.Sleep(100 * time.Millisecond)
		_, cpu := procStat(tb, pid)
		if cpu == last {
			quiet++
		} else {
			quiet, last = 0, cpu
		}
	}
}

func fakeExporter(b *testing.B, nodes int) (*fakeController, *exporterProc) {
	c, addr := startFakeController(b, nodes)
	p := startExporter(b, addr, "--bus-address", addr, "--last-seen-interval", "0")
	p.wait(b, time.Minute, "all nodes online", has(map[string]float64{`bluechi_up`: 1, `bluechi_nodes{status="online"}`: float64(nodes)}))
	return c, p
}

// BenchmarkScrape measures the exporter binary following a fake controller
// with 3 and with 1000 online nodes: the idle resident set, and the latency
// of a scrape (ns/op).
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{3, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			_, p := fakeExporter(b, n)
			pid := p.cmd.Process.Pid
			settle(b, pid)
			idle, _ := procStat(b, pid)
			body, _ := p.body()
			b.ResetTimer()
			for range b.N {
				if _, err := p.body(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			settle(b, pid)
			after, _ := procStat(b, pid)
			b.ReportMetric(float64(idle), "idle-rss-kB")
			b.ReportMetric(float64(after), "rss-after-scrapes-kB")
			b.ReportMetric(float64(len(body)), "body-bytes")
		})
	}
}

// BenchmarkUnitEvents measures the exporter's CPU per 1000 UnitStateChanged
// signals of its monitor (1000 online nodes, one signal per node per op).
func BenchmarkUnitEvents(b *testing.B) {
	const nodes = 1000
	c, p := fakeExporter(b, nodes)
	pid := p.cmd.Process.Pid
	m := c.monitor()
	if m == nil {
		b.Fatal("no monitor")
	}
	settle(b, pid)
	_, cpu0 := procStat(b, pid)
	b.ResetTimer()
	for i := range b.N {
		state := []string{"active", "inactive"}[i%2]
		for _, n := range c.nodes {
			if err := m.obj.EmitUnitStateChangedTo(m.owner, bluechi.MonitorUnitStateChangedSignal{Node: n.Name, Unit: "a.service", ActiveState: state, SubState: "x", Reason: "real"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	settle(b, pid)
	b.StopTimer()
	_, cpu1 := procStat(b, pid)
	want := map[string]float64{}
	for _, n := range c.nodes {
		want[`bluechi_unit_state_changes_total{node="`+n.Name+`"}`] = float64(b.N)
	}
	p.wait(b, time.Minute, "every event counted", has(want))
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/float64(b.N), "exporter-cpu-ms/1000events")
}

// BenchmarkRealCluster measures the idle resident set of the exporter
// binary following a real controller with 3 real nodes.
func BenchmarkRealCluster(b *testing.B) {
	c := startCluster(b, cluster.DefaultNames(3)...)
	p := startExporter(b, c.BusAddress)
	p.wait(b, time.Minute, "nodes online", has(map[string]float64{`bluechi_up`: 1, `bluechi_nodes{status="online"}`: 3}))
	pid := p.cmd.Process.Pid
	settle(b, pid)
	idle, _ := procStat(b, pid)
	b.ResetTimer()
	for range b.N {
		if _, err := p.body(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(idle), "idle-rss-kB")
}
