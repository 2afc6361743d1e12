// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
)

// depAgent records the calls the controller makes on an agent and on its
// proxy objects.
type depAgent struct {
	daemonapi.UnimplementedInternalAgentServer
	mu    sync.Mutex
	calls []string
	conn  *peerAgent
	obj   *daemonapi.InternalAgentObject
	units []bluechi.UnitInfo // ListUnits' answer; set before registration
}

func (a *depAgent) ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error) {
	units := slices.Clone(a.units)
	for i := range units {
		units[i].Path, units[i].JobPath = "/", "/"
	}
	return units, nil
}

func (a *depAgent) record(s string) {
	a.mu.Lock()
	a.calls = append(a.calls, s)
	a.mu.Unlock()
}

func (a *depAgent) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

func (a *depAgent) Subscribe(ctx context.Context, unit string) error {
	a.record("Subscribe " + unit)
	return nil
}
func (a *depAgent) Unsubscribe(ctx context.Context, unit string) error {
	a.record("Unsubscribe " + unit)
	return nil
}
func (a *depAgent) StartDep(ctx context.Context, unit string) error {
	a.record("StartDep " + unit)
	return nil
}
func (a *depAgent) StopDep(ctx context.Context, unit string) error {
	a.record("StopDep " + unit)
	return nil
}

// proxyObj records the calls on one proxy object.
type proxyObj struct {
	daemonapi.UnimplementedInternalProxyServer
	a  *depAgent
	id uint32
}

func (p *proxyObj) Error(ctx context.Context, msg string) error {
	p.a.record(fmt.Sprintf("proxy%d Error %s", p.id, msg))
	return nil
}
func (p *proxyObj) TargetNew(ctx context.Context, reason string) error {
	p.a.record(fmt.Sprintf("proxy%d TargetNew %s", p.id, reason))
	return nil
}
func (p *proxyObj) TargetStateChanged(ctx context.Context, state, sub, reason string) error {
	p.a.record(fmt.Sprintf("proxy%d TargetStateChanged %s %s %s", p.id, state, sub, reason))
	return nil
}
func (p *proxyObj) TargetRemoved(ctx context.Context, reason string) error {
	p.a.record(fmt.Sprintf("proxy%d TargetRemoved %s", p.id, reason))
	return nil
}

func (c *cluster) depAgent(name string) *depAgent {
	c.t.Helper()
	return c.depAgentWith(name, nil)
}

// depAgentWith is depAgent with units for ListUnits.
func (c *cluster) depAgentWith(name string, units []bluechi.UnitInfo) *depAgent {
	c.t.Helper()
	a := &depAgent{units: units}
	a.conn = c.dialAgent(name, func(p *peerAgent) (err error) {
		if a.obj, err = daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, a, daemonapi.InternalAgentProperties{}); err != nil {
			return err
		}
		for id := uint32(1); id <= 3; id++ {
			if _, err := daemonapi.ExportInternalProxyOn(p.srv, daemonapi.InternalProxyPath(id), &proxyObj{a: a, id: id}, daemonapi.InternalProxyProperties{}); err != nil {
				return err
			}
		}
		return nil
	})
	return a
}

func (a *depAgent) proxyNew(t *testing.T, node, unit string, id uint32) {
	t.Helper()
	if err := a.obj.EmitProxyNew(daemonapi.InternalAgentProxyNewSignal{NodeName: node, UnitName: unit, Proxy: daemonapi.InternalProxyPath(id)}); err != nil {
		t.Fatal(err)
	}
}

func (a *depAgent) proxyRemoved(t *testing.T, node, unit string) {
	t.Helper()
	if err := a.obj.EmitProxyRemoved(daemonapi.InternalAgentProxyRemovedSignal{NodeName: node, UnitName: unit}); err != nil {
		t.Fatal(err)
	}
}

func waitCallsOf(t *testing.T, a *depAgent, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("calls %q", want), func() bool { return slices.Equal(a.got(), want) })
}

