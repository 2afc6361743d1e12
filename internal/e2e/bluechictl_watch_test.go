// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// TestCtlMonitor runs "bluechictl monitor" (every node and unit, and one
// node with a unit list) and "status NODE UNIT -w" while units change on
// two nodes and a node goes away and comes back, checking what they print.
func TestCtlMonitor(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	c.startAgent("node-a")
	agentB := c.startAgent("node-b")
	c.waitStatus("node-a", "online")
	c.waitStatus("node-b", "online")
	e := c.in(t)
	// A unit that is already running when the monitors subscribe gives them
	// virtual events: the sign that their subscription is in place.
	e.ctlOK("start", "node-a", sandbox.SimpleServiceName)

	all := ctlStartProc(t, ctlToolCmd(c.bus.Address, "bluechictl", "-u", "monitor"))
	out := all.waitFor("the wildcard subscription on both nodes", func(out string) bool {
		return strings.Contains(out, "[node-a] *\n\tUnit created (reason: virtual)\n") &&
			strings.Contains(out, "[node-b] *\n\tUnit created (reason: virtual)\n")
	})
	if !ctlReMonitorHead.MatchString(out) {
		t.Errorf("monitor head:\n%s", out)
	}
	some := ctlStartProc(t, ctlToolCmd(c.bus.Address, "bluechictl", "-u", "monitor", "node-a", "sb-simple.service,sb-oneshot.service"))
	some.waitContains("Subscribing to node 'node-a' and unit 'sb-simple.service'\nSubscribing to node 'node-a' and unit 'sb-oneshot.service'\n"+
		"[node-a] sb-simple.service\n\tUnit created (reason: virtual)\n"+
		"[node-a] sb-simple.service\n\tUnit state changed (reason: virtual)\n\tActive: active (running)\n", 0)
	watch := ctlStartProc(t, ctlToolCmd(c.bus.Address, "bluechictl", "-u", "status", "node-a", sandbox.SimpleServiceName, "--watch"))
	row := "sb-simple.service\t| loaded\t| active\t| running\t| running\t| disabled\t|\n"
	header := "UNIT\t\t\t| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n" + strings.Repeat("-", 104) + "\n"
	watch.waitContains(header+row, 0)
	// The refresh caused by the virtual event of its subscription.
	watch.waitContains(ctlClear+header+row, 0)

	// Events of node-b first: the node-a monitor must not see them.
	mark := len(all.output())
	e.ctlOK("start", "node-b", sandbox.SimpleServiceName)
	all.waitFor("sb-simple on node-b", func(out string) bool {
		o := out[mark:]
		return strings.Contains(o, "[node-b] sb-simple.service\n\tUnit created (reason: real)\n") &&
			strings.Contains(o, "[node-b] sb-simple.service\n\tUnit state changed (reason: real)\n\tActive: active (running)\n") &&
			strings.Contains(o, "[node-b] sb-simple.service\n\tUnit properties changed (Interface: org.freedesktop.systemd1.Unit)\n") &&
			strings.Contains(o, "\tActiveState: active\n")
	})

	// node-a: stop the long-running service, run the oneshot one.
	mark, markSome, markWatch := len(all.output()), len(some.output()), len(watch.output())
	e.ctlOK("stop", "node-a", sandbox.SimpleServiceName)
	e.ctlOK("start", "node-a", sandbox.OneshotServiceName)
	for _, m := range []struct {
		p    *ctlProc
		from int
	}{{all, mark}, {some, markSome}} {
		m.p.waitFor("events on node-a", func(out string) bool {
			o := out[m.from:]
			return strings.Contains(o, "[node-a] sb-simple.service\n\tUnit state changed (reason: real)\n\tActive: inactive (dead)\n") &&
				strings.Contains(o, "\tActiveState: inactive\n") &&
				strings.Contains(o, "[node-a] sb-oneshot.service\n\tUnit created (reason: real)\n") &&
				strings.Contains(o, "[node-a] sb-oneshot.service\n\tUnit state changed (reason: real)\n\tActive: inactive (dead)\n")
		})
	}
	if strings.Contains(some.output(), "[node-b]") {
		t.Errorf("the node-a monitor printed node-b events:\n%s", some.output())
	}
	watch.waitContains(ctlClear+header+"sb-simple.service\t| loaded\t| inactive\t| dead\t\t| running\t| disabled\t|\n", markWatch)
	markWatch = len(watch.output())
	e.ctlOK("start", "node-a", sandbox.SimpleServiceName)
	watch.waitContains(ctlClear+header+row, markWatch)

	// Reading the properties of an unloaded unit loads it for a moment.
	mark = len(all.output())
	if r := e.ctlOK("status", "node-a", sandbox.SlowServiceName); !strings.Contains(r.stdout, "| inactive\t|") {
		t.Errorf("status of sb-slow: %v", r)
	}
	all.waitFor("sb-slow loaded and unloaded", func(out string) bool {
		o := out[mark:]
		i := strings.Index(o, "[node-a] sb-slow.service\n\tUnit created (reason: ")
		return i >= 0 && strings.Contains(o[i:], "[node-a] sb-slow.service\n\tUnit removed (reason: ")
	})

	// Lose node-b: virtual events.
	mark = len(all.output())
	stop(agentB)
	all.waitFor("node-b gone", func(out string) bool {
		o := out[mark:]
		return strings.Contains(o, "[node-b] *\n\tUnit removed (reason: virtual)\n")
	})
	mark = len(all.output())
	c.startAgent("node-b")
	all.waitContains("[node-b] *\n\tUnit created (reason: virtual)\n", mark)

	for name, p := range map[string]*ctlProc{"monitor": all, "monitor node-a": some, "status -w": watch} {
		if code := p.interrupt(); code != 0 {
			t.Errorf("%s: exit %d after SIGINT", name, code)
		}
	}
	if strings.Contains(all.stderr()+some.stderr()+watch.stderr(), "\n") {
		t.Errorf("stderr:\n%s%s%s", all.stderr(), some.stderr(), watch.stderr())
	}
}

