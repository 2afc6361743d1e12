// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// The cluster: ctl hosts the controller (socket-activated by its own
// agent over the unix socket) and an agent; n2 and n3 run agents that
// reach the controller over TCP on the bridge.
const (
	ctlNode  = "ctl"
	subnet   = "10.231.0."
	ctlIP    = subnet + "11"
	cutLimit = 3 * time.Second // a cut link must be noticed this fast, on both sides
)

var nodeNames = []string{ctlNode, "n2", "n3"}

// testUnits are written into every node's /etc/systemd/system.
var testUnits = map[string]string{
	"sysmode-simple.service": "[Unit]\nDescription=sysmode test service\n\n[Service]\nExecStart=/bin/sleep infinity\n",
	// On n3, needed by sysmode-needs on n2 through a proxy.
	"sysmode-dep.service": "[Unit]\nDescription=sysmode test: needed on another node\n\n[Service]\nExecStart=/bin/sleep infinity\n",
	"sysmode-needs.service": "[Unit]\nDescription=sysmode test: needs sysmode-dep on n3\n" +
		"Wants=bluechi-proxy@n3_sysmode-dep.service\nAfter=bluechi-proxy@n3_sysmode-dep.service\n\n" +
		"[Service]\nExecStart=/bin/sleep infinity\n",
}

type cluster struct {
	t     *testing.T
	repo  string
	net   *Network
	nodes map[string]*Node

	mu    sync.Mutex // guards conns
	conns map[string]*dbus.Conn
}

// repoRoot is the module's root (where go.mod and the Makefile are).
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// cacheDir holds the debootstrap'ed base between runs:
// $BLUECHI_SYSMODE_CACHE, or .cache/sysmode in the repository.
func cacheDir(repo string) string {
	if d := os.Getenv("BLUECHI_SYSMODE_CACHE"); d != "" {
		return d
	}
	return filepath.Join(repo, ".cache", "sysmode")
}

// newCluster makes the base (once), the network and the nodes, installs
// the project into each with `make install DESTDIR=<root>`, boots them in
// parallel and enables the daemons with `systemctl enable --now`.
func newCluster(t *testing.T, ctx context.Context) *cluster {
	if os.Geteuid() != 0 {
		t.Fatal("system-mode tests need root (nspawn, overlayfs, network namespaces)")
	}
	c := &cluster{t: t, repo: repoRoot(t), nodes: map[string]*Node{}, conns: map[string]*dbus.Conn{}}
	Sweep(os.TempDir())
	start := time.Now()
	base, err := EnsureBase(ctx, cacheDir(c.repo), testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("base %s ready after %v", base, time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile("/proc/sys/fs/inotify/max_user_instances", []byte("1024"), 0o644); err != nil {
		t.Logf("raise fs.inotify.max_user_instances: %v", err)
	}
	run := fmt.Sprintf("%s%d", RunPrefix, os.Getpid())
	dir, err := os.MkdirTemp("", run+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	c.net, err = NewNetwork(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.net.Close(); err != nil {
			t.Errorf("delete network namespace: %v", err)
		}
	})
	t.Cleanup(c.closeConns)
	t.Cleanup(func() {
		c.t = t // not a subtest's, which has ended
		if t.Failed() {
			for _, name := range nodeNames {
				if n := c.nodes[name]; n != nil {
					c.dumpJournal(n)
				}
			}
		}
		var wg sync.WaitGroup
		for name, n := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.Close(); err != nil {
					t.Errorf("close node %s: %v", name, err)
				}
			}()
		}
		wg.Wait()
	})
	for i, name := range nodeNames {
		// Machine names are unique on the host (nspawn keeps state by
		// them) and short enough for unique veth names (vb- + 12).
		n, err := NewNode(NodeOptions{Name: name, Machine: fmt.Sprintf("b%d-%s", os.Getpid(), name),
			Address: fmt.Sprintf("%s%d/24", subnet, 11+i),
			Base:    base, Dir: filepath.Join(dir, name), Net: c.net})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes[name] = n
		c.install(ctx, n)
	}
	start = time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(nodeNames))
	for i, name := range nodeNames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.nodes[name]
			if errs[i] = n.Boot(); errs[i] == nil {
				bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				errs[i] = n.WaitBooted(bctx)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes booted in %v", len(nodeNames), time.Since(start).Round(time.Millisecond))
	for _, name := range nodeNames {
		units := []string{"bluechi-agent.service"}
		if name == ctlNode {
			// The controller is not enabled itself: its socket starts it
			// when the local agent connects, at boot too.
			units = []string{"bluechi-controller.socket", "bluechi-agent.service"}
		}
		c.run(ctx, name, append([]string{"systemctl", "enable", "--now"}, units...)...)
	}
	return c
}

