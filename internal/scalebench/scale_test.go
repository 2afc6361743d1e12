// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"context"
	"fmt"
	"io"
	"maps"
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

// baseEnv names a second controller to measure side by side with this
// tree's, alternating (before/after in one run): a source tree (a clone of
// an older commit) to build, or a built binary.
const baseEnv = "BLUECHI_SCALE_BASE"

// ctrlBinary is one controller binary under test.
type ctrlBinary struct {
	label string // "this", or "base" for the one baseEnv names
	path  string
}

var (
	buildOnce sync.Once
	binaries  []ctrlBinary // "this" first
	buildErr  error
	binDir    string
)

// controllerBinaries builds bluechi-controller once per test binary,
// static and without -race as make build does, so that memory figures are
// real; with baseEnv set, the base controller too (listed first).
func controllerBinaries(tb testing.TB) []ctrlBinary {
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "bluechi-scale-bin-"); buildErr != nil {
			return
		}
		build := func(label, dir string) {
			out := filepath.Join(binDir, label)
			cmd := exec.Command("go", "build", "-o", out, "./cmd/bluechi-controller")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build in %s: %v\n%s", dir, err, msg)
				return
			}
			binaries = append(binaries, ctrlBinary{label, out})
		}
		if base := os.Getenv(baseEnv); base != "" {
			if st, err := os.Stat(base); err != nil {
				buildErr = fmt.Errorf("%s: %w", baseEnv, err)
				return
			} else if st.IsDir() {
				build("base", base)
			} else {
				binaries = append(binaries, ctrlBinary{"base", base})
			}
		}
		if buildErr == nil {
			build("this", "../..")
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binaries
}

// thisBinary is the controller built from this tree.
func thisBinary(tb testing.TB) string {
	bins := controllerBinaries(tb)
	return bins[len(bins)-1].path
}

