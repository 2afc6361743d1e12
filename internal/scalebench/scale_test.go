// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

var (
	buildOnce  sync.Once
	controller string // the built bluechi-controller
	buildErr   error
	binDir     string
)

// controllerBinary builds bluechi-controller once per test binary, static
// and without -race as make build does, so that memory figures are real.
func controllerBinary(tb testing.TB) string {
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "bluechi-scale-bin-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/bluechi-go/bluechi/cmd/bluechi-controller")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		controller = filepath.Join(binDir, "bluechi-controller")
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return controller
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// env is a controller with its API bus and its simulated agents.
type env struct {
	tb     testing.TB
	dir    string
	bus    *testbus.Bus
	port   int
	cmd    *exec.Cmd
	api    *dbus.Conn
	ctrl   *bluechi.ControllerClient
	names  []string // configured nodes
	agents []*simAgent
}

// raiseFileLimit makes room for n more descriptors in this process.
func raiseFileLimit(tb testing.TB, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	want := uint64(n + 256)
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		lim.Max = want // needs privilege; fails clearly otherwise
	}
	lim.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatalf("raising RLIMIT_NOFILE to %d for %d connections: %v", want, n, err)
	}
}

// openFileLimit reads the soft "Max open files" of a process.
func openFileLimit(tb testing.TB, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for l := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(l, "Max open files"); ok {
			f := strings.Fields(rest)
			if f[0] == "unlimited" {
				return 1 << 30
			}
			v, _ := strconv.Atoi(f[0])
			return v
		}
	}
	tb.Fatalf("no open file limit for %d", pid)
	return 0
}

