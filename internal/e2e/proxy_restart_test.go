// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// localState reads a unit's ActiveState from the node's own systemd (the
// controller cannot ask a node that is away).
func (c *cluster) localState(node, unit string) string {
	c.t.Helper()
	out, _ := c.nodes[node].Exec(context.Background(), "systemctl", "--user", "show", "-P", "ActiveState", unit)
	return strings.TrimSpace(string(out))
}

// activeSince is the unit's ActiveEnterTimestampMonotonic on its node: it
// stays the same while the unit never leaves active.
func (c *cluster) activeSince(node, unit string) string {
	c.t.Helper()
	out, err := c.nodes[node].Exec(context.Background(), "systemctl", "--user", "show", "-P", "ActiveEnterTimestampMonotonic", unit)
	if err != nil {
		c.t.Fatalf("ActiveEnterTimestampMonotonic of %s on %s: %v: %s", unit, node, err, out)
	}
	return strings.TrimSpace(string(out))
}

// readLog returns a daemon's log so far.
func readLog(c *cluster, name string) string {
	data, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	return string(data)
}

// waitWithin waits for cond until the deadline and fails the test saying
// what was late.
func (c *cluster) waitWithin(deadline time.Time, what string, cond func() bool) {
	c.t.Helper()
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within the deadline", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProxyRestarts: a cross-node dependency survives a restart of the
// requesting agent (the proxy unit stays active and the new agent holds
// the dependency again within 5 s), of the target agent and of the
// controller; a requester or a target that is silent (SIGSTOP, dropped by
// heartbeat) while the requesting unit stops has the dependency released
// on the target within 8 s of its return; a target that fails right after
// starting (upstream's proxy-service-fails-on-execstart) leaves the proxy
// and bluechi-dep@ inactive and the requester active.
func TestProxyRestarts(t *testing.T) {
	c := newClusterWith(t, "LogLevel=DEBUG\n\n[node node-a]\nAllowDependenciesOn=node-b\n", "node-a", "node-b")
	c.startOnline("node-a", "node-b")
	c.installProxyTemplates()
	jobs := c.jobs()
	simple := sandbox.SimpleServiceName
	dep := "bluechi-dep@" + simple
	proxy := c.requester("node-a", "needs-b.service", "node-b", simple)
	start := func() {
		t.Helper()
		if r := c.runJob(jobs, "node-a", "start", "needs-b.service"); r != "done" {
			t.Fatalf("start needs-b: %s", r)
		}
		for _, x := range [][2]string{{"node-a", "needs-b.service"}, {"node-a", proxy}, {"node-b", simple}, {"node-b", dep}} {
			if s := c.unitState(x[0], x[1]); s != "active" {
				t.Fatalf("%s on %s: %s, want active", x[1], x[0], s)
			}
		}
	}
	start()
	since := c.activeSince("node-a", proxy)
	checked := func() int { return strings.Count(readLog(c, "controller"), "dependency units checked node=node-b") }

	t.Run("requester-agent-restart", func(t *testing.T) {
		t0 := time.Now()
		stop(c.agents["node-a"])
		c.startAgent("node-a")
		c.waitStatus("node-a", "online")
		c.waitWithin(t0.Add(5*time.Second), "bluechi-dep@ held again", func() bool { return c.unitState("node-b", dep) == "active" })
		if !logContains(c, "agent-node-a", "proxy restored from its active unit") {
			t.Error("the new agent did not restore the proxy")
		}
		if s, now := c.localState("node-a", proxy), c.activeSince("node-a", proxy); s != "active" || now != since {
			t.Fatalf("proxy unit %s, active since %s (was %s): it must stay active", s, now, since)
		}
	})

	t.Run("target-agent-restart", func(t *testing.T) {
		n := checked()
		stop(c.agents["node-b"])
		c.startAgent("node-b")
		c.waitStatus("node-b", "online")
		c.waitFor("the dependency check of node-b", func() bool { return checked() > n })
		for _, x := range [][2]string{{"node-a", proxy}, {"node-b", simple}, {"node-b", dep}} {
			if s := c.localState(x[0], x[1]); s != "active" {
				t.Errorf("%s on %s: %s, want active", x[1], x[0], s)
			}
		}
		if now := c.activeSince("node-a", proxy); now != since {
			t.Errorf("proxy unit left active: since %s, was %s", now, since)
		}
	})

	t.Run("controller-restart", func(t *testing.T) {
		n := checked()
		stop(c.ctrlCmd)
		c.startController()
		jobs = c.jobs() // the new controller numbers its jobs from 1 again
		c.waitStatus("node-a", "online")
		c.waitStatus("node-b", "online")
		c.waitFor("the dependency check of node-b", func() bool { return checked() > n })
		for _, x := range [][2]string{{"node-a", proxy}, {"node-b", simple}, {"node-b", dep}} {
			if s := c.localState(x[0], x[1]); s != "active" {
				t.Errorf("%s on %s: %s, want active", x[1], x[0], s)
			}
		}
		if now := c.activeSince("node-a", proxy); now != since {
			t.Errorf("proxy unit left active: since %s, was %s", now, since)
		}
	})

	t.Run("requester-silent", func(t *testing.T) {
		agent := c.agents["node-a"]
		agent.Process.Signal(syscall.SIGSTOP)
		defer agent.Process.Signal(syscall.SIGCONT)
		c.waitStatus("node-a", "offline")
		// The proxy's ExecStop waits for the frozen agent: do not block.
		if out, err := c.nodes["node-a"].Exec(context.Background(), "systemctl", "--user", "stop", "--no-block", "needs-b.service"); err != nil {
			t.Fatalf("stop needs-b: %v: %s", err, out)
		}
		agent.Process.Signal(syscall.SIGCONT)
		t0 := time.Now()
		c.waitStatus("node-a", "online")
		c.waitWithin(t0.Add(8*time.Second), "bluechi-dep@ released on node-b", func() bool { return c.localState("node-b", dep) == "inactive" })
		c.waitFor("the proxy unit to stop", func() bool { return c.localState("node-a", proxy) == "inactive" })
		// Nothing holds it again afterwards.
		n := checked()
		c.waitFor("a dependency check", func() bool { return checked() > n || time.Since(t0) > 8*time.Second })
		if s := c.localState("node-b", dep); s != "inactive" {
			t.Fatalf("bluechi-dep@ after the requester's return: %s", s)
		}
	})

	t.Run("target-silent", func(t *testing.T) {
		start()
		agent := c.agents["node-b"]
		agent.Process.Signal(syscall.SIGSTOP)
		defer agent.Process.Signal(syscall.SIGCONT)
		c.waitStatus("node-b", "offline")
		if r := c.runJob(jobs, "node-a", "stop", "needs-b.service"); r != "done" {
			t.Fatalf("stop needs-b: %s", r)
		}
		c.waitFor("the proxy unit to stop", func() bool { return c.localState("node-a", proxy) == "inactive" })
		if s := c.localState("node-b", dep); s != "active" {
			t.Fatalf("bluechi-dep@ on the frozen node: %s, want still active", s)
		}
		agent.Process.Signal(syscall.SIGCONT)
		t0 := time.Now()
		c.waitWithin(t0.Add(8*time.Second), "bluechi-dep@ released after node-b's return", func() bool { return c.localState("node-b", dep) == "inactive" })
		if s := c.localState("node-b", simple); s != "active" {
			t.Errorf("target after the release: %s, want still active", s)
		}
	})

	t.Run("target-fails-after-start", func(t *testing.T) {
		const fails = "sb-fails-late.service"
		if err := c.nodes["node-b"].WriteUnit(fails, "[Service]\nType=simple\nRemainAfterExit=yes\nExecStart=/bin/false\n"); err != nil {
			t.Fatal(err)
		}
		if out, err := c.nodes["node-b"].Exec(context.Background(), "systemctl", "--user", "daemon-reload"); err != nil {
			t.Fatalf("daemon-reload: %v: %s", err, out)
		}
		p := c.requester("node-a", "needs-fails-late.service", "node-b", fails)
		if r := c.runJob(jobs, "node-a", "start", "needs-fails-late.service"); r != "done" {
			t.Fatalf("start needs-fails-late: %s", r)
		}
		c.waitFor("the target to fail and the proxy to stop", func() bool {
			return c.unitState("node-b", fails) == "failed" && c.unitState("node-a", p) == "inactive"
		})
		if s := c.unitState("node-b", "bluechi-dep@"+fails); s != "inactive" {
			t.Errorf("bluechi-dep@ of the failed target: %s, want inactive", s)
		}
		if s := c.unitState("node-a", "needs-fails-late.service"); s != "active" {
			t.Errorf("requester: %s, want active", s)
		}
	})
}