func TestMain(m *testing.M) {
	code := m.Run()
	printTable(os.Stdout)
	printTLSTable(os.Stdout)
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
	fleet  *tlsFleet // UseTLS=yes: the agents' certificates; nil: plain TCP
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
func startEnv(tb testing.TB, bin string, configured int) *env {
	tb.Helper()
	return startEnvWith(tb, bin, configured, nil)
}

// startEnvWith is startEnv; with a fleet, the controller has UseTLS=yes
// with the fleet's files and the agents dial over mutual TLS.
func startEnvWith(tb testing.TB, bin string, configured int, fleet *tlsFleet) *env {
	tb.Helper()
	raiseFileLimit(tb, configured)
	e := &env{tb: tb, dir: tb.TempDir(), fleet: fleet}
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
	if fleet != nil {
		conf.WriteString(fleet.controllerKeys())
	}
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
			a, err := dialAgent(ctx, addr, e.names[i], e.fleet.dialer(e.names[i]))
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

// results keeps every sub-benchmark's figures for the table TestMain
// prints: binary label -> N -> metric -> value.
var results = struct {
	sync.Mutex
	m map[string]map[int]map[string]float64
}{m: map[string]map[int]map[string]float64{}}

// record reports a metric and keeps it for the table.
func record(b *testing.B, label string, n int, name string, v float64) {
	b.ReportMetric(v, name)
	results.Lock()
	defer results.Unlock()
	if results.m[label] == nil {
		results.m[label] = map[int]map[string]float64{}
	}
	if results.m[label][n] == nil {
		results.m[label][n] = map[string]float64{}
	}
	results.m[label][n][name] = v
}

// scaleSizes are the Ns measured; BLUECHI_SCALE_SIZES (e.g. "10,100")
// picks others. The slopes need 100 and 2000.
var scaleSizes = func() []int {
	sizes := []int{10, 100, 1000, 2000}
	if env := os.Getenv("BLUECHI_SCALE_SIZES"); env != "" {
		sizes = nil
		for f := range strings.SplitSeq(env, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	return sizes
}()

// BenchmarkScale runs the real controller with N simulated agents (N = 10,
// 100, 1000, 2000) and reports, per N: the controller's settled RssAnon
// (absent: N configured nodes, none connected; registered: all N
// connected), its idle CPU with every agent heartbeating, ListNodes (as
// ns/op and median/p99, through the generated godbus client and through a
// client that only reads the reply's header), GetNode, Node.ListUnits and
// Controller.ListUnits latencies from a client on the API bus, and the time
// until the API has reported 10% of the nodes offline after their
// connections were closed at once. TestMain prints all of it as a table
// with the RssAnon slopes per node between 100 and 2000 nodes. With
// BLUECHI_SCALE_BASE naming another tree (or binary), both controllers are
// measured, alternating. b.N is the number of ListNodes calls (ns/op is
// their mean), so run with e.g. -benchtime 300x.
func BenchmarkScale(b *testing.B) {
	bins := controllerBinaries(b)
	name := func(bin ctrlBinary, kind string, n int) string {
		if len(bins) == 1 {
			return fmt.Sprintf("%s-%d", kind, n)
		}
		return fmt.Sprintf("%s/%s-%d", bin.label, kind, n)
	}
	for _, n := range scaleSizes {
		for _, bin := range bins {
			b.Run(name(bin, "absent", n), func(b *testing.B) { benchAbsent(b, bin, n) })
		}
		for _, bin := range bins {
			b.Run(name(bin, "registered", n), func(b *testing.B) { benchRegistered(b, bin, n) })
		}
	}
}

// listNodesLatency times ListNodes b.N times through the generated client
// (ns/op) and 200 times through a wire client, and records both.
func (e *env) listNodesLatency(b *testing.B, label string, n int, prefix string) {
	ctx := context.Background()
	var listNodes []time.Duration
	for b.Loop() {
		t := time.Now()
		if _, err := e.ctrl.ListNodes(ctx); err != nil {
			b.Fatal(err)
		}
		listNodes = append(listNodes, time.Since(t))
	}
	wc, err := dialWireClient(e.bus.Address)
	if err != nil {
		b.Fatal(err)
	}
	defer wc.Close()
	wireMed, wireP99 := timeCalls(b, 200, func() error { _, err := wc.listNodes(); return err })
	record(b, label, n, prefix+"listnodes-med-ms", msOf(quantile(listNodes, 0.5)))
	record(b, label, n, prefix+"listnodes-p99-ms", msOf(quantile(listNodes, 0.99)))
	record(b, label, n, prefix+"listnodes-wire-med-ms", wireMed)
	record(b, label, n, prefix+"listnodes-wire-p99-ms", wireP99)
}

func benchAbsent(b *testing.B, bin ctrlBinary, n int) {
	e := startEnv(b, bin.path, n)
	anon := e.settledAnonKB()
	e.listNodesLatency(b, bin.label, n, "absent-")
	record(b, bin.label, n, "absent-rss-anon-kB", anon)
}

func benchRegistered(b *testing.B, bin ctrlBinary, n int) {
	ctx := context.Background()
	e := startEnv(b, bin.path, n)
	e.connect(n)
	pid := e.cmd.Process.Pid
	anon := e.settledAnonKB()

	// Idle CPU: nothing but heartbeats (both ways) for 10 s.
	cpu0, t0 := cpuSeconds(b, pid), time.Now()
	time.Sleep(10 * time.Second)
	idle := (cpuSeconds(b, pid) - cpu0) / time.Since(t0).Seconds() * 100

	e.listNodesLatency(b, bin.label, n, "")
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

	l := bin.label
	record(b, l, n, "rss-anon-kB", anon)
	record(b, l, n, "idle-cpu-%", idle)
	record(b, l, n, "getnode-med-ms", getMed)
	record(b, l, n, "getnode-p99-ms", getP99)
	record(b, l, n, "node-listunits-med-ms", unitsMed)
	record(b, l, n, "node-listunits-p99-ms", unitsP99)
	record(b, l, n, "all-listunits-med-ms", allMed)
	record(b, l, n, "all-listunits-p99-ms", allP99)
	record(b, l, n, "offline-10pct-ms", msOf(offline))
}

// tableColumns are the table's columns: heading and metric.
var tableColumns = []struct{ head, metric string }{
	{"RssAnon absent kB", "absent-rss-anon-kB"},
	{"RssAnon registered kB", "rss-anon-kB"},
	{"idle CPU %", "idle-cpu-%"},
	{"ListNodes absent med/p99 ms", "absent-listnodes"},
	{"ListNodes absent, wire client med ms", "absent-listnodes-wire-med-ms"},
	{"ListNodes med/p99 ms", "listnodes"},
	{"ListNodes wire client med ms", "listnodes-wire-med-ms"},
	{"GetNode med/p99 ms", "getnode"},
	{"Node.ListUnits med/p99 ms", "node-listunits"},
	{"Controller.ListUnits med/p99 ms", "all-listunits"},
	{"10% offline ms", "offline-10pct-ms"},
}

// printTable writes the figures BenchmarkScale recorded as a Markdown
// table per binary, with the per-node RssAnon slopes.
func printTable(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	if len(results.m) == 0 {
		return
	}
	labels := slices.Sorted(maps.Keys(results.m))
	for _, label := range labels {
		byN := results.m[label]
		fmt.Fprintf(w, "\ncontroller %q (%s):\n\n| N |", label, binaryOf(label))
		for _, c := range tableColumns {
			fmt.Fprintf(w, " %s |", c.head)
		}
		fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(tableColumns)))
		for _, n := range slices.Sorted(maps.Keys(byN)) {
			m := byN[n]
			fmt.Fprintf(w, "| %d |", n)
			for _, c := range tableColumns {
				if v, ok := m[c.metric]; ok {
					fmt.Fprintf(w, " %s |", fmtFigure(v))
				} else if med, ok := m[c.metric+"-med-ms"]; ok {
					fmt.Fprintf(w, " %s / %s |", fmtFigure(med), fmtFigure(m[c.metric+"-p99-ms"]))
				} else {
					fmt.Fprint(w, " - |")
				}
			}
			fmt.Fprintln(w)
		}
		lo, hi := 100, 2000
		for _, s := range []struct{ what, metric string }{
			{"registered", "rss-anon-kB"}, {"configured-but-absent", "absent-rss-anon-kB"},
		} {
			a, ok1 := byN[lo][s.metric]
			z, ok2 := byN[hi][s.metric]
			if ok1 && ok2 {
				fmt.Fprintf(w, "\nRssAnon per %s node (slope %d -> %d nodes): %.1f kB", s.what, lo, hi, (z-a)/float64(hi-lo))
			}
		}
		fmt.Fprintln(w)
	}
}

func binaryOf(label string) string {
	for _, b := range binaries {
		if b.label == label {
			if label == "base" {
				return os.Getenv(baseEnv)
			}
			return "this tree"
		}
	}
	return "?"
}

func fmtFigure(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// nodeChanges returns the PropertiesChanged signals of the node objects
// from a new bus client, with room for size of them, and closes the
// client; the match is in place when it returns.
func (e *env) nodeChanges(size int) (<-chan *dbus.Signal, func()) {
	e.tb.Helper()
	conn, _, err := dbusrt.ConnectBus(e.bus.Address)
	if err != nil {
		e.tb.Fatal(err)
	}
	ns := dbus.ObjectPath(path.Dir(string(bluechi.NodePath("x"))))
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(dbusrt.PropertiesInterface),
		dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace(ns),
		dbus.WithMatchArg(0, bluechi.NodeInterface)); err != nil {
		conn.Close()
		e.tb.Fatal(err)
	}
	ch := make(chan *dbus.Signal, size)
	conn.Signal(ch)
	// A round trip through the bus makes sure the match is in place.
	if _, err := e.ctrl.GetStatus(context.Background()); err != nil {
		conn.Close()
		e.tb.Fatal(err)
	}
	return ch, func() { conn.Close() }
}

// dropTenth closes the connections of every tenth agent at once and
// returns the time until the API bus has carried a Status "offline"
// PropertiesChanged for each of them.
func (e *env) dropTenth() time.Duration {
	e.tb.Helper()
	ch, done := e.nodeChanges(len(e.agents))
	defer done()
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
	e := startEnv(t, thisBinary(t), 12)
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
	wc, err := dialWireClient(e.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if size, err := wc.listNodes(); err != nil || size < 12*40 {
		t.Fatalf("ListNodes through the wire client: %d bytes, %v", size, err)
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
