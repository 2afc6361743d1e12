// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// installProxyTemplates puts the shipped user-mode templates on every node,
// pointed at the built bluechi-proxy (for @LIBEXECDIR@, which make install
// replaces with the install prefix's libexec directory) and at the node's
// own bus.
func (c *cluster) installProxyTemplates() {
	c.t.Helper()
	ctx := context.Background()
	for _, name := range []string{"bluechi-proxy@.service", "bluechi-dep@.service"} {
		data, err := os.ReadFile("../../install/systemd/user/" + name)
		if err != nil {
			c.t.Fatal(err)
		}
		if name == "bluechi-proxy@.service" && !strings.Contains(string(data), "ExecStart=@LIBEXECDIR@/bluechi-proxy ") {
			c.t.Fatalf("%s: ExecStart does not follow the install prefix (@LIBEXECDIR@)", name)
		}
		for _, n := range c.nodes {
			text := strings.ReplaceAll(string(data), "@LIBEXECDIR@", binDir)
			text = strings.Replace(text, "[Service]\n", "[Service]\nEnvironment=DBUS_SESSION_BUS_ADDRESS="+n.BusAddress+"\n", 1)
			if err := n.WriteUnit(name, text); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	for _, n := range c.nodes {
		if out, err := n.Exec(ctx, "systemctl", "--user", "daemon-reload"); err != nil {
			c.t.Fatalf("daemon-reload: %v: %s", err, out)
		}
	}
}

// requester writes a oneshot service on node that wants the proxy of unit
// on target, and returns its name.
func (c *cluster) requester(node, name, target, unit string) string {
	c.t.Helper()
	proxy := "bluechi-proxy@" + target + "_" + strings.TrimSuffix(unit, ".service") + ".service"
	text := "[Unit]\nWants=" + proxy + "\nAfter=" + proxy + "\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
	if err := c.nodes[node].WriteUnit(name, text); err != nil {
		c.t.Fatal(err)
	}
	if out, err := c.nodes[node].Exec(context.Background(), "systemctl", "--user", "daemon-reload"); err != nil {
		c.t.Fatalf("daemon-reload: %v: %s", err, out)
	}
	return proxy
}

// unitState reads a unit's ActiveState through the controller.
func (c *cluster) unitState(node, unit string) string {
	c.t.Helper()
	v, err := c.node(node).GetUnitProperty(context.Background(), unit, "org.freedesktop.systemd1.Unit", "ActiveState")
	if err != nil {
		c.t.Fatalf("ActiveState of %s on %s: %v", unit, node, err)
	}
	s, _ := v.Value().(string)
	return s
}

// TestProxyServices re-creates upstream's proxy-service tests on real
// nodes: a unit on node-a that wants sb-simple.service on node-b starts it
// there (with bluechi-dep@); stopping bluechi-dep@ by hand changes
// nothing else; stopping the requester stops the proxy and the dep unit
// but not the target; stopping the target stops the proxy but not the
// requester; an unknown node, a missing unit, a unit file with a typo and
// a target that fails to start fail the proxy; a node not allowed gets nothing started;
// requesters on two nodes, or two on one node, share one dependency on the
// target; a requester bound to its proxy goes down with a failing target.
func TestProxyServices(t *testing.T) {
	c := newClusterWith(t, "LogLevel=DEBUG\n\n[node node-a]\nAllowDependenciesOn=node-b\n\n[node node-c]\nAllowDependenciesOn=node-b\n", "node-a", "node-b", "node-c")
	c.startOnline("node-a", "node-b", "node-c")
	c.installProxyTemplates()
	jobs := c.jobs()
	simple, failing := sandbox.SimpleServiceName, sandbox.FailingServiceName
	dep := "bluechi-dep@" + simple

	// Start flow.
	proxy := c.requester("node-a", "needs-b.service", "node-b", simple)
	if r := c.runJob(jobs, "node-a", "start", "needs-b.service"); r != "done" {
		t.Fatalf("start needs-b: %s", r)
	}
	for _, x := range [][2]string{{"node-a", "needs-b.service"}, {"node-a", proxy}, {"node-b", simple}, {"node-b", dep}} {
		if s := c.unitState(x[0], x[1]); s != "active" {
			t.Errorf("%s on %s: %s, want active", x[1], x[0], s)
		}
	}

	// bluechi-dep@ stopped by hand on node-b: target, proxy and requester
	// stay up (the proxy follows the target, not the dep unit).
	if r := c.runJob(jobs, "node-b", "stop", dep); r != "done" {
		t.Fatalf("stop %s by hand: %s", dep, r)
	}
	for _, x := range [][2]string{{"node-a", "needs-b.service"}, {"node-a", proxy}, {"node-b", simple}} {
		if s := c.unitState(x[0], x[1]); s != "active" {
			t.Errorf("%s on %s after stopping %s: %s, want active", x[1], x[0], dep, s)
		}
	}

	// Stop flow: the requester stops, the proxy becomes unneeded and
	// stops, the dependency ends, the target keeps running.
	if r := c.runJob(jobs, "node-a", "stop", "needs-b.service"); r != "done" {
		t.Fatalf("stop needs-b: %s", r)
	}
	c.waitFor("the proxy and the dep unit to stop", func() bool {
		return c.unitState("node-a", proxy) == "inactive" && c.unitState("node-b", dep) == "inactive"
	})
	if s := c.unitState("node-b", simple); s != "active" {
		t.Errorf("target after the requester stopped: %s", s)
	}

	// The target stops on node-b: the proxy stops, the requester stays
	// (Wants=).
	if r := c.runJob(jobs, "node-a", "start", "needs-b.service"); r != "done" {
		t.Fatalf("start needs-b again: %s", r)
	}
	if s := c.unitState("node-a", proxy); s != "active" {
		t.Fatalf("proxy after the second start: %s", s)
	}
	if r := c.runJob(jobs, "node-b", "stop", simple); r != "done" {
		t.Fatalf("stop the target: %s", r)
	}
	c.waitFor("the proxy to stop with its target", func() bool {
		return c.unitState("node-a", proxy) == "inactive" && c.unitState("node-b", dep) == "inactive"
	})
	if s := c.unitState("node-a", "needs-b.service"); s != "active" {
		t.Errorf("requester after its target stopped: %s", s)
	}

	// A node that does not exist, a unit that does not exist and a unit
	// whose file cannot be loaded (a misspelt section leaves it without
	// ExecStart) fail the proxy.
	const typo = "sb-typo.service"
	if err := c.nodes["node-b"].WriteUnit(typo, "[Unit]\nDescription=typo\n\n[Serviec]\nExecStart=/bin/sleep infinity\n"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.nodes["node-b"].Exec(context.Background(), "systemctl", "--user", "daemon-reload"); err != nil {
		t.Fatalf("daemon-reload: %v: %s", err, out)
	}
	for _, x := range [][3]string{{"needs-nowhere.service", "node-zz", simple}, {"needs-missing.service", "node-b", "sb-missing.service"}, {"needs-typo.service", "node-b", typo}} {
		p := c.requester("node-a", x[0], x[1], x[2])
		if r := c.runJob(jobs, "node-a", "start", x[0]); r != "done" {
			t.Fatalf("start %s: %s", x[0], r)
		}
		c.waitFor(p+" to fail", func() bool { return c.unitState("node-a", p) == "failed" })
		// The requester only Wants= its proxy: it runs on.
		if s := c.unitState("node-a", x[0]); s != "active" {
			t.Errorf("%s after its proxy failed: %s, want active", x[0], s)
		}
	}
	if !logContains(c, "controller", "proxy refused: no such node") {
		t.Errorf("no log line for the proxy to node-zz")
	}
	for _, u := range []string{typo, "bluechi-dep@" + typo} {
		if s := c.unitState("node-b", u); s != "inactive" {
			t.Errorf("%s on node-b after its proxy failed: %s, want inactive", u, s)
		}
	}

	// A target that cannot start fails the proxy; the requester still
	// starts (Wants=).
	failProxy := c.requester("node-a", "needs-failing.service", "node-b", failing)
	if r := c.runJob(jobs, "node-a", "start", "needs-failing.service"); r != "done" {
		t.Fatalf("start needs-failing: %s", r)
	}
	c.waitFor("the proxy of a failing target to fail", func() bool {
		return c.unitState("node-a", failProxy) == "failed"
	})

	// node-b may not depend on node-a: the proxy fails, nothing starts there.
	const other = "sb-slow.service"
	deniedProxy := c.requester("node-b", "needs-a-denied.service", "node-a", other)
	if r := c.runJob(jobs, "node-b", "start", "needs-a-denied.service"); r != "done" {
		t.Fatalf("start needs-a-denied: %s", r)
	}
	c.waitFor("the denied proxy to fail", func() bool { return c.unitState("node-b", deniedProxy) == "failed" })
	for _, x := range [][2]string{{"node-a", other}, {"node-a", "bluechi-dep@" + other}} {
		if s := c.unitState(x[0], x[1]); s != "inactive" {
			t.Errorf("%s on %s after a denied proxy: %s, want inactive", x[1], x[0], s)
		}
	}
	if s := c.unitState("node-b", "needs-a-denied.service"); s != "active" {
		t.Errorf("needs-a-denied.service after its proxy was denied: %s, want active", s)
	}
	if !logContains(c, "controller", "proxy refused: not in AllowDependenciesOn") {
		t.Errorf("no log line for the denied proxy")
	}

	// Requesters on two nodes share one dependency: a target that stops
	// when unneeded runs until the last requester stops.
	const shared = "sb-unneeded.service"
	if err := c.nodes["node-b"].WriteUnit(shared, "[Unit]\nStopWhenUnneeded=yes\n\n[Service]\nExecStart=/bin/sleep infinity\n"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.nodes["node-b"].Exec(context.Background(), "systemctl", "--user", "daemon-reload"); err != nil {
		t.Fatalf("daemon-reload: %v: %s", err, out)
	}
	sharedProxy := map[string]string{}
	for _, n := range []string{"node-a", "node-c"} {
		sharedProxy[n] = c.requester(n, "needs-shared.service", "node-b", shared)
		if r := c.runJob(jobs, n, "start", "needs-shared.service"); r != "done" {
			t.Fatalf("start needs-shared on %s: %s", n, r)
		}
	}
	if s := c.unitState("node-b", shared); s != "active" {
		t.Fatalf("shared target: %s", s)
	}
	if r := c.runJob(jobs, "node-a", "stop", "needs-shared.service"); r != "done" {
		t.Fatalf("stop needs-shared on node-a: %s", r)
	}
	c.waitFor("node-a's proxy to stop", func() bool { return c.unitState("node-a", sharedProxy["node-a"]) == "inactive" })
	if s := c.unitState("node-b", shared); s != "active" {
		t.Fatalf("shared target with one requester left: %s", s)
	}
	if r := c.runJob(jobs, "node-c", "stop", "needs-shared.service"); r != "done" {
		t.Fatalf("stop needs-shared on node-c: %s", r)
	}
	c.waitFor("the shared target to stop with the last requester", func() bool {
		return c.unitState("node-b", shared) == "inactive"
	})

	// Two requesters on one node share the proxy unit: it stays while
	// either needs it, and the target with it.
	for _, r := range []string{"needs-shared.service", "needs-shared-too.service"} {
		c.requester("node-a", r, "node-b", shared)
		if res := c.runJob(jobs, "node-a", "start", r); res != "done" {
			t.Fatalf("start %s: %s", r, res)
		}
	}
	if r := c.runJob(jobs, "node-a", "stop", "needs-shared.service"); r != "done" {
		t.Fatalf("stop needs-shared: %s", r)
	}
	if s := c.unitState("node-a", sharedProxy["node-a"]); s != "active" {
		t.Fatalf("proxy still needed by the other requester: %s", s)
	}
	if s := c.unitState("node-b", shared); s != "active" {
		t.Fatalf("shared target still needed: %s", s)
	}
	if r := c.runJob(jobs, "node-a", "stop", "needs-shared-too.service"); r != "done" {
		t.Fatalf("stop needs-shared-too: %s", r)
	}
	c.waitFor("the proxy and the target to stop with the second requester", func() bool {
		return c.unitState("node-a", sharedProxy["node-a"]) == "inactive" && c.unitState("node-b", shared) == "inactive"
	})

	// A requester bound to its proxy goes down when the target fails.
	c.requester("node-a", "bound-to-failing.service", "node-b", failing)
	bound := "[Unit]\nBindsTo=" + failProxy + "\nAfter=" + failProxy + "\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
	if err := c.nodes["node-a"].WriteUnit("bound-to-failing.service", bound); err != nil {
		t.Fatal(err)
	}
	if out, err := c.nodes["node-a"].Exec(context.Background(), "systemctl", "--user", "daemon-reload"); err != nil {
		t.Fatalf("daemon-reload: %v: %s", err, out)
	}
	c.runJob(jobs, "node-a", "start", "bound-to-failing.service") // done or canceled: either way it must not stay up
	c.waitFor("the bound requester to be down", func() bool {
		return c.unitState("node-a", "bound-to-failing.service") != "active"
	})
	if s := c.unitState("node-b", failing); s != "failed" {
		t.Errorf("%s on node-b: %s, want failed", failing, s)
	}
}

// TestProxyPendingAcrossReconnects: a proxy whose target node is offline
// waits (§9.2); the controller restarts meanwhile, so the requesting agent
// announces its proxy again on the new connection (§9.7); the requesting
// agent restarts, so bluechi-proxy asks the new instance; when the target
// node finally registers, its dependency is started and the pending proxy,
// and with it the requesting unit, become active.
func TestProxyPendingAcrossReconnects(t *testing.T) {
	c := newClusterWith(t, "LogLevel=DEBUG\n\n[node node-a]\nAllowDependenciesOn=node-b\n", "node-a", "node-b")
	c.startOnline("node-a")
	c.installProxyTemplates()
	simple := sandbox.SimpleServiceName
	proxy := c.requester("node-a", "needs-b.service", "node-b", simple)
	// The requester waits for its proxy (After=): start it without waiting.
	if out, err := c.nodes["node-a"].Exec(context.Background(), "systemctl", "--user", "start", "--no-block", "needs-b.service"); err != nil {
		t.Fatalf("start needs-b: %v: %s", err, out)
	}
	c.waitFor("the proxy to wait for node-b", func() bool { return c.unitState("node-a", proxy) == "activating" })

	stop(c.ctrlCmd)
	c.startController()
	c.waitStatus("node-a", "online")
	if s := c.unitState("node-a", proxy); s != "activating" {
		t.Fatalf("proxy after the controller restarted: %s, want still activating", s)
	}

	// The requesting agent restarts: the waiting bluechi-proxy asks the
	// new agent instance.
	stop(c.agents["node-a"])
	c.startAgent("node-a")
	c.waitStatus("node-a", "online")
	c.waitFor("bluechi-proxy to ask the new agent", func() bool {
		return strings.Count(readLog(c, "agent-node-a"), "proxy created service="+proxy) >= 2
	})
	if s := c.unitState("node-a", proxy); s != "activating" {
		t.Fatalf("proxy after the requesting agent restarted: %s, want still activating", s)
	}

	c.startAgent("node-b")
	c.waitStatus("node-b", "online")
	c.waitFor("the proxy and its requester to start", func() bool {
		return c.unitState("node-a", proxy) == "active" && c.unitState("node-a", "needs-b.service") == "active"
	})
	for _, u := range []string{simple, "bluechi-dep@" + simple} {
		if s := c.unitState("node-b", u); s != "active" {
			t.Errorf("%s on node-b: %s, want active", u, s)
		}
	}
}
