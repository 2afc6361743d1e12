// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	localcluster "github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// Storm parameters (the load: 3 nodes x 10 units restarting every
// 100 ms, watched by one "*"/"*" monitor for 10 s).
const (
	stormNodes    = 3
	stormUnits    = 10
	stormDuration = 10 * time.Second
	stormMaxCPU   = 4.0 // percent of one core
)

// stormUnit exits at once and is restarted after 100 ms, forever.
const stormUnit = `[Unit]
Description=storm unit
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=/bin/true
Restart=always
RestartSec=100ms
`

// stormMarker is started once on every node after the storm: its final
// state change follows every storm event in each ordered stream, so once
// both sides have seen it, both counts are complete.
const (
	stormMarkerName = "storm-marker.service"
	stormMarker     = "[Service]\nType=oneshot\nExecStart=/bin/true\n"
)

// markers records, per node, that the marker ran to its end.
type markers struct {
	mu   sync.Mutex
	ran  map[string]bool
	done map[string]bool
}

func (m *markers) state(node, active string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if active == "activating" {
		m.ran[node] = true
	}
	if active == "inactive" && m.ran[node] {
		m.done[node] = true
	}
}

func (m *markers) isDone(node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done[node]
}

// stateCount counts changes of (ActiveState, SubState) per node and unit.
type stateCount struct {
	mu    sync.Mutex
	last  map[string][2]string
	count map[string]int // by node
}

func newStateCount() *stateCount {
	return &stateCount{last: map[string][2]string{}, count: map[string]int{}}
}

// change records the state of unit on node; it counts when it differs
// from the last one (units start inactive/dead).
func (s *stateCount) change(node, unit, active, sub string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := node + "/" + unit
	prev, ok := s.last[k]
	if !ok {
		prev = [2]string{"inactive", "dead"}
	}
	if active == "" {
		active = prev[0]
	}
	if sub == "" {
		sub = prev[1]
	}
	if prev != [2]string{active, sub} {
		s.count[node]++
	}
	s.last[k] = [2]string{active, sub}
}

// add counts one event for node.
func (s *stateCount) add(node string) {
	s.mu.Lock()
	s.count[node]++
	s.mu.Unlock()
}

func (s *stateCount) get(node string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[node]
}