// TestProxies follows internal-protocol.md §9 on the controller: refusals,
// the dependency on the target (StartDep always, StopDep with the last
// proxy, replayed when the target registers), the target's events
// forwarded to the proxy object, and cleanup when the requester leaves.
func TestProxies(t *testing.T) {
	c := startClusterConfig(t, &config.Controller{Nodes: []config.Node{
		{Name: "r", AllowDependenciesOn: []string{"t"}},
		{Name: "r2", AllowDependenciesOn: []string{"t"}},
		{Name: "t"},
		{Name: "x"},
	}})
	r, r2, tgt := c.depAgent("r"), c.depAgent("r2"), c.depAgent("t")

	// Refused: unknown node, node not allowed.
	r.proxyNew(t, "nope", "u.service", 1)
	r.proxyNew(t, "x", "u.service", 2)
	waitCallsOf(t, r, "proxy1 Error No such node", "proxy2 Error Proxy on node not allowed")

	// Accepted: the target is subscribed, then starts bluechi-dep@ (so no
	// event of that start is missed); its events reach the proxy object,
	// property changes do not.
	r.proxyNew(t, "t", "u.service", 3)
	waitCallsOf(t, tgt, "Subscribe u.service", "StartDep u.service")
	for _, emit := range []func() error{
		func() error {
			return tgt.obj.EmitUnitNew(daemonapi.InternalAgentUnitNewSignal{Unit: "u.service", Reason: "virtual"})
		},
		func() error {
			return tgt.obj.EmitUnitPropertiesChanged(daemonapi.InternalAgentUnitPropertiesChangedSignal{Unit: "u.service", Interface: "org.freedesktop.systemd1.Unit", Props: map[string]dbus.Variant{}})
		},
		func() error {
			return tgt.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: "u.service", ActiveState: "active", SubState: "running", Reason: "real"})
		},
		func() error {
			return tgt.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: "other.service", ActiveState: "active", SubState: "running", Reason: "real"})
		},
		func() error {
			return tgt.obj.EmitUnitRemoved(daemonapi.InternalAgentUnitRemovedSignal{Unit: "u.service"})
		},
	} {
		if err := emit(); err != nil {
			t.Fatal(err)
		}
	}
	waitCallsOf(t, r, "proxy1 Error No such node", "proxy2 Error Proxy on node not allowed",
		"proxy3 TargetNew virtual", "proxy3 TargetStateChanged active running real", "proxy3 TargetRemoved real")
	// The destinations upstream's controller uses (internal-protocol.md §2.3).
	if got := r.conn.destination("/org/eclipse/bluechi/internal/proxy/3"); got != "org.eclipse.bluechi" {
		t.Errorf("calls on a proxy object carry DESTINATION %q, want org.eclipse.bluechi", got)
	}
	if got := tgt.conn.destination("/org/eclipse/bluechi/internal/agent"); got != "org.eclipse.bluechi.Agent" {
		t.Errorf("calls on the agent object carry DESTINATION %q, want org.eclipse.bluechi.Agent", got)
	}

	// A second proxy on the same unit: StartDep again, no second Subscribe;
	// StopDep only when the last one goes.
	r2.proxyNew(t, "t", "u.service", 1)
	waitCallsOf(t, tgt, "Subscribe u.service", "StartDep u.service", "StartDep u.service")
	r.proxyRemoved(t, "t", "u.service")
	r2.proxyNew(t, "t", "v.service", 2)
	waitCallsOf(t, tgt, "Subscribe u.service", "StartDep u.service", "StartDep u.service", "Subscribe v.service", "StartDep v.service")

	// Monitors and proxies take their subscription ids from one counter
	// (api.md §6.2): three proxies subscribed so far.
	if id, err := c.monitor(c.client).Subscribe(context.Background(), "x", "w.service"); err != nil || id != 4 {
		t.Fatalf("a monitor's first subscription after three proxies got id %d (%v), want 4", id, err)
	}

	// The target comes back: every held dependency is started again.
	tgt.conn.Close()
	waitFor(t, "t offline", func() bool { st, _ := c.node("t").GetStatus(context.Background()); return st == "offline" })
	tgt = c.depAgent("t")
	waitCallsOf(t, tgt, "Subscribe u.service", "Subscribe v.service", "StartDep u.service", "StartDep v.service")

	// The requester leaves: its proxies go, and with them the dependencies.
	r2.conn.Close()
	waitCallsOf(t, tgt, "Subscribe u.service", "Subscribe v.service", "StartDep u.service", "StartDep v.service",
		"Unsubscribe u.service", "StopDep u.service", "Unsubscribe v.service", "StopDep v.service")
}

// TestDepCheck: some time after a target node registers, every
// bluechi-dep@ unit up there that no proxy holds is released with StopDep
// (its last proxy went while the node or this controller was away);
// held, inactive and other units are left alone.
func TestDepCheck(t *testing.T) {
	defer func(d time.Duration) { controller.DepCheckDelay = d }(controller.DepCheckDelay)
	controller.DepCheckDelay = time.Second // r's ProxyNew is handled well before
	c := startClusterConfig(t, &config.Controller{Nodes: []config.Node{
		{Name: "r", AllowDependenciesOn: []string{"t"}},
		{Name: "t"},
	}})
	r := c.depAgent("r")
	r.proxyNew(t, "t", "held.service", 1)
	tgt := c.depAgentWith("t", []bluechi.UnitInfo{
		{Name: "bluechi-dep@held.service", ActiveState: "active"},
		{Name: "bluechi-dep@orphan.service", ActiveState: "active"},
		{Name: "bluechi-dep@starting.service", ActiveState: "activating"},
		{Name: "bluechi-dep@gone.service", ActiveState: "inactive"},
		{Name: "bluechi-dep@failed.service", ActiveState: "failed"},
		{Name: "orphan.service", ActiveState: "active"},
	})
	waitCallsOf(t, tgt, "Subscribe held.service", "StartDep held.service", "StopDep orphan.service", "StopDep starting.service")
}
