// SPDX-License-Identifier: Apache-2.0

package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	mgrPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	mgrIface = "org.freedesktop.systemd1.Manager"
)

// client is a minimal raw systemd client for these tests (the real adapter
// lives in internal/systemd, which depends on this package's tests).
type client struct {
	t    *testing.T
	conn *dbus.Conn
	sigs chan *dbus.Signal
}

func newClient(t *testing.T, n *Node) *client {
	t.Helper()
	conn, err := n.Connect()
	if err != nil {
		t.Fatalf("connect %s: %v", n.Name, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, sigs: make(chan *dbus.Signal, 256)}
	conn.Signal(c.sigs)
	if err := conn.AddMatchSignal(dbus.WithMatchSender(SystemdBusName), dbus.WithMatchMember("JobRemoved")); err != nil {
		t.Fatal(err)
	}
	if err := c.mgr().Call(mgrIface+".Subscribe", 0).Err; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return c
}

func (c *client) mgr() dbus.BusObject { return c.conn.Object(SystemdBusName, mgrPath) }

// job calls Start/StopUnit and waits for its JobRemoved, returning the result.
func (c *client) job(method, unit string) string {
	c.t.Helper()
	var job dbus.ObjectPath
	if err := c.mgr().Call(mgrIface+"."+method, 0, unit, "replace").Store(&job); err != nil {
		c.t.Fatalf("%s %s: %v", method, unit, err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s := <-c.sigs:
			if s.Name == mgrIface+".JobRemoved" && len(s.Body) == 4 && s.Body[1] == job {
				return s.Body[3].(string)
			}
		case <-timeout:
			c.t.Fatalf("%s %s: no JobRemoved for %s", method, unit, job)
		}
	}
}

func (c *client) unitProp(unit, prop string) any {
	c.t.Helper()
	var path dbus.ObjectPath
	if err := c.mgr().Call(mgrIface+".LoadUnit", 0, unit).Store(&path); err != nil {
		c.t.Fatalf("LoadUnit %s: %v", unit, err)
	}
	iface := "org.freedesktop.systemd1.Unit"
	if strings.HasPrefix(prop, "Main") || prop == "ControlGroup" {
		iface = "org.freedesktop.systemd1.Service"
	}
	v, err := c.conn.Object(SystemdBusName, path).GetProperty(iface + "." + prop)
	if err != nil {
		c.t.Fatalf("get %s.%s: %v", unit, prop, err)
	}
	return v.Value()
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// a zombie is dead for our purposes
	data, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func itoa(i int) string { return strconv.Itoa(i) }

// cgroupOf returns the unified (or name=systemd) cgroup path of pid.
func cgroupOf(t *testing.T, pid int) string {
	data, err := os.ReadFile("/proc/" + itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatalf("cgroup of %d: %v", pid, err)
	}
	var named string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		p := strings.SplitN(l, ":", 3)
		if len(p) == 3 && p[0] == "0" && p[1] == "" {
			return p[2]
		}
		if len(p) == 3 && p[1] == "name=systemd" {
			named = p[2]
		}
	}
	return named
}

func TestTwoNodesAreIndependent(t *testing.T) {
	units := map[string]string{SimpleServiceName: SimpleService}
	nodes := StartAllT(t, Names("", "node", 2, units)...)
	// separate temp bases: each node owns its folder
	a, b := newClient(t, nodes[0]), newClient(t, nodes[1])

	for _, c := range []*client{a, b} {
		if r := c.job("StartUnit", SimpleServiceName); r != "done" {
			t.Fatalf("start result %q", r)
		}
	}
	pa := int(a.unitProp(SimpleServiceName, "MainPID").(uint32))
	pb := int(b.unitProp(SimpleServiceName, "MainPID").(uint32))
	if pa == 0 || pb == 0 || pa == pb {
		t.Fatalf("main pids %d %d", pa, pb)
	}
	cga, cgb := cgroupOf(t, pa), cgroupOf(t, pb)
	if cga == cgb {
		t.Fatalf("both services share cgroup %s", cga)
	}
	for i, cg := range []string{cga, cgb} {
		name := filepath.Base(nodes[i].Cgroups[0])
		if !strings.Contains(cg, "/"+name+"/") {
			t.Errorf("service of %s is in cgroup %s, not below its node cgroup %s", nodes[i].Name, cg, name)
		}
	}

	if r := a.job("StopUnit", SimpleServiceName); r != "done" {
		t.Fatalf("stop result %q", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pa) {
		if time.Now().After(deadline) {
			t.Fatalf("service of node 1 (pid %d) still running after stop", pa)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !alive(pb) {
		t.Fatalf("stopping the unit on node 1 killed it on node 2 (pid %d)", pb)
	}
	if st := b.unitProp(SimpleServiceName, "ActiveState"); st != "active" {
		t.Fatalf("node 2 unit state %v, want active", st)
	}
	if st := a.unitProp(SimpleServiceName, "ActiveState"); st != "inactive" {
		t.Fatalf("node 1 unit state %v, want inactive", st)
	}
}

func TestStopLeavesNothing(t *testing.T) {
	ctx := context.Background()
	n, err := Start(ctx, Options{Name: "stopper", Units: DemoUnits()})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			n.Stop()
		}
	})
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, n)
	if r := c.job("StartUnit", SimpleServiceName); r != "done" {
		t.Fatalf("start result %q", r)
	}
	svc := int(c.unitProp(SimpleServiceName, "MainPID").(uint32))

	// a process run inside the node, as the agent would be
	cmd := n.Command(ctx, "sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	nsLink, err := os.Readlink("/proc/" + itoa(n.PID) + "/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	hostNS, _ := os.Readlink("/proc/self/ns/mnt")
	if nsLink == hostNS {
		t.Fatalf("node runs in the host's mount namespace %s", nsLink)
	}
	// the exec'd process is in the node's namespace and cgroup (poll: the
	// wrapper moves and enters before exec'ing)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := os.Readlink("/proc/" + itoa(cmd.Process.Pid) + "/ns/mnt")
		comm, _ := os.ReadFile("/proc/" + itoa(cmd.Process.Pid) + "/comm")
		if l == nsLink && strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec'd process: ns %s comm %q, want ns %s and sleep", l, comm, nsLink)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pids := n.Pids()
	want := map[int]bool{n.PID: false, svc: false, cmd.Process.Pid: false}
	for _, p := range pids {
		if _, ok := want[p]; ok {
			want[p] = true
		}
	}
	for p, seen := range want {
		if !seen {
			t.Errorf("pid %d not among the node's pids %v", p, pids)
		}
	}

	start := time.Now()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("Stop took %v", time.Since(start))
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("exec'd process not ended by Stop")
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("pid %d survived Stop", p)
		}
	}
	for _, d := range n.Cgroups {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind (%v)", d, err)
		}
	}
	// no process anywhere is left in the node's mount namespace
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
	for _, p := range procs {
		if l, err := os.Readlink(p); err == nil && l == nsLink {
			t.Errorf("%s still in the node's mount namespace", p)
		}
	}
	if _, err := os.Stat(n.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary node folder %s left behind", n.Dir)
	}
	if err := n.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestInsideTheNode(t *testing.T) {
	hostHadSystemdDir := exists("/run/systemd/system")
	n := StartT(t, Options{BaseDir: t.TempDir(), Name: "inside", Units: DemoUnits()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := n.Exec(ctx, "sh", "-c", `test -d /run/systemd/system && echo booted; echo "$DBUS_SESSION_BUS_ADDRESS"; echo "$XDG_RUNTIME_DIR"; pwd; findmnt -n -o FSTYPE /run/bluechi; findmnt -n -o SOURCE /dev/console`)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cwd, _ := os.Getwd()
	want := []string{"booted", n.BusAddress, n.RuntimeDir, cwd, "tmpfs"}
	if len(lines) < len(want)+1 {
		t.Fatalf("output %q", out)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q (output %q)", i, lines[i], w, out)
		}
	}
	if !strings.Contains(lines[5], "devpts") {
		t.Errorf("/dev/console source %q, want a pty bound over it", lines[5])
	}
	if !hostHadSystemdDir && exists("/run/systemd/system") {
		t.Errorf("/run/systemd/system appeared on the host")
	}

	// cmd.Dir is honoured inside the namespace
	dir := t.TempDir()
	cmd := n.Command(ctx, "pwd")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != dir {
		t.Errorf("pwd in %s: %q %v", dir, out, err)
	}

	// systemctl --user inside the node talks to the node's manager
	out, err = n.Exec(ctx, "systemctl", "--user", "--no-pager", "list-units", "--all", "--plain", "--no-legend")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if strings.HasPrefix(f[0], "mnt-") || strings.HasPrefix(f[0], "gpg-agent") {
			t.Errorf("irrelevant host unit visible in the node: %s", l)
		}
	}
	out, err = n.Exec(ctx, "systemctl", "--user", "is-system-running")
	if s := strings.TrimSpace(string(out)); s != "running" {
		t.Errorf("is-system-running: %q %v", s, err)
	}
	// the demo units are loaded from the node's UnitDir
	out, err = n.Exec(ctx, "systemctl", "--user", "start", OneshotServiceName)
	if err != nil {
		t.Errorf("start oneshot: %v", err)
	}
	out, _ = n.Exec(ctx, "systemctl", "--user", "start", FailingServiceName)
	if st, _ := n.Exec(ctx, "systemctl", "--user", "is-failed", FailingServiceName); strings.TrimSpace(string(st)) != "failed" {
		t.Errorf("failing unit: %q / %q", out, st)
	}
	// systemd's own log reaches the node's log file
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(n.LogTail(1<<20), FailingServiceName+": Failed with result") {
		if time.Now().After(deadline) {
			t.Fatalf("systemd's log lacks the failed start:\n%s", n.LogTail(4096))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartThreeNodesTime(t *testing.T) {
	start := time.Now()
	nodes := StartAllT(t, Names("", "n", 3, DemoUnits())...)
	took := time.Since(start)
	t.Logf("3 nodes started and ready in %v", took)
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n.BusAddress] {
			t.Errorf("shared bus address %s", n.BusAddress)
		}
		seen[n.BusAddress] = true
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Start(ctx, Options{Name: "bad/name"}); err == nil {
		t.Error("bad name accepted")
	}
	base := t.TempDir()
	if _, err := Start(ctx, Options{BaseDir: base + "/" + strings.Repeat("x", 120), Name: "long"}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("long base: %v", err)
	}
	// a node folder that already exists is refused
	n := StartT(t, Options{BaseDir: base, Name: "twice"})
	if _, err := Start(ctx, Options{BaseDir: base, Name: "twice"}); err == nil {
		t.Error("second node with the same folder accepted")
	}
	_ = n
}

func TestMissingBinaryIsAnError(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath("nsenter"); err == nil {
		t.Fatal("PATH not emptied")
	}
	if _, err := Start(context.Background(), Options{Name: "nobin"}); err == nil || !strings.Contains(err.Error(), "missing binaries") {
		t.Fatalf("Start without binaries: %v", err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func BenchmarkStartNode(b *testing.B) {
	for i := 0; i < b.N; i++ {
		n, err := Start(context.Background(), Options{Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = n.WaitReady(ctx)
		cancel()
		if stopErr := n.Stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// Cgroups left by a test binary that died are swept: their processes are
// killed and the cgroups removed; those of live creators stay.
func TestSweepStale(t *testing.T) {
	hs, err := findHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := createCgroup(hs, "stale-"+itoa(dead.Process.Pid)+"-0000")
	if err != nil {
		t.Fatal(err)
	}
	live, err := createCgroup(hs, "live-"+itoa(os.Getpid())+"-0000")
	if err != nil {
		t.Fatal(err)
	}
	defer live.remove()
	defer stale.remove()
	// a leftover "service" in the stale cgroup
	sleeper := exec.Command("sh", "-c", `for f in "$@"; do echo $$ > "$f"; done; exec sleep infinity`, "sh")
	sleeper.Args = append(sleeper.Args, stale.procsFiles(cgManager)...)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { sleeper.Wait(); close(waited) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(stale.pids()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sleeper never joined the stale cgroup")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sweepStale(hs)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("process in the stale cgroup survived the sweep")
	}
	for _, d := range stale.dirs {
		if exists(d) {
			t.Errorf("stale cgroup %s not removed", d)
		}
	}
	for _, d := range live.dirs {
		if !exists(d) {
			t.Errorf("cgroup of a live creator %s removed", d)
		}
	}
}
