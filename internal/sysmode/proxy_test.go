// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bluechi-go/bluechi/internal/controller"
)

// The cross-node dependency of the Proxy steps: sysmode-needs on n2 wants
// sysmode-dep on n3 through a proxy unit on n2, which has the controller
// hold bluechi-dep@sysmode-dep on n3.
const (
	requesterNode = "n2"
	targetNode    = "n3"
	needsUnit     = "sysmode-needs.service"
	targetUnit    = "sysmode-dep.service"
	proxyUnit     = "bluechi-proxy@n3_sysmode-dep.service"
	depUnit       = "bluechi-dep@sysmode-dep.service"
)

// Limits from issue 17: a requester whose agent restarts has its
// dependency held again this soon after the agent is back; a dependency
// whose requester stopped while the target was away is released this soon
// after the target's return.
const (
	reholdLimit  = 5 * time.Second
	releaseLimit = 8 * time.Second
)

// startNeeds starts the requesting unit on n2 and waits until it, its
// proxy, the target and the target's bluechi-dep@ are all active.
func (c *cluster) startNeeds(ctx context.Context) {
	t := c.t
	t.Helper()
	c.run(ctx, ctlNode, "bluechictl", "start", requesterNode, needsUnit)
	for _, u := range [][2]string{{requesterNode, needsUnit}, {requesterNode, proxyUnit}, {targetNode, targetUnit}, {targetNode, depUnit}} {
		waitFor(t, 10*time.Second, u[1]+" active on "+u[0], func() (bool, string) {
			s := c.prop(ctx, u[0], u[1], "ActiveState")
			return s == "active", s
		})
	}
}

// activeSince is a unit's ActiveEnterTimestampMonotonic: unchanged while
// the unit never left active.
func (c *cluster) activeSince(ctx context.Context, node, unit string) string {
	return c.prop(ctx, node, unit, "ActiveEnterTimestampMonotonic")
}

