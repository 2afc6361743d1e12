package e2e

import (
	"context"
	"strings"
	"testing"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
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
