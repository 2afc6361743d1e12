// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// listAgent lists a unit table the test changes, counting the calls.
type listAgent struct {
	daemonapi.UnimplementedInternalAgentServer
	mu    sync.Mutex
	units []bluechi.UnitInfo
	calls int
	subs  []string // Subscribe and Unsubscribe calls
	obj   *daemonapi.InternalAgentObject
}

func (a *listAgent) ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return slices.Clone(a.units), nil
}

func (a *listAgent) Subscribe(ctx context.Context, unit string) error {
	a.mu.Lock()
	a.subs = append(a.subs, "Subscribe "+unit)
	a.mu.Unlock()
	return nil
}

func (a *listAgent) Unsubscribe(ctx context.Context, unit string) error {
	a.mu.Lock()
	a.subs = append(a.subs, "Unsubscribe "+unit)
	a.mu.Unlock()
	return nil
}

func (a *listAgent) subscriptions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.subs)
}

func (a *listAgent) set(units ...bluechi.UnitInfo) {
	a.mu.Lock()
	a.units = units
	a.mu.Unlock()
}

func (a *listAgent) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func unit(name, active string) bluechi.UnitInfo {
	return bluechi.UnitInfo{Name: name, Description: "Unit " + name, LoadState: "loaded", ActiveState: active, SubState: "x",
		Path: dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + name[:1]), JobID: 3, JobType: "start", JobPath: "/org/freedesktop/systemd1/job/3"}
}

func (c *cluster) listAgent(name string, a *listAgent) {
	c.t.Helper()
	c.dialAgent(name, func(p *peerAgent) (err error) {
		a.obj, err = daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, a, daemonapi.InternalAgentProperties{})
		return err
	})
}

// TestListUnitsCache: Controller.ListUnits asks a node again only after a
// unit signal from it (or a new connection), answers exactly what the
// agents listed, and leaves out a node whose list cannot be sent.
func TestListUnitsCache(t *testing.T) {
	c := startCluster(t, "n1", "n2", "n3")
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	a1, a2 := &listAgent{}, &listAgent{}
	a1.set(unit("a.service", "active"), unit("b.socket", "inactive"))
	a2.set() // no units at all
	c.listAgent("n1", a1)
	c.listAgent("n2", a2)
	list := func(want map[string][]bluechi.UnitInfo) {
		t.Helper()
		got, err := ctrl.ListUnits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatal(diff)
		}
	}
	calls := func(w1, w2 int) {
		t.Helper()
		if g1, g2 := a1.count(), a2.count(); g1 != w1 || g2 != w2 {
			t.Fatalf("agents asked %d and %d times, want %d and %d", g1, g2, w1, w2)
		}
	}
	list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}})
	calls(1, 1)
	list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}})
	calls(1, 1) // both from the cache
	// Node.ListUnits shares the cache; an offline node is Offline.
	if units, err := c.node("n1").ListUnits(ctx); err != nil || !cmp.Equal(units, a1.units) {
		t.Fatalf("Node.ListUnits = %+v, %v", units, err)
	}
	if units, err := c.node("n2").ListUnits(ctx); err != nil || len(units) != 0 {
		t.Fatalf("Node.ListUnits of n2 = %+v, %v", units, err)
	}
	calls(1, 1)
	if _, err := c.node("n3").ListUnits(ctx); dbusrt.ErrorName(err) != bluechi.ErrorNameOffline {
		t.Fatalf("Node.ListUnits of an offline node: %v", err)
	}
	if got := a1.subscriptions(); !slices.Equal(got, []string{"Subscribe *"}) {
		t.Fatalf("agent calls %q, want one Subscribe *", got)
	}
	// The virtual UnitNew("*") answering the subscription is no change.
	if err := a1.obj.EmitUnitNew(daemonapi.InternalAgentUnitNewSignal{Unit: "*", Reason: "virtual"}); err != nil {
		t.Fatal(err)
	}
	list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}})
	calls(1, 1)

	// Every kind of unit signal invalidates its node only.
	signals := []func() error{
		func() error {
			return a1.obj.EmitUnitNew(daemonapi.InternalAgentUnitNewSignal{Unit: "c.service", Reason: "real"})
		},
		func() error {
			return a1.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: "a.service", ActiveState: "failed", SubState: "failed", Reason: "real"})
		},
		func() error {
			return a1.obj.EmitUnitPropertiesChanged(daemonapi.InternalAgentUnitPropertiesChangedSignal{Unit: "a.service", Interface: "org.freedesktop.systemd1.Unit", Props: map[string]dbus.Variant{}})
		},
		func() error {
			return a1.obj.EmitUnitRemoved(daemonapi.InternalAgentUnitRemovedSignal{Unit: "c.service"})
		},
	}
	for i, emit := range signals {
		a1.set(unit("a.service", fmt.Sprint("state", i)))
		if err := emit(); err != nil {
			t.Fatal(err)
		}
		// The signal and the next reply travel on one connection, in
		// order: poll only for the signal to reach the controller.
		waitFor(t, "a new list", func() bool {
			got, err := ctrl.ListUnits(ctx)
			return err == nil && len(got["n1"]) == 1 && got["n1"][0].ActiveState == fmt.Sprint("state", i)
		})
		list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}})
		if a2.count() != 1 {
			t.Fatalf("n2 asked again after a signal from n1")
		}
	}
	// Each change dropped the subscription; each new list made it again.
	want := []string{"Subscribe *"}
	for range signals {
		want = append(want, "Unsubscribe *", "Subscribe *")
	}
	waitFor(t, "the cache's subscriptions", func() bool { return slices.Equal(a1.subscriptions(), want) })
	if got := a2.subscriptions(); !slices.Equal(got, []string{"Subscribe *"}) {
		t.Fatalf("n2's agent calls %q, want one Subscribe *", got)
	}

	// A node that connects is asked; one that lists invalid UTF-8 is left
	// out, and the controller's bus connection survives.
	a3 := &listAgent{}
	a3.set(unit("a.service", "bad\xff"))
	c.listAgent("n3", a3)
	list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}})
	list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}})
	if a3.count() != 2 {
		t.Fatalf("a node left out was not asked again: %d calls", a3.count())
	}
	a3.set(unit("a.service", "good"))
	list(map[string][]bluechi.UnitInfo{"n1": a1.units, "n2": {}, "n3": a3.units})
}
