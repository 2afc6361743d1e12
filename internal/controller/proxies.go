// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"slices"
	"strings"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
)

// Cross-node dependencies (internal-protocol.md §9). A requesting node R
// announces a proxy for unit U on target node T with ProxyNew; the
// controller holds a dependency on (T, U), which keeps bluechi-dep@U
// started on T (StartDep, reference counted, replayed when T registers),
// and forwards T's events about U to R's proxy object through an internal
// subscription. ProxyRemoved, or R going away, drops both.

// proxyKey names a proxy of one requesting node.
type proxyKey struct{ target, unit string }

// proxyRec is one proxy held by a requesting node; guarded by c.emu.
type proxyRec struct {
	key   proxyKey
	r     *node
	proxy *daemonapi.InternalProxyWireClient // R's internal.Proxy object, on R's connection
	sub   *subscription                      // on (T, U), forwarding to proxy
}

// proxyNew handles ProxyNew from r (§9.2).
func (c *Controller) proxyNew(r *node, p *peer, s *daemonapi.InternalAgentProxyNewSignal) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if r.ev != p || !s.Proxy.IsValid() {
		return
	}
	proxy := daemonapi.NewInternalProxyWireClient(p.conn, proxyBusName, string(s.Proxy))
	t := c.byName[s.NodeName]
	switch {
	case t == nil:
		c.callProxy(daemonapi.InternalProxyMethodError, proxy.SendError("No such node"))
		c.logger().Warn("proxy refused: no such node", "node", r.name, "target", s.NodeName, "unit", s.UnitName)
		return
	case !r.allowDeps[s.NodeName]:
		c.callProxy(daemonapi.InternalProxyMethodError, proxy.SendError("Proxy on node not allowed"))
		c.logger().Warn("proxy refused: not in AllowDependenciesOn", "node", r.name, "target", s.NodeName, "unit", s.UnitName)
		return
	}
	key := proxyKey{s.NodeName, s.UnitName}
	if old := r.proxies[key]; old != nil {
		c.dropProxyLocked(old)
	}
	rec := &proxyRec{key: key, r: r, proxy: proxy}
	// The subscription goes first, as on registration (§4.4): T then has
	// Subscribe(U) before StartDep(U), so the events of the dependency's
	// start (a unit that cannot be loaded appears and goes again within
	// milliseconds) are never missed by an agent that handles the calls
	// and systemd's signals concurrently. Spec §9.2 lists the steps the
	// other way round; an agent gets the same calls either way.
	fwd := &monitor{c: c, subs: map[uint32]*subscription{}, fwd: rec.forward}
	c.nextSub++
	rec.sub = &subscription{id: c.nextSub, mon: fwd, node: t.name, units: []string{s.UnitName}, names: map[string]bool{s.UnitName: true}}
	r.proxies[key] = rec
	c.addSubLocked(rec.sub)
	t.deps[s.UnitName]++
	t.tellLocked(daemonapi.InternalAgentMethodStartDep, func(a *agentClient) error { return a.SendStartDep(s.UnitName) })
	c.logger().Debug("proxy created", "node", r.name, "target", t.name, "unit", s.UnitName)
}

// proxyRemoved handles ProxyRemoved from r (§9.5).
func (c *Controller) proxyRemoved(r *node, p *peer, s *daemonapi.InternalAgentProxyRemovedSignal) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if r.ev != p {
		return
	}
	rec := r.proxies[proxyKey{s.NodeName, s.UnitName}]
	if rec == nil {
		c.logger().Debug("ProxyRemoved for an unknown proxy", "node", r.name, "target", s.NodeName, "unit", s.UnitName)
		return
	}
	c.dropProxyLocked(rec)
}

// dropProxyLocked removes a proxy record: its subscription and its
// dependency, which stops bluechi-dep@U on T when it was the last.
func (c *Controller) dropProxyLocked(rec *proxyRec) {
	r := rec.r
	if r.proxies[rec.key] != rec {
		return
	}
	delete(r.proxies, rec.key)
	c.removeSubLocked(rec.sub, true)
	t := c.byName[rec.key.target]
	if t == nil {
		return
	}
	if t.deps[rec.key.unit]--; t.deps[rec.key.unit] <= 0 {
		delete(t.deps, rec.key.unit)
		t.tellLocked(daemonapi.InternalAgentMethodStopDep, func(a *agentClient) error { return a.SendStopDep(rec.key.unit) })
	}
}