const ctlClear = "\x1b[2J\x1b[0;0H"

var ctlReMonitorHead = regexpMust(`^Monitor path: /org/eclipse/bluechi/monitor/\d+\nSubscribing to node '\*' and unit '\*'\n`)

// TestIsOnline runs bluechi-is-online in its three modes with --wait and
// --monitor while agents stop and start.
func TestIsOnline(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	agentA := c.startAgent("node-a")
	c.startAgent("node-b")
	c.waitStatus("node-a", "online")
	c.waitStatus("node-b", "online")
	nodeBus := c.nodes["node-a"].BusAddress
	online := func(bus string, args ...string) ctlResult {
		return ctlRunTool(t, bus, "bluechi-is-online", append([]string{"-u"}, args...)...)
	}
	bg := func(bus string, args ...string) *ctlProc {
		return ctlStartProc(t, ctlToolCmd(bus, "bluechi-is-online", append([]string{"-u"}, args...)...))
	}
	expect := func(what string, r ctlResult, code int, stderr string) {
		t.Helper()
		if r.code != code || r.stderr != stderr || r.stdout != "" {
			t.Errorf("%s: want exit %d and stderr %q, got %v", what, code, stderr, r)
		}
	}

	// Online: immediate answers, also with --wait.
	expect("agent", online(nodeBus, "agent"), 0, "")
	expect("node", online(c.bus.Address, "node", "node-a"), 0, "")
	expect("system", online(c.bus.Address, "system"), 0, "")
	start := time.Now()
	expect("node --wait", online(c.bus.Address, "node", "node-a", "--wait=20000"), 0, "")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("node --wait on an online node took %v", d)
	}
	expect("unknown node", online(c.bus.Address, "node", "nope"), 1, "org.eclipse.bluechi is offline\n")

	// --monitor runs silently while online and ends when node-a goes.
	monAgent := bg(nodeBus, "agent", "--monitor")
	monNode := bg(c.bus.Address, "node", "node-a", "--monitor")
	monSystem := bg(c.bus.Address, "system", "--monitor", "--wait=100")
	monOther := bg(c.bus.Address, "node", "node-b", "--monitor")
	// Make sure they are past their first look before node-a goes away:
	// a plain check round trip takes longer than their subscription.
	for i := 0; i < 3; i++ {
		expect("node-a still online", online(c.bus.Address, "node", "node-a"), 0, "")
	}
	for name, p := range map[string]*ctlProc{"agent": monAgent, "node": monNode, "system": monSystem, "node-b": monOther} {
		if !p.running() {
			t.Errorf("%s --monitor ended while online: exit %d, %q", name, p.code, p.stderr())
		}
	}
	stop(agentA)
	for name, p := range map[string]*ctlProc{"agent": monAgent, "node": monNode, "system": monSystem} {
		code := p.wait(20 * time.Second)
		want := map[string]string{"agent": "org.eclipse.bluechi.Agent is offline\n"}[name]
		if want == "" {
			want = "org.eclipse.bluechi is offline\n"
		}
		if code != 1 || p.stderr() != want || p.output() != "" {
			t.Errorf("%s --monitor after the agent stopped: exit %d, stdout %q, stderr %q", name, code, p.output(), p.stderr())
		}
	}
	if !monOther.running() {
		t.Errorf("node-b --monitor ended: %q", monOther.stderr())
	}

	// Offline: immediate failure, or after the wait.
	c.waitStatus("node-a", "offline")
	expect("agent offline", online(nodeBus, "agent"), 1, "org.eclipse.bluechi.Agent is offline\n")
	expect("node offline", online(c.bus.Address, "node", "node-a"), 1, "org.eclipse.bluechi is offline\n")
	expect("system degraded", online(c.bus.Address, "system"), 1, "org.eclipse.bluechi is offline\n")
	expect("monitor offline", online(c.bus.Address, "node", "node-a", "--monitor"), 1, "org.eclipse.bluechi is offline\n")
	for _, w := range []struct {
		what, bus string
		args      []string
		stderr    string
	}{
		{"node --wait=500 offline", c.bus.Address, []string{"node", "node-a", "--wait=500"}, "org.eclipse.bluechi is offline\n"},
		{"agent --wait=500 offline", nodeBus, []string{"agent", "--wait=500"}, "org.eclipse.bluechi.Agent is offline\n"},
		{"system --wait=500 degraded", c.bus.Address, []string{"system", "--wait=500"}, "org.eclipse.bluechi is offline\n"},
	} {
		start = time.Now()
		expect(w.what, online(w.bus, w.args...), 1, w.stderr)
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("%s gave up after %v", w.what, d)
		}
	}

	// Waiters succeed as soon as the agent is back.
	waits := map[string]*ctlProc{
		"agent":  bg(nodeBus, "agent", "--wait=30000"),
		"node":   bg(c.bus.Address, "node", "node-a", "--wait=30000"),
		"system": bg(c.bus.Address, "system", "--wait=30000"),
	}
	for i := 0; i < 3; i++ {
		expect("node-a still offline", online(c.bus.Address, "node", "node-a"), 1, "org.eclipse.bluechi is offline\n")
	}
	start = time.Now()
	agentA = c.startAgent("node-a")
	for name, p := range waits {
		if code := p.wait(25 * time.Second); code != 0 || p.stderr() != "" {
			t.Errorf("%s --wait: exit %d, %q", name, code, p.stderr())
		}
	}
	t.Logf("waiters returned %v after the agent started", time.Since(start).Round(time.Millisecond))

	// A controller switch: with --switch-timeout the agent's reconnection
	// does not end monitoring; without, it does.
	conn, err := c.nodes["node-a"].Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	agent := bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath)
	ctx := context.Background()
	addr, err := agent.GetControllerAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tolerant := bg(nodeBus, "agent", "--monitor", "--switch-timeout=20000")
	plain := bg(nodeBus, "agent", "--monitor")
	for i := 0; i < 3; i++ {
		expect("agent online", online(nodeBus, "agent"), 0, "")
	}
	newAddr := fmt.Sprintf("tcp:port=%d,host=127.0.0.1", c.port)
	if addr == newAddr {
		t.Fatalf("controller address already %s", addr)
	}
	if err := agent.SwitchController(ctx, newAddr); err != nil {
		t.Fatal(err)
	}
	if code := plain.wait(20 * time.Second); code != 1 || plain.stderr() != "org.eclipse.bluechi.Agent is offline\n" {
		t.Errorf("agent --monitor across a switch: exit %d, %q", code, plain.stderr())
	}
	// The controller may still show the old connection: wait for the
	// agent's own word that it registered again.
	c.waitFor("node-a's agent online after the switch", func() bool {
		s, err := agent.GetStatus(ctx)
		return err == nil && s == "online"
	})
	c.waitStatus("node-a", "online")
	expect("agent online after the switch", online(nodeBus, "agent"), 0, "")
	if !tolerant.running() {
		t.Errorf("agent --monitor --switch-timeout ended at the switch: %q", tolerant.stderr())
	}
	stop(agentA)
	if code := tolerant.wait(20 * time.Second); code != 1 || tolerant.stderr() != "org.eclipse.bluechi.Agent is offline\n" {
		t.Errorf("agent --monitor --switch-timeout after the agent stopped: exit %d, %q", code, tolerant.stderr())
	}
	if code := monOther.interrupt(); code != 0 {
		t.Errorf("node-b --monitor after SIGINT: %d", code)
	}
}