// install runs `make install DESTDIR=<node root>` and writes the cluster's
// configuration and test units into the node.
func (c *cluster) install(ctx context.Context, n *Node) {
	t := c.t
	cmd := exec.CommandContext(ctx, "make", "-C", c.repo, "--no-print-directory", "install", "DESTDIR="+n.Root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install DESTDIR=%s: %v\n%s", n.Root, err, out)
	}
	agent := "[bluechi-agent]\nControllerHost=" + ctlIP + "\n"
	if n.Name == ctlNode {
		agent = "[bluechi-agent]\nControllerAddress=unix:path=/run/bluechi/bluechi.sock\n"
		controller := "[bluechi-controller]\nAllowedNodeNames=" + strings.Join(nodeNames, ",") +
			"\n\n[node n2]\nAllowDependenciesOn=n3\n"
		if err := n.WriteFile("etc/bluechi/controller.conf.d/50-sysmode.conf", controller, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.WriteFile("etc/bluechi/agent.conf.d/50-sysmode.conf", agent, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, text := range testUnits {
		if err := n.WriteFile("etc/systemd/system/"+name, text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// run runs a command in a node and fails the test when it fails.
func (c *cluster) run(ctx context.Context, node string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.nodes[node].Run(ctx, args...)
	if err != nil {
		c.t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	return out
}

// prop reads one property of a unit in a node with systemctl show.
func (c *cluster) prop(ctx context.Context, node, unit, name string) string {
	c.t.Helper()
	out, _, _ := c.nodes[node].Run(ctx, "systemctl", "show", "-P", name, unit)
	return strings.TrimSpace(out)
}

// conn returns a connection to a node's system bus, reconnecting when the
// previous one broke (a restarted dbus-daemon, a rebooted node).
func (c *cluster) conn(node string) (*dbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn := c.conns[node]; conn != nil && conn.Connected() {
		return conn, nil
	}
	conn, _, err := dbusrt.ConnectBus(c.nodes[node].BusAddress())
	if err != nil {
		return nil, err
	}
	c.conns[node] = conn
	return conn, nil
}

func (c *cluster) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = map[string]*dbus.Conn{}
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Second)
}

// nodeStatus is the status of node as the controller reports it.
func (c *cluster) nodeStatus(node string) (string, error) {
	conn, err := c.conn(ctlNode)
	if err != nil {
		return "", err
	}
	ctx, cancel := callCtx()
	defer cancel()
	return bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(node)).GetStatus(ctx)
}

// agentStatus is the Status of node's agent, from its own bus.
func (c *cluster) agentStatus(node string) (string, error) {
	conn, err := c.conn(node)
	if err != nil {
		return "", err
	}
	ctx, cancel := callCtx()
	defer cancel()
	return bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath).GetStatus(ctx)
}

// statuses describes every node as the controller and as its agent see it.
func (c *cluster) statuses() (map[string]string, bool) {
	all := true
	got := map[string]string{}
	conn, err := c.conn(ctlNode)
	if err == nil {
		ctx, cancel := callCtx()
		var nodes []bluechi.NodeInfo
		nodes, err = bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath).ListNodes(ctx)
		cancel()
		for _, n := range nodes {
			got["controller:"+n.Name] = n.Status
		}
	}
	if err != nil {
		got["controller"] = err.Error()
		all = false
	}
	for _, name := range nodeNames {
		if got["controller:"+name] != "online" {
			all = false
		}
		s, err := c.agentStatus(name)
		if err != nil {
			s = err.Error()
		}
		got["agent:"+name] = s
		if s != "online" {
			all = false
		}
	}
	return got, all
}

// waitAllOnline waits until the controller lists every node online and
// every agent says it is online.
func (c *cluster) waitAllOnline(timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var last map[string]string
	for time.Since(start) < timeout {
		got, ok := c.statuses()
		if ok {
			return time.Since(start)
		}
		last = got
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("not all online within %v: %v", timeout, fmtMap(last))
	return 0
}

func fmtMap(m map[string]string) string {
	var ks []string
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dumpJournal logs the bluechi units' journal of a node (for failures).
func (c *cluster) dumpJournal(n *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, errOut, err := n.Run(ctx, "journalctl", "--no-pager", "-o", "short-precise", "-n", "150",
		"-u", "bluechi-controller.service", "-u", "bluechi-controller.socket", "-u", "bluechi-agent.service",
		"-u", "bluechi-proxy@*", "-u", "bluechi-dep@*", "-u", "dbus.service")
	c.t.Logf("journal of %s (%v):\n%s%s", n.Name, err, out, errOut)
	if data, err := os.ReadFile(n.ConsoleLog()); err == nil {
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		c.t.Logf("console of %s (end):\n%s", n.Name, data)
	}
}

// reboot reboots a node from inside and waits until it is up again.
func (c *cluster) reboot(ctx context.Context, node string) {
	c.t.Helper()
	n := c.nodes[node]
	boots := n.Boots()
	// systemctl reboot returns once the job is queued; the node's
	// systemd-nspawn exits with 133 and Node boots it again.
	if _, errOut, err := n.Run(ctx, "systemctl", "reboot"); err != nil {
		c.t.Fatalf("%v: %s", err, errOut)
	}
	waitFor(c.t, 60*time.Second, node+" rebooted", func() (bool, string) {
		return n.Boots() > boots, fmt.Sprintf("boots %d", n.Boots())
	})
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := n.WaitBooted(bctx); err != nil {
		c.t.Fatal(err)
	}
}