// procCPU returns the CPU time (user + system) a process has used.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// BenchmarkMonitorStorm runs the real binaries (built without the race
// detector) on 3 sandboxed nodes with 10 units each restarting every
// 100 ms, and a "*"/"*" monitor. It checks that every change of
// ActiveState/SubState that each node's systemd signals reaches the
// monitor as a real UnitStateChanged, every PropertiesChanged of a storm
// unit as a UnitPropertiesChanged, and that the controller stays under 4 %
// of one core. Run it with
//
//	go test -run XXX -bench MonitorStorm -benchtime 1x ./internal/e2e
func BenchmarkMonitorStorm(b *testing.B) {
	dir := b.TempDir()
	var names []string
	var opts []sandbox.Options
	units := map[string]string{}
	var unitNames []string
	for i := 0; i < stormUnits; i++ {
		n := fmt.Sprintf("storm-%02d.service", i)
		units[n] = stormUnit
		unitNames = append(unitNames, n)
	}
	units[stormMarkerName] = stormMarker
	for i := 0; i < stormNodes; i++ {
		names = append(names, fmt.Sprintf("storm%d", i))
		opts = append(opts, sandbox.Options{Name: names[i], Units: units})
	}
	nodes := sandbox.StartAllT(b, opts...)
	bc := startBenchController(b, "", names...)
	bin, port, ctrlCmd, client := bc.bin, bc.port, bc.cmd, bc.client
	ctx := context.Background()
	agentConf := filepath.Join(dir, "agent.conf")
	if err := os.WriteFile(agentConf, []byte("[bluechi-agent]\nLogTarget=stderr\nLogLevel=INFO\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	var agentPids []int
	for i, n := range nodes {
		cmd := n.Command(ctx, filepath.Join(bin, "bluechi-agent"), "-u", "-n", names[i], "-H", "127.0.0.1", "-p", fmt.Sprint(port), "-c", agentConf)
		log, err := os.Create(filepath.Join(dir, "agent-"+names[i]+".log"))
		if err != nil {
			b.Fatal(err)
		}
		defer log.Close()
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer stop(cmd)
		agentPids = append(agentPids, cmd.Process.Pid)
	}
	agentsCPU := func() time.Duration {
		var sum time.Duration
		for _, p := range agentPids {
			c, err := procCPU(p)
			if err != nil {
				b.Fatal(err)
			}
			sum += c
		}
		return sum
	}
	for _, n := range names {
		node := bluechi.NewNodeClient(client, bluechi.NodeBusName, bluechi.NodePath(n))
		waitTB(b, n+" online", func() bool { s, _ := node.GetStatus(ctx); return s == "online" })
	}

	// What each node's systemd says, watched on the node's own bus.
	truth := newStateCount()
	truthProps := newStateCount() // PropertiesChanged of storm units, all interfaces
	truthMarks := &markers{ran: map[string]bool{}, done: map[string]bool{}}
	seenMarks := &markers{ran: map[string]bool{}, done: map[string]bool{}}
	storm := map[string]bool{}
	for _, u := range unitNames {
		storm[u] = true
	}
	for i, n := range nodes {
		conn, err := n.Connect()
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.systemd1"), dbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
			dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace("/org/freedesktop/systemd1/unit")); err != nil {
			b.Fatal(err)
		}
		// Subscribe ourselves: the agent talks to systemd on its private
		// socket, so its subscription does not make systemd signal on the bus.
		if err := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").Call("org.freedesktop.systemd1.Manager.Subscribe", 0).Err; err != nil {
			b.Fatal(err)
		}
		ch := make(chan *dbus.Signal, 4096)
		conn.Signal(ch)
		name := names[i]
		go func() {
			for sig := range ch {
				unit := dbusrt.UnescapeLabel(strings.TrimPrefix(string(sig.Path), "/org/freedesktop/systemd1/unit/"))
				if len(sig.Body) != 3 {
					continue
				}
				if storm[unit] {
					truthProps.add(name)
				}
				if iface, _ := sig.Body[0].(string); iface != "org.freedesktop.systemd1.Unit" {
					continue
				}
				changed, _ := sig.Body[1].(map[string]dbus.Variant)
				active, _ := changed["ActiveState"].Value().(string)
				sub, _ := changed["SubState"].Value().(string)
				if unit == stormMarkerName {
					truthMarks.state(name, active)
				}
				if storm[unit] {
					truth.change(name, unit, active, sub)
				}
			}
		}()
	}

	// The monitor.
	seen := newStateCount()
	props := newStateCount()
	path, err := bluechi.NewControllerClient(client, bluechi.ControllerBusName, bluechi.ControllerPath).CreateMonitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mon := bluechi.NewMonitorClient(client, bluechi.ControllerBusName, path)
	s1, err := mon.OnUnitStateChanged(ctx, func(s *bluechi.MonitorUnitStateChangedSignal) {
		if s.Reason == "real" && storm[s.Unit] {
			seen.add(s.Node)
		}
		if s.Unit == stormMarkerName {
			seenMarks.state(s.Node, s.ActiveState)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s1.Close()
	s2, err := mon.OnUnitPropertiesChanged(ctx, func(s *bluechi.MonitorUnitPropertiesChangedSignal) {
		if storm[s.Unit] {
			props.add(s.Node)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s2.Close()
	if _, err := mon.Subscribe(ctx, "*", "*"); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	cpu0, err := procCPU(ctrlCmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	agents0 := agentsCPU()
	start := time.Now()
	for _, n := range names {
		node := bluechi.NewNodeClient(client, bluechi.NodeBusName, bluechi.NodePath(n))
		for _, u := range unitNames {
			if _, err := node.StartUnit(ctx, u, "replace"); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(stormDuration) // the load itself: 10 s of restarts
	cpu1, err := procCPU(ctrlCmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	agents1 := agentsCPU()
	elapsed := time.Since(start)
	for _, n := range names {
		node := bluechi.NewNodeClient(client, bluechi.NodeBusName, bluechi.NodePath(n))
		for _, u := range unitNames {
			if _, err := node.StopUnit(ctx, u, "replace"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()

	// Every change each node's systemd signalled arrives, once: the
	// marker closes both streams.
	for _, n := range names {
		node := bluechi.NewNodeClient(client, bluechi.NodeBusName, bluechi.NodePath(n))
		if _, err := node.StartUnit(ctx, stormMarkerName, "replace"); err != nil {
			b.Fatal(err)
		}
	}
	waitTB(b, "the marker on both sides", func() bool {
		for _, n := range names {
			if !truthMarks.isDone(n) || !seenMarks.isDone(n) {
				return false
			}
		}
		return true
	})
	total, totalSeen := 0, 0
	for _, n := range names {
		if seen.get(n) != truth.get(n) {
			b.Errorf("%s: systemd signalled %d state changes, the monitor got %d", n, truth.get(n), seen.get(n))
		}
		if props.get(n) != truthProps.get(n) {
			b.Errorf("%s: systemd signalled %d property changes, the monitor got %d", n, truthProps.get(n), props.get(n))
		}
		total += truth.get(n)
		totalSeen += seen.get(n)
		b.Logf("%s: %d state changes signalled by systemd, %d received; %d property changes signalled, %d received",
			n, truth.get(n), seen.get(n), truthProps.get(n), props.get(n))
	}
	allProps := 0
	for _, n := range names {
		allProps += props.get(n)
	}
	cpu := float64(cpu1-cpu0) / float64(elapsed) * 100
	agentCPU := float64(agents1-agents0) / float64(elapsed) * 100 / float64(len(agentPids))
	// Logged as well: a benchmark that fails (the CPU limit below) prints
	// no metrics, and a before/after comparison still wants the figures.
	b.Logf("figure %.3f ctrl-cpu-%%", cpu)
	b.Logf("figure %.3f agent-cpu-%%", agentCPU)
	b.ReportMetric(cpu, "ctrl-cpu-%")
	// The agents' CPU, summed over the 3 nodes, per node.
	b.ReportMetric(agentCPU, "agent-cpu-%")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "state-changes/s")
	b.ReportMetric(float64(total+allProps)/elapsed.Seconds(), "monitor-signals/s")
	if cpu > stormMaxCPU {
		b.Errorf("controller used %.2f %% of one core over %v, want < %.0f %%", cpu, elapsed.Round(time.Millisecond), stormMaxCPU)
	}
}

// benchController is a controller built without the race detector,
// running on its own bus, with a client connection to that bus.
type benchController struct {
	bin    string // folder with bluechi-controller and bluechi-agent
	port   int
	cmd    *exec.Cmd
	client *dbus.Conn
	log    string // the controller's log file
}

// startBenchController builds the daemons without the race detector (or
// takes the prebuilt ones cluster.BinDirEnv names) and starts the controller for the given nodes, with extra configuration lines. BLUECHI_STORM_ENV adds
// KEY=VALUE words to the controller's environment (e.g. "GOMAXPROCS=1
// GOGC=400") to compare runtime settings.
func startBenchController(tb testing.TB, extra string, names ...string) *benchController {
	bc := &benchController{bin: localcluster.PrebuiltBinDir(), port: freePortTB(tb)}
	if bc.bin == "" {
		bc.bin = tb.TempDir()
		build := exec.Command("go", "build", "-o", bc.bin+"/", "github.com/bluechi-go/bluechi/cmd/bluechi-controller", "github.com/bluechi-go/bluechi/cmd/bluechi-agent")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			tb.Fatal(err)
		}
	}
	dir := tb.TempDir()
	bus := testbus.Start(tb)
	conf := fmt.Sprintf("[bluechi-controller]\nAllowedNodeNames=%s\nControllerPort=%d\nUseUDS=false\nLogTarget=stderr\nLogLevel=INFO\n%s",
		strings.Join(names, ","), bc.port, extra)
	confFile := filepath.Join(dir, "controller.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	bc.log = filepath.Join(dir, "controller.log")
	ctrlLog, err := os.Create(bc.log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctrlLog.Close()
		if tb.Failed() {
			data, _ := os.ReadFile(bc.log)
			tb.Logf("--- controller.log ---\n%s", tail(string(data), 4000))
		}
	})
	bc.cmd = exec.Command(filepath.Join(bc.bin, "bluechi-controller"), "-u", "-c", confFile)
	bc.cmd.Env = append(append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+bus.Address), strings.Fields(os.Getenv("BLUECHI_STORM_ENV"))...)
	bc.cmd.Stdout, bc.cmd.Stderr = ctrlLog, ctrlLog
	if err := bc.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stop(bc.cmd) })
	if bc.client, _, err = dbusrt.ConnectBus(bus.Address); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { bc.client.Close() })
	waitTB(tb, "controller", func() bool {
		var has bool
		bc.client.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, bluechi.ControllerBusName).Store(&has)
		return has
	})
	return bc
}

func freePortTB(t testing.TB) int {
	p, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitTB polls cond until it holds, for at most 60 s.
func waitTB(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