// dropProxiesLocked removes every proxy r holds (r went away).
func (c *Controller) dropProxiesLocked(r *node) {
	keys := make([]proxyKey, 0, len(r.proxies))
	for k := range r.proxies {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b proxyKey) int {
		if a.target != b.target {
			return compareStrings(a.target, b.target)
		}
		return compareStrings(a.unit, b.unit)
	})
	for _, k := range keys {
		c.dropProxyLocked(r.proxies[k])
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// DepCheckDelay is how long after a node registers the controller checks
// its bluechi-dep@ units against the dependencies held on it: long enough
// for the requesting nodes to register too and announce their proxies
// again after a controller restart, short enough that a dependency
// released while the node was away ends soon after it is back.
var DepCheckDelay = 3 * time.Second

// depUnitPrefix names the target-side helper units, bluechi-dep@<unit>.
const depUnitPrefix = "bluechi-dep@"

// scheduleDepCheckLocked arranges the dependency check of t's new
// connection p (checkDeps).
func (c *Controller) scheduleDepCheckLocked(t *node, p *peer) {
	t.stopDepCheckLocked()
	t.depCheck = time.AfterFunc(DepCheckDelay, func() { c.checkDeps(t, p) })
}

// stopDepCheckLocked cancels a scheduled dependency check.
func (t *node) stopDepCheckLocked() {
	if t.depCheck != nil {
		t.depCheck.Stop()
		t.depCheck = nil
	}
}

// checkDeps reconciles what t runs with what the controller holds on it:
// every bluechi-dep@ unit that is up on t although no proxy needs it any
// more gets StopDep. Such units are left over when the last proxy went
// while t was away (the StopDep could not be sent) or while this
// controller was not running.
func (c *Controller) checkDeps(t *node, p *peer) {
	ctx, cancel := context.WithTimeout(context.Background(), AgentCallTimeout)
	defer cancel()
	units, err := p.agent.ListUnits(ctx)
	c.emu.Lock()
	defer c.emu.Unlock()
	if t.ev != p {
		return
	}
	t.depCheck = nil
	if err != nil {
		c.logger().Warn("cannot check the dependency units of a node", "node", t.name, "error", err)
		return
	}
	released := 0
	for _, u := range units {
		target, ok := strings.CutPrefix(u.Name, depUnitPrefix)
		if !ok || t.deps[target] > 0 {
			continue
		}
		switch u.ActiveState {
		case "active", "activating", "reloading":
			c.logger().Info("releasing a dependency no proxy holds", "node", t.name, "unit", target)
			t.tellLocked(daemonapi.InternalAgentMethodStopDep, func(a *agentClient) error { return a.SendStopDep(target) })
			released++
		}
	}
	c.logger().Debug("dependency units checked", "node", t.name, "held", len(t.deps), "released", released)
}

// replayDepsLocked sends StartDep for every dependency held on t, which
// just registered (§4.4 step 5).
func (t *node) replayDepsLocked() {
	units := make([]string, 0, len(t.deps))
	for u := range t.deps {
		units = append(units, u)
	}
	slices.Sort(units)
	for _, u := range units {
		t.tellLocked(daemonapi.InternalAgentMethodStartDep, func(a *agentClient) error { return a.SendStartDep(u) })
	}
}

// forward passes an event about the target unit on to the proxy object:
// UnitNew → TargetNew, UnitStateChanged → TargetStateChanged, UnitRemoved
// → TargetRemoved (property changes are not forwarded).
func (rec *proxyRec) forward(member string, args ...string) {
	switch member {
	case bluechi.MonitorSignalUnitNew:
		rec.r.c.callProxy(daemonapi.InternalProxyMethodTargetNew, rec.proxy.SendTargetNew(args[0]))
	case bluechi.MonitorSignalUnitStateChanged:
		rec.r.c.callProxy(daemonapi.InternalProxyMethodTargetStateChanged, rec.proxy.SendTargetStateChanged(args[0], args[1], args[2]))
	case bluechi.MonitorSignalUnitRemoved:
		rec.r.c.callProxy(daemonapi.InternalProxyMethodTargetRemoved, rec.proxy.SendTargetRemoved(args[0]))
	}
}

// callProxy logs a call to a requesting agent's proxy object that could
// not be sent. The calls carry NO_REPLY_EXPECTED: the agent always answers
// success (§9.3), so there is nothing to wait for, and the calls keep the
// order of the events.
func (c *Controller) callProxy(method string, err error) {
	if err != nil {
		c.logger().Debug("call to a proxy not sent", "method", method, "error", err)
	}
}
