// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// TestListUnitsFollowsChanges: Controller.ListUnits answers from a cache,
// yet always shows what systemd has: after jobs through the API, after a
// unit stopped from inside the node, after a daemon-reload that changed a
// unit's description, and not from a node that went away.
func TestListUnitsFollowsChanges(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	agentB := c.startOnline("node-a", "node-b")["node-b"]
	ctx := context.Background()
	ctrl := c.controller()
	jobs := c.jobs()
	unit := sandbox.SimpleServiceName
	find := func(node string) (bluechi.UnitInfo, bool) {
		t.Helper()
		all, err := ctrl.ListUnits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range all[node] {
			if u.Name == unit {
				return u, true
			}
		}
		return bluechi.UnitInfo{}, false
	}
	active := func(node string) bool { u, ok := find(node); return ok && u.ActiveState == "active" }
	if active("node-a") {
		t.Fatalf("%s active on node-a before the start", unit)
	}
	// A job through the API: its unit signals reach the controller before
	// JobRemoved, so the very next list shows the change.
	if r := c.runJob(jobs, "node-a", "start", unit); r != "done" {
		t.Fatalf("start: %s", r)
	}
	for i := 0; i < 3; i++ { // then from the cache
		if !active("node-a") {
			t.Fatalf("list %d after the start: %s not active on node-a", i, unit)
		}
	}
	if active("node-b") {
		t.Fatalf("%s active on node-b", unit)
	}
	// Stopped from inside the node, behind the controller's back.
	if out, err := c.nodes["node-a"].Exec(ctx, "systemctl", "--user", "stop", unit); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
	c.waitFor("the list to show the stop", func() bool { return !active("node-a") })
	// A new description after a daemon-reload.
	if r := c.runJob(jobs, "node-a", "start", unit); r != "done" {
		t.Fatalf("start: %s", r)
	}
	if u, _ := find("node-a"); u.Description != "Sandbox demo: long-running service" {
		t.Fatalf("description %q", u.Description)
	}
	changed := strings.Replace(sandbox.SimpleService, "Description=Sandbox demo: long-running service", "Description=Renamed by the test", 1)
	if err := c.nodes["node-a"].WriteUnit(unit, changed); err != nil {
		t.Fatal(err)
	}
	if out, err := c.nodes["node-a"].Exec(ctx, "systemctl", "--user", "daemon-reload"); err != nil {
		t.Fatalf("daemon-reload: %v: %s", err, out)
	}
	c.waitFor("the list to show the new description", func() bool {
		u, ok := find("node-a")
		return ok && u.Description == "Renamed by the test"
	})
	// A node that goes away leaves the answer.
	stop(agentB)
	c.waitStatus("node-b", "offline")
	all, err := ctrl.ListUnits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all["node-b"]; ok || len(all["node-a"]) == 0 {
		t.Fatalf("ListUnits after node-b left: nodes %d, node-b present %v", len(all), ok)
	}
}

// TestFanOutSkipsFrozenNode: a node whose agent is frozen (still
// connected, never answering; heartbeats off so it stays online) neither
// fails nor stalls Controller.ListUnits and ListUnitFiles beyond the
// controller's per-node timeout: both answer with the other node's units.
// Nor does it hold up the controller's other calls meanwhile.
func TestFanOutSkipsFrozenNode(t *testing.T) {
	c := newClusterWith(t, "LogLevel=DEBUG\nHeartbeatInterval=0\n", "node-a", "node-b")
	agentB := c.startOnline("node-a", "node-b")["node-b"]
	if err := agentB.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentB.Process.Signal(syscall.SIGCONT) })
	ctx, cancel := context.WithTimeout(context.Background(), controller.FanOutTimeout+20*time.Second)
	defer cancel()
	ctrl := c.controller()
	obj := c.client.Object(bluechi.ControllerBusName, bluechi.ControllerPath)
	start := time.Now()
	// Sent in this order on one connection, so the controller takes them
	// in this order: the calls after the fan-outs must not wait for them.
	unitsCall := obj.Go(bluechi.ControllerInterface+".ListUnits", 0, nil)
	filesCall := obj.Go(bluechi.ControllerInterface+".ListUnitFiles", 0, nil)
	if _, err := ctrl.GetStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.node("node-a").ListUnits(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > controller.FanOutTimeout/2 {
		t.Errorf("calls behind the fan-outs waited %v", waited)
	}
	var units map[string][]bluechi.UnitInfo
	var files map[string][]bluechi.UnitFileInfo
	for _, call := range []*dbus.Call{unitsCall, filesCall} {
		select {
		case <-call.Done:
		case <-ctx.Done():
			t.Fatal("no answer from a fan-out")
		}
	}
	if err := unitsCall.Store(&units); err != nil {
		t.Fatalf("ListUnits with a frozen node: %v", err)
	}
	if err := filesCall.Store(&files); err != nil {
		t.Fatalf("ListUnitFiles with a frozen node: %v", err)
	}
	took := time.Since(start)
	if len(units["node-a"]) == 0 || len(files["node-a"]) == 0 {
		t.Fatalf("the answering node is missing: %d units, %d files", len(units["node-a"]), len(files["node-a"]))
	}
	if _, ok := units["node-b"]; ok {
		t.Errorf("ListUnits has the frozen node")
	}
	if _, ok := files["node-b"]; ok {
		t.Errorf("ListUnitFiles has the frozen node")
	}
	if took < controller.FanOutTimeout || took > controller.FanOutTimeout+5*time.Second {
		t.Errorf("answered after %v, want the per-node timeout (%v)", took, controller.FanOutTimeout)
	}
	if st, _ := c.node("node-b").GetStatus(ctx); st != "online" {
		t.Errorf("frozen node is %s; the test needs it online", st)
	}
}