// startEnv starts a dbus-daemon and the controller configured with
// configured node names sim1..simN.
func startEnv(tb testing.TB, configured int) *env {
	tb.Helper()
	bin := controllerBinary(tb)
	raiseFileLimit(tb, configured)
	e := &env{tb: tb, dir: tb.TempDir()}
	var err error
	if e.bus, err = testbus.StartDaemon(e.dir); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.bus.Stop)
	if e.port, err = freePort(); err != nil {
		tb.Fatal(err)
	}
	var conf strings.Builder
	// The node threshold is raised from 2.5 s so that a loaded machine
	// does not drop simulated nodes whose heartbeats (every 2 s) queue up.
	fmt.Fprintf(&conf, "[bluechi-controller]\nControllerPort=%d\nUseTCP=true\nUseUDS=false\nLogTarget=stderr\nLogLevel=WARN\nNodeHeartbeatThreshold=10000\n", e.port)
	for i := range configured {
		name := fmt.Sprintf("sim%d", i+1)
		e.names = append(e.names, name)
		fmt.Fprintf(&conf, "[node %s]\nAllowed=true\n", name)
	}
	cfg := filepath.Join(e.dir, "controller.conf")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(e.dir, "controller.log"))
	if err != nil {
		tb.Fatal(err)
	}
	e.cmd = exec.Command(bin, "-u", "-c", cfg)
	e.cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+e.bus.Address)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { e.cmd.Wait(); logf.Close(); close(exited) }()
	tb.Cleanup(func() {
		for _, a := range e.agents {
			a.Close()
		}
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
			<-exited
		}
		if tb.Failed() {
			log, _ := os.ReadFile(filepath.Join(e.dir, "controller.log"))
			tb.Logf("controller log:\n%s", tail(log, 4000))
		}
	})
	if e.api, _, err = dbusrt.ConnectBus(e.bus.Address); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.api.Close() })
	e.ctrl = bluechi.NewControllerClient(e.api, bluechi.ControllerBusName, bluechi.ControllerPath)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var has bool
		e.api.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, bluechi.ControllerBusName).Store(&has)
		if has {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("controller did not take its bus name within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The TCP listener opens after the bus name is taken.
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("controller not listening on TCP within 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lim := openFileLimit(tb, e.cmd.Process.Pid); lim < configured+64 {
		tb.Fatalf("controller may open only %d files, fewer than %d nodes need", lim, configured)
	}
	return e
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// connect registers simulated agents for the first n configured nodes,
// 32 at a time, and waits until the API lists them all online.
func (e *env) connect(n int) {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", e.port)
	agents := make([]*simAgent, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := dialAgent(ctx, addr, e.names[i])
			if err != nil {
				errs <- err
				return
			}
			agents[i] = a
		})
	}
	wg.Wait()
	close(errs)
	for _, a := range agents {
		if a != nil {
			e.agents = append(e.agents, a)
		}
	}
	if err := <-errs; err != nil {
		e.tb.Fatal(err)
	}
	for {
		nodes, err := e.ctrl.ListNodes(ctx)
		if err != nil {
			e.tb.Fatal(err)
		}
		online := 0
		for _, nd := range nodes {
			if nd.Status == "online" {
				online++
			}
		}
		if online == n {
			return
		}
		if ctx.Err() != nil {
			e.tb.Fatalf("%d of %d nodes online", online, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusKB reads one kB field of /proc/PID/status.
func statusKB(tb testing.TB, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for l := range strings.Lines(string(data)) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	tb.Fatalf("no %s for %d", field, pid)
	return 0
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

// settledAnonKB lets the controller go idle (heartbeats keep flowing; its
// memory trimmer checks every 2 s) and returns the median RssAnon of
// samples over 4 s.
func (e *env) settledAnonKB() float64 {
	time.Sleep(5 * time.Second)
	var v []float64
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		v = append(v, statusKB(e.tb, e.cmd.Process.Pid, "RssAnon:"))
	}
	return quantile(v, 0.5)
}

// quantile returns the q-quantile (nearest rank) of v.
func quantile[T int64 | float64 | time.Duration](v []T, q float64) T {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func msOf(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// timeCalls runs call n times and returns the median and p99 in ms.
func timeCalls(tb testing.TB, n int, call func() error) (median, p99 float64) {
	ds := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if err := call(); err != nil {
			tb.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	return msOf(quantile(ds, 0.5)), msOf(quantile(ds, 0.99))
}

// scaleResults keeps each sub-benchmark's RssAnon for the slopes.
var scaleResults = struct {
	sync.Mutex
	registered, absent map[int]float64
}{registered: map[int]float64{}, absent: map[int]float64{}}

var scaleSizes = []int{10, 100, 1000, 2000}

// BenchmarkScale runs the real controller with N simulated agents (N = 10,
// 100, 1000, 2000) and reports, per N: the controller's settled RssAnon
// (registered: N configured nodes all connected; absent: N configured
// nodes, none connected), its idle CPU with every agent heartbeating,
// ListNodes (as ns/op and median/p99), GetNode, Node.ListUnits and
// Controller.ListUnits latencies from a client on the API bus, and the time
// until the API has reported 10% of the nodes offline after their
// connections were closed at once. The slope sub-benchmark reports the
// RssAnon per node between 100 and 2000 nodes. Each sub-benchmark sets up
// its own controller once; b.N is the number of ListNodes calls (ns/op is
// their mean), so run with e.g. -benchtime 300x.
func BenchmarkScale(b *testing.B) {
	for _, n := range scaleSizes {
		b.Run(fmt.Sprintf("absent-%d", n), func(b *testing.B) {
			e := startEnv(b, n)
			anon := e.settledAnonKB()
			scaleResults.Lock()
			scaleResults.absent[n] = anon
			scaleResults.Unlock()
			for b.Loop() {
				if _, err := e.ctrl.ListNodes(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(anon, "rss-anon-kB")
		})
		b.Run(fmt.Sprintf("registered-%d", n), func(b *testing.B) { benchRegistered(b, n) })
	}
	b.Run("slope", func(b *testing.B) {
		scaleResults.Lock()
		defer scaleResults.Unlock()
		for b.Loop() {
		}
		lo, hi := scaleSizes[1], scaleSizes[len(scaleSizes)-1]
		if r1, ok1 := scaleResults.registered[lo]; ok1 {
			if r2, ok2 := scaleResults.registered[hi]; ok2 {
				b.ReportMetric((r2-r1)/float64(hi-lo), "kB/registered-node")
			}
		}
		if a1, ok1 := scaleResults.absent[lo]; ok1 {
			if a2, ok2 := scaleResults.absent[hi]; ok2 {
				b.ReportMetric((a2-a1)/float64(hi-lo), "kB/configured-node")
			}
		}
	})
}

func benchRegistered(b *testing.B, n int) {
	ctx := context.Background()
	e := startEnv(b, n)
	e.connect(n)
	pid := e.cmd.Process.Pid
	anon := e.settledAnonKB()
	scaleResults.Lock()
	scaleResults.registered[n] = anon
	scaleResults.Unlock()

	// Idle CPU: nothing but heartbeats (both ways) for 10 s.
	cpu0, t0 := cpuSeconds(b, pid), time.Now()
	time.Sleep(10 * time.Second)
	idle := (cpuSeconds(b, pid) - cpu0) / time.Since(t0).Seconds() * 100

	var listNodes []time.Duration
	for b.Loop() {
		t := time.Now()
		if _, err := e.ctrl.ListNodes(ctx); err != nil {
			b.Fatal(err)
		}
		listNodes = append(listNodes, time.Since(t))
	}
	getMed, getP99 := timeCalls(b, 200, func() error {
		_, err := e.ctrl.GetNode(ctx, e.names[rand.N(n)])
		return err
	})
	unitsMed, unitsP99 := timeCalls(b, 200, func() error {
		node := bluechi.NewNodeClient(e.api, bluechi.NodeBusName, bluechi.NodePath(e.names[rand.N(n)]))
		units, err := node.ListUnits(ctx)
		if err == nil && len(units) != 20 {
			err = fmt.Errorf("ListUnits returned %d units, want 20", len(units))
		}
		return err
	})
	allMed, allP99 := timeCalls(b, max(5, min(50, 20000/n)), func() error {
		units, err := e.ctrl.ListUnits(ctx)
		if err == nil && len(units) != n {
			err = fmt.Errorf("Controller.ListUnits answered for %d nodes, want %d", len(units), n)
		}
		return err
	})

	offline := e.dropTenth()

	b.ReportMetric(anon, "rss-anon-kB")
	b.ReportMetric(idle, "idle-cpu-%")
	b.ReportMetric(msOf(quantile(listNodes, 0.5)), "listnodes-med-ms")
	b.ReportMetric(msOf(quantile(listNodes, 0.99)), "listnodes-p99-ms")
	b.ReportMetric(getMed, "getnode-med-ms")
	b.ReportMetric(getP99, "getnode-p99-ms")
	b.ReportMetric(unitsMed, "node-listunits-med-ms")
	b.ReportMetric(unitsP99, "node-listunits-p99-ms")
	b.ReportMetric(allMed, "all-listunits-med-ms")
	b.ReportMetric(allP99, "all-listunits-p99-ms")
	b.ReportMetric(msOf(offline), "offline-10pct-ms")
}

// dropTenth closes the connections of every tenth agent at once and
// returns the time until the API bus has carried a Status "offline"
// PropertiesChanged for each of them.
func (e *env) dropTenth() time.Duration {
	e.tb.Helper()
	conn, _, err := dbusrt.ConnectBus(e.bus.Address)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer conn.Close()
	ns := dbus.ObjectPath(path.Dir(string(bluechi.NodePath("x"))))
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
		dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace(ns),
		dbus.WithMatchArg(0, bluechi.NodeInterface)); err != nil {
		e.tb.Fatal(err)
	}
	ch := make(chan *dbus.Signal, len(e.agents))
	conn.Signal(ch)
	// A round trip through the bus makes sure the match is in place.
	if _, err := e.ctrl.GetStatus(context.Background()); err != nil {
		e.tb.Fatal(err)
	}
	want := map[string]bool{}
	var drop []*simAgent
	for i, a := range e.agents {
		if i%10 == 0 {
			drop = append(drop, a)
			want[string(bluechi.NodePath(a.name))] = true
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, a := range drop {
		wg.Go(a.Close)
	}
	timeout := time.After(time.Minute)
	for len(want) > 0 {
		select {
		case s := <-ch:
			if len(s.Body) < 2 {
				continue
			}
			changed, _ := s.Body[1].(map[string]dbus.Variant)
			if v, ok := changed["Status"]; ok && v.Value() == "offline" {
				delete(want, string(s.Path))
			}
		case <-timeout:
			e.tb.Fatalf("%d nodes not reported offline within a minute", len(want))
		}
	}
	d := time.Since(t0)
	wg.Wait()
	e.agents = slices.DeleteFunc(e.agents, func(a *simAgent) bool { return slices.Contains(drop, a) })
	return d
}

// TestSimulatedAgents is the smoke check of the benchmark's parts (run by
// make test): a few simulated agents register with the real controller,
// answer ListUnits through it and are seen offline when they leave.
func TestSimulatedAgents(t *testing.T) {
	e := startEnv(t, 12)
	e.connect(10) // two configured nodes stay absent
	ctx := context.Background()
	nodes, err := e.ctrl.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 12 {
		t.Fatalf("ListNodes: %d nodes, want 12", len(nodes))
	}
	units, err := e.ctrl.ListUnits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 10 || len(units["sim3"]) != 20 {
		t.Fatalf("ListUnits: %d nodes, %d units on sim3; want 10 and 20", len(units), len(units["sim3"]))
	}
	if d := e.dropTenth(); d <= 0 {
		t.Fatal("no offline time")
	}
	nodes, err = e.ctrl.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	online := 0
	for _, nd := range nodes {
		if nd.Status == "online" {
			online++
		}
	}
	if online != 9 {
		t.Fatalf("%d nodes online after one of 10 left, want 9", online)
	}
}