// stayActive fails the test unless unit on node is active at every poll
// until the deadline.
func (c *cluster) stayActive(ctx context.Context, node, unit string, until time.Time, why string) {
	t := c.t
	t.Helper()
	for {
		if s := c.prop(ctx, node, unit, "ActiveState"); s != "active" {
			t.Fatalf("%s on %s is %s %v before %s (want active all along)", unit, node, s, time.Until(until).Round(time.Millisecond), why)
		}
		if time.Now().After(until) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// restartAgent restarts the agent on node with systemctl and waits until
// the new instance is online for the controller and for itself. It
// returns the new agent's MainPID and when it was back.
func (c *cluster) restartAgent(ctx context.Context, node string) (string, time.Time) {
	t := c.t
	t.Helper()
	pid := c.prop(ctx, node, "bluechi-agent.service", "MainPID")
	start := time.Now()
	c.run(ctx, node, "systemctl", "restart", "bluechi-agent.service")
	now := c.prop(ctx, node, "bluechi-agent.service", "MainPID")
	if now == pid || now == "0" {
		t.Fatalf("agent on %s: MainPID %s after restart (was %s)", node, now, pid)
	}
	waitFor(t, 30*time.Second, "the restarted agent on "+node+" online", func() (bool, string) {
		s, err := c.nodeStatus(node)
		a, aerr := c.agentStatus(node)
		return err == nil && aerr == nil && s == "online" && a == "online",
			fmt.Sprintf("controller: %s %v, agent: %s %v", s, err, a, aerr)
	})
	back := time.Now()
	t.Logf("agent on %s restarted (MainPID %s -> %s), online %v after systemctl restart", node, pid, now, back.Sub(start).Round(time.Millisecond))
	return now, back
}

// journalSince is a time for journalctl --since that includes now.
func journalSince() string {
	return time.Now().Add(-time.Second).UTC().Format("2006-01-02 15:04:05")
}

// hasRecord reports whether entries hold a record whose MESSAGE starts
// with msg and that has every field=value of kv (pairs).
func hasRecord(entries []map[string]string, msg string, kv ...string) bool {
	for _, e := range entries {
		if !strings.HasPrefix(e["MESSAGE"], msg) {
			continue
		}
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if e[kv[i]] != kv[i+1] {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// proxyRequesterAgentRestart: `systemctl restart bluechi-agent` on the
// requesting node while the requesting unit runs. The proxy unit and the
// requesting unit stay active (never leave it), the new agent restores the
// proxy from its unit, and the target's bluechi-dep@ is held again within
// reholdLimit of the agent's return and stays held.
func (c *cluster) proxyRequesterAgentRestart(ctx context.Context) {
	t := c.t
	c.startNeeds(ctx)
	proxySince := c.activeSince(ctx, requesterNode, proxyUnit)
	needsSince := c.activeSince(ctx, requesterNode, needsUnit)
	depSince := c.activeSince(ctx, targetNode, depUnit)
	since := journalSince()
	pid, back := c.restartAgent(ctx, requesterNode)
	waitFor(t, time.Until(back.Add(reholdLimit)), depUnit+" on "+targetNode+" held again after the requester's agent restarted", func() (bool, string) {
		s := c.prop(ctx, targetNode, depUnit, "ActiveState")
		return s == "active", s
	})
	t.Logf("%s on %s active %v after the agent was back", depUnit, targetNode, time.Since(back).Round(time.Millisecond))
	// A late release (the old connection's, after the new one's hold)
	// would leave the requester unprotected: watch the whole window.
	c.stayActive(ctx, targetNode, depUnit, back.Add(reholdLimit), "the end of the re-hold window")
	if now := c.activeSince(ctx, targetNode, depUnit); now != depSince {
		t.Logf("%s on %s was released and held again (active since %s, was %s)", depUnit, targetNode, now, depSince)
	} else {
		t.Logf("%s on %s stayed active all along", depUnit, targetNode)
	}
	for _, u := range []struct{ unit, since string }{{proxyUnit, proxySince}, {needsUnit, needsSince}} {
		s, now := c.prop(ctx, requesterNode, u.unit, "ActiveState"), c.activeSince(ctx, requesterNode, u.unit)
		if s != "active" || now != u.since {
			t.Errorf("%s on %s: %s, active since %s (was %s): it must stay active across the agent's restart", u.unit, requesterNode, s, now, u.since)
		}
	}
	if !hasRecord(c.journal(ctx, requesterNode, "bluechi-agent.service", "--since", since),
		"proxy restored from its active unit", "_PID", pid, "NODE", targetNode) {
		t.Errorf("the restarted agent on %s (PID %s) logged no \"proxy restored from its active unit\" for %s", requesterNode, pid, targetNode)
	}
}

// proxyTargetAgentRestart: `systemctl restart bluechi-agent` on the target
// node while the dependency is held. The target's bluechi-dep@ is active
// again (or never stopped) once the agent is back and stays so past the
// controller's dependency check after the node's registration; the proxy
// and the requesting unit never leave active.
func (c *cluster) proxyTargetAgentRestart(ctx context.Context) {
	t := c.t
	c.startNeeds(ctx)
	proxySince := c.activeSince(ctx, requesterNode, proxyUnit)
	needsSince := c.activeSince(ctx, requesterNode, needsUnit)
	depSince := c.activeSince(ctx, targetNode, depUnit)
	since := journalSince()
	_, back := c.restartAgent(ctx, targetNode)
	waitFor(t, time.Until(back.Add(reholdLimit)), depUnit+" on "+targetNode+" held after its agent restarted", func() (bool, string) {
		s := c.prop(ctx, targetNode, depUnit, "ActiveState")
		return s == "active", s
	})
	// The controller checks the node's bluechi-dep@ units DepCheckDelay
	// after it registered and releases those no proxy holds: this one
	// must survive the check.
	c.stayActive(ctx, targetNode, depUnit, back.Add(controller.DepCheckDelay+2*time.Second), "the controller's dependency check is surely done")
	if now := c.activeSince(ctx, targetNode, depUnit); now != depSince {
		t.Logf("%s on %s was released and held again (active since %s, was %s)", depUnit, targetNode, now, depSince)
	} else {
		t.Logf("%s on %s stayed active all along", depUnit, targetNode)
	}
	if hasRecord(c.journal(ctx, ctlNode, "bluechi-controller.service", "--since", since),
		"releasing a dependency no proxy holds", "NODE", targetNode) {
		t.Errorf("the controller released a dependency on %s that a proxy holds", targetNode)
	}
	for _, u := range []struct{ unit, since string }{{proxyUnit, proxySince}, {needsUnit, needsSince}} {
		s, now := c.prop(ctx, requesterNode, u.unit, "ActiveState"), c.activeSince(ctx, requesterNode, u.unit)
		if s != "active" || now != u.since {
			t.Errorf("%s on %s: %s, active since %s (was %s): it must stay active across the target agent's restart", u.unit, requesterNode, s, now, u.since)
		}
	}
}

// proxyStopWhileTargetCut: the requesting unit stops while the target
// node's link is down, so the controller cannot tell the target to release
// the dependency. Once the link is back and the node online again, the
// target releases bluechi-dep@ within releaseLimit.
func (c *cluster) proxyStopWhileTargetCut(ctx context.Context) {
	t := c.t
	c.startNeeds(ctx)
	since := journalSince()
	n3 := c.nodes[targetNode]
	returned := c.partition(ctx, targetNode, "link down",
		func() error { return n3.SetLink(ctx, false) },
		func() error { return n3.SetLink(ctx, true) },
		func() {
			c.run(ctx, ctlNode, "bluechictl", "stop", requesterNode, needsUnit)
			waitFor(t, 10*time.Second, proxyUnit+" stopped on "+requesterNode, func() (bool, string) {
				s := c.prop(ctx, requesterNode, proxyUnit, "ActiveState")
				return s == "inactive", s
			})
			// The release could not reach the target: it still holds
			// the dependency (else this step tests nothing).
			if s := c.prop(ctx, targetNode, depUnit, "ActiveState"); s != "active" {
				t.Errorf("%s on the cut-off %s: %s, want still active", depUnit, targetNode, s)
			}
		})
	waitFor(t, time.Until(returned.Add(releaseLimit)), depUnit+" released on "+targetNode+" after its return", func() (bool, string) {
		s := c.prop(ctx, targetNode, depUnit, "ActiveState")
		return s == "inactive", s
	})
	t.Logf("%s on %s released %v after all nodes were online again", depUnit, targetNode, time.Since(returned).Round(time.Millisecond))
	// Which path released it: the controller's check after registration
	// logs it (journal field ATTR_UNIT: UNIT is systemd's own).
	t.Logf("the controller logged \"releasing a dependency no proxy holds\" for %s on %s: %v", targetUnit, targetNode,
		hasRecord(c.journal(ctx, ctlNode, "bluechi-controller.service", "--since", since),
			"releasing a dependency no proxy holds", "NODE", targetNode, "ATTR_UNIT", targetUnit))
	if s := c.prop(ctx, targetNode, targetUnit, "ActiveState"); s != "active" {
		t.Errorf("%s on %s after the release: %s, want still active (only bluechi-dep@ goes)", targetUnit, targetNode, s)
	}
	c.run(ctx, targetNode, "systemctl", "stop", targetUnit)
}
