// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the commands once per test binary (without -race, so
// memory figures are realistic), unless cluster.BinDirEnv names prebuilt ones.
func binaries(tb testing.TB) string {
	if dir := cluster.PrebuiltBinDir(); dir != "" {
		return dir
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "bluechi-cluster-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "github.com/bluechi-go/bluechi/cmd/...")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build: no libc pages in RSS
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	if relayMain() {
		return
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func start(tb testing.TB, opts cluster.Options) *cluster.Cluster {
	tb.Helper()
	opts.BinDir = binaries(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, name := range append([]string{"controller"}, prefixed("agent-", opts.Names)...) {
				tb.Logf("--- %s ---\n%s", name, c.Tail(name, 3000))
			}
		}
		c.Stop()
	})
	return c
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// jobWaiter delivers JobRemoved results by job path.
type jobWaiter struct {
	mu      sync.Mutex
	results map[dbus.ObjectPath]chan string
}

func newJobWaiter(tb testing.TB, conn *dbus.Conn) *jobWaiter {
	w := &jobWaiter{results: map[dbus.ObjectPath]chan string{}}
	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	sub, err := ctrl.OnJobRemoved(context.Background(), func(s *bluechi.ControllerJobRemovedSignal) {
		w.ch(s.Job) <- s.Result
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sub.Close() })
	return w
}

func (w *jobWaiter) ch(job dbus.ObjectPath) chan string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.results[job]
	if c == nil {
		c = make(chan string, 1)
		w.results[job] = c
	}
	return c
}

func (w *jobWaiter) wait(tb testing.TB, job dbus.ObjectPath) string {
	select {
	case r := <-w.ch(job):
		w.mu.Lock()
		delete(w.results, job)
		w.mu.Unlock()
		return r
	case <-time.After(30 * time.Second):
		tb.Fatalf("no JobRemoved for %s", job)
		return ""
	}
}

// TestCluster runs the same cluster `make run` starts and drives it with
// clients nobody here wrote: busctl and python3-dasbus.
func TestCluster(t *testing.T) {
	c := start(t, cluster.Options{Names: cluster.DefaultNames(3)})
	conn, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	nodes, err := ctrl.ListNodes(ctx)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("ListNodes %v %v", nodes, err)
	}
	if nodes[0].PeerIP != "" || nodes[1].PeerIP == "" {
		t.Fatalf("node1 should use the unix socket (no peer IP) and node2 TCP: %+v", nodes)
	}
	jobs := newJobWaiter(t, conn)
	job, err := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("node1")).StartUnit(ctx, sandbox.OneshotServiceName, "replace")
	if err != nil {
		t.Fatal(err)
	}
	if r := jobs.wait(t, job); r != "done" {
		t.Fatalf("UDS node job: %s", r)
	}

	env := append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+c.BusAddress)
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	if out := run("busctl", "--user", "call", "org.eclipse.bluechi", "/org/eclipse/bluechi", "org.eclipse.bluechi.Controller", "ListNodes"); !strings.Contains(out, `"node2" "/org/eclipse/bluechi/node/node2" "online"`) {
		t.Errorf("busctl ListNodes: %s", out)
	}
	if out := run("busctl", "--user", "get-property", "org.eclipse.bluechi", "/org/eclipse/bluechi", "org.eclipse.bluechi.Controller", "Status"); strings.TrimSpace(out) != `s "up"` {
		t.Errorf("busctl Status: %s", out)
	}
	if out := run("busctl", "--user", "introspect", "org.eclipse.bluechi", "/org/eclipse/bluechi/node/node3"); !strings.Contains(out, ".StartUnit") {
		t.Errorf("busctl introspect: %s", out)
	}
	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(dasbusClient), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run("/usr/bin/python3", script, "node2", sandbox.OneshotServiceName)
	if !strings.Contains(out, "units on node2:") || !strings.Contains(out, "result: done") {
		t.Errorf("dasbus client:\n%s", out)
	}
}

// dasbusClient lists units and starts one, waiting for its JobRemoved.
const dasbusClient = `import sys
from dasbus.connection import SessionMessageBus
from gi.repository import GLib

node_name, unit = sys.argv[1], sys.argv[2]
bus = SessionMessageBus()
controller = bus.get_proxy("org.eclipse.bluechi", "/org/eclipse/bluechi")
units = controller.ListUnits()
print("units on %s: %d" % (node_name, len(units[node_name])))
node = bus.get_proxy("org.eclipse.bluechi", controller.GetNode(node_name))
loop = GLib.MainLoop()
state = {}

def removed(job_id, job_path, node, unit_name, result):
    if job_path == state.get("job"):
        print("result: %s" % result)
        loop.quit()

controller.JobRemoved.connect(removed)
state["job"] = node.StartUnit(unit, "replace")
GLib.timeout_add_seconds(20, loop.quit)
loop.run()
`

// TestConfigErrors proves a bad configuration line stops start-up with the
// file and line named.
func TestConfigErrors(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	// Upstream's bluechi-*-cmd-line-c-invalid-config, bluechi-invalid-port
	// and bluechi-agent-invalid-port-configuration.
	for _, tc := range []struct {
		daemon, conf, want string
		args               []string
	}{
		{"controller", "[bluechi-controller]\nControllerPort=842O\n", "controller.conf:2", nil},
		{"controller", "[bluechi-controller]\nControllerPort=65538\n", "controller.conf:2", nil},
		{"controller", "[bluechi-controller]\nbroken line\n", "controller.conf:2", nil},
		{"agent", "[bluechi-agent]\nNodeName=x\nthis line is broken\n", "agent.conf:3", nil},
		{"agent", "[bluechi-agent]\nNodeName=x\nControllerPort=842O\n", "agent.conf:3", nil},
		// Node names that are not valid UTF-8 (not a D-Bus string).
		{"controller", "[bluechi-controller]\nAllowedNodeNames=good,\xff\xfebad\n", `controller.conf:2: invalid AllowedNodeNames "\xff\xfebad"`, nil},
		{"controller", "[bluechi-controller]\nAllowedNodeNames=good\n[node good]\nAllowDependenciesOn=\xfe\n", "controller.conf:4", nil},
		{"agent", "[bluechi-agent]\nNodeName=\xffbad\n", `agent.conf:2: invalid NodeName "\xffbad"`, nil},
		{"agent", "[bluechi-agent]\nNodeName=x\n", `command line: invalid NodeName "\xffbad"`, []string{"-n", "\xffbad"}},
	} {
		file := filepath.Join(dir, tc.daemon+".conf")
		os.WriteFile(file, []byte(tc.conf), 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "bluechi-"+tc.daemon), append([]string{"-u", "-c", file}, tc.args...)...).CombinedOutput()
		cancel()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s %q with %q: exit %d, output %q; want exit 1 naming %s", tc.daemon, tc.args, tc.conf, code, out, tc.want)
		}
	}
	out, err := exec.Command(filepath.Join(bin, "bluechi-controller"), "--QWERTY").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "unrecognized option '--QWERTY'") || !strings.Contains(string(out), "Usage") {
		t.Errorf("unknown option: %v %s", err, out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
