// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/unitname"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// Cross-node dependencies, requesting side (internal-protocol.md §9): a
// proxy stands for a remote unit a local bluechi-proxy@ unit waits for. It
// is announced to the controller with ProxyNew, learns the target's state
// through calls on its internal.Proxy object and answers the pending
// CreateProxy call once the target is up or has failed.

// depUnitPrefix names the target-side helper unit: bluechi-dep@<unit>.
const depUnitPrefix = "bluechi-dep@"

// proxyUnitPrefix names the requesting-side proxy units:
// bluechi-proxy@<node>_<unit> (the instance without ".service").
const proxyUnitPrefix = "bluechi-proxy@"

// errProxyStopped answers a CreateProxy whose proxy went away first.
var errProxyStopped = dbusrt.NewError(dbusrt.ErrFailed, "Proxy service stopped")

// proxyIDs numbers proxies, process-wide, from 1.
var proxyIDs atomic.Uint32

// proxyKey is the triple CreateProxy and RemoveProxy name a proxy by.
type proxyKey struct {
	service, node, unit string
}

// proxy is one cross-node dependency of a local proxy unit. All fields but
// key and path are guarded by Agent.proxyMu.
type proxy struct {
	key  proxyKey
	path dbus.ObjectPath

	exported  *wireconn.Conn // the proxy session's connection it is exported on, nil when none
	announced bool           // ProxyNew was sent on the proxy session
	ready     bool           // the target was seen active
	answered  bool           // result has been sent
	removed   bool
	result    chan error // CreateProxy's answer; buffered
}

// proxyHow says what a removal (§9.4) does besides forgetting the proxy.
type proxyHow struct {
	answer   error // for a CreateProxy not answered yet; nil: errProxyStopped
	stopUnit bool  // stop the local unit if the proxy was ready
	announce bool  // emit ProxyRemoved if ProxyNew was sent
}

// checkProxyArgs validates CreateProxy's arguments.
func checkProxyArgs(service, node, unit string) error {
	switch {
	case service == "":
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Invalid local service name")
	case node == "":
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Invalid node name")
	}
	if err := unitname.Check(unit); err != nil {
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Invalid unit name: %v", err)
	}
	return nil
}

// CreateProxy adds a proxy and waits until the target's fate is known.
func (a *Agent) CreateProxy(ctx context.Context, service, node, unit string) error {
	if err := checkProxyArgs(service, node, unit); err != nil {
		return err
	}
	p, err := a.addProxy(proxyKey{service, node, unit})
	if err != nil {
		return err
	}
	a.slog().Info("proxy created", "service", service, "node", node, "unit", unit, "path", p.path)
	// The answer may take arbitrarily long: let later calls in.
	dbusrt.Release(ctx)
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		a.removeProxy(p, proxyHow{announce: true})
		return errProxyStopped
	}
}

// addProxy records a new proxy and, when connected, exports and announces it.
func (a *Agent) addProxy(key proxyKey) (*proxy, error) {
	a.proxyMu.Lock()
	defer a.proxyMu.Unlock()
	if a.proxiesClosed {
		return nil, dbusrt.NewError(dbusrt.ErrFailed, "Agent is shutting down")
	}
	if _, ok := a.proxies[key]; ok {
		return nil, dbusrt.NewError(dbusrt.ErrAddressInUse, "Proxy already exists")
	}
	p := &proxy{key: key, path: daemonapi.InternalProxyPath(proxyIDs.Add(1)), result: make(chan error, 1)}
	a.proxies[key] = p
	if a.psess != nil {
		a.attachProxy(a.psess, p)
	}
	return p, nil
}

// RemoveProxy removes the proxy named by the triple, if any, without
// stopping its local unit: the unit is the one stopping.
func (a *Agent) RemoveProxy(service, node, unit string) error {
	a.proxyMu.Lock()
	p := a.proxies[proxyKey{service, node, unit}]
	a.proxyMu.Unlock()
	if p != nil {
		a.removeProxy(p, proxyHow{announce: true})
		a.slog().Info("proxy removed", "service", service, "node", node, "unit", unit)
	}
	return nil
}

// removeProxy forgets p (internal-protocol.md §9.4).
func (a *Agent) removeProxy(p *proxy, how proxyHow) {
	a.proxyMu.Lock()
	if p.removed {
		a.proxyMu.Unlock()
		return
	}
	p.removed = true
	delete(a.proxies, p.key)
	if how.announce && p.announced && a.psess != nil {
		err := daemonapi.EmitInternalAgentProxyRemovedWire(a.psess.conn, string(daemonapi.InternalAgentPath),
			daemonapi.InternalAgentProxyRemovedSignal{NodeName: p.key.node, UnitName: p.key.unit})
		if err != nil {
			a.slog().Warn("emit ProxyRemoved", "path", p.path, "error", err)
		}
	}
	answer := how.answer
	if answer == nil {
		answer = errProxyStopped
	}
	a.answerProxy(p, answer)
	a.detachProxy(p)
	stop := how.stopUnit && p.ready
	a.proxyMu.Unlock()
	if stop {
		a.stopProxyUnit(p.key.service)
	}
}

// answerProxy answers p's CreateProxy once (nil: success). Call with
// proxyMu held.
func (a *Agent) answerProxy(p *proxy, err error) {
	if p.answered {
		return
	}
	p.answered = true
	p.result <- err
}

// stopProxyUnit asks systemd to stop a local proxy unit whose target went away.
func (a *Agent) stopProxyUnit(service string) {
	ctx, cancel := context.WithTimeout(context.Background(), SystemdCallTimeout)
	defer cancel()
	if _, err := a.sd.StopUnit(ctx, service, "replace", nil); err != nil {
		a.slog().Warn("stop proxy unit", "unit", service, "error", err)
	}
}

// attachProxy exports p on sess and announces it with ProxyNew. Call with
// proxyMu held.
func (a *Agent) attachProxy(sess *session, p *proxy) {
	a.detachProxy(p)
	sess.conn.Export(string(p.path), daemonapi.InternalProxyWireInterface(&proxyAPI{a: a, p: p}))
	p.exported = sess.conn
	err := daemonapi.EmitInternalAgentProxyNewWire(sess.conn, string(daemonapi.InternalAgentPath),
		daemonapi.InternalAgentProxyNewSignal{NodeName: p.key.node, UnitName: p.key.unit, Proxy: p.path})
	if err != nil {
		a.slog().Warn("emit ProxyNew", "path", p.path, "error", err)
		return
	}
	p.announced = true
}

// detachProxy unexports p from its session. Call with proxyMu held.
func (a *Agent) detachProxy(p *proxy) {
	if p.exported != nil {
		p.exported.Unexport(string(p.path), daemonapi.InternalProxyInterface)
		p.exported = nil
	}
	p.announced = false
}

// attachProxies makes the registered sess the proxies' session: every
// proxy is exported on it and announced again (internal-protocol.md §9.7).
func (a *Agent) attachProxies(sess *session) {
	a.proxyMu.Lock()
	defer a.proxyMu.Unlock()
	a.psess = sess
	for _, p := range a.proxies {
		a.attachProxy(sess, p)
	}
}

// detachProxies ends sess as the proxies' session.
func (a *Agent) detachProxies(sess *session) {
	a.proxyMu.Lock()
	defer a.proxyMu.Unlock()
	if a.psess != sess {
		return
	}
	a.psess = nil
	for _, p := range a.proxies {
		a.detachProxy(p)
	}
}

// dropProxies forgets every proxy at shutdown: no ProxyRemoved, pending
// callers get Failed. Unlike upstream, the units of ready proxies are left
// active: the next agent instance restores their proxies from them
// (restoreProxies), so a restart of the agent does not take a cross-node
// dependency away from a unit that still runs.
func (a *Agent) dropProxies() {
	a.proxyMu.Lock()
	defer a.proxyMu.Unlock()
	for _, p := range a.proxies {
		p.removed = true
		a.answerProxy(p, errProxyStopped)
		a.detachProxy(p)
	}
	clear(a.proxies)
	a.psess = nil
	a.proxiesClosed = true
}

// restoreProxies re-creates, at start-up, the proxies of the local proxy
// units systemd has active: their bluechi-proxy create succeeded with an
// earlier agent instance, which took the proxies with it. A restored proxy
// is ready and has no caller; it is announced once the node registers.
// Units still activating are not restored: their bluechi-proxy runs and
// asks again itself.
func (a *Agent) restoreProxies() {
	a.unitMu.Lock()
	var keys []proxyKey
	for name, u := range a.units {
		if u.active != "active" {
			continue
		}
		if key, ok := proxyKeyOf(name); ok {
			keys = append(keys, key)
		}
	}
	a.unitMu.Unlock()
	slices.SortFunc(keys, func(x, y proxyKey) int { return strings.Compare(x.service, y.service) })
	a.proxyMu.Lock()
	defer a.proxyMu.Unlock()
	for _, key := range keys {
		if a.proxies[key] != nil {
			continue
		}
		p := &proxy{key: key, path: daemonapi.InternalProxyPath(proxyIDs.Add(1)), result: make(chan error, 1), ready: true, answered: true}
		a.proxies[key] = p
		a.slog().Info("proxy restored from its active unit", "service", key.service, "node", key.node, "unit", key.unit, "path", p.path)
	}
}

// proxyKeyOf parses a local proxy unit's name, bluechi-proxy@<node>_<unit
// without .service>.service, into the triple bluechi-proxy create of that
// unit passes (internal-protocol.md §9.1).
func proxyKeyOf(name string) (proxyKey, bool) {
	inst, ok := strings.CutPrefix(name, proxyUnitPrefix)
	if !ok {
		return proxyKey{}, false
	}
	if inst, ok = strings.CutSuffix(inst, ".service"); !ok {
		return proxyKey{}, false
	}
	node, unit, ok := strings.Cut(inst, "_")
	if !ok || node == "" || unit == "" {
		return proxyKey{}, false
	}
	key := proxyKey{service: name, node: node, unit: unit + ".service"}
	if checkProxyArgs(key.service, key.node, key.unit) != nil {
		return proxyKey{}, false
	}
	return key, true
}

// localUnitStopped removes the ready proxy of a local proxy unit that
// stopped or failed without RemoveProxy (its ExecStop found no agent, or
// the unit was restored while it stopped): the dependency must not outlive
// the unit that wanted it.
func (a *Agent) localUnitStopped(name string) {
	a.unitMu.Lock()
	u := a.units[name]
	down := u == nil || u.active == "inactive" || u.active == "failed"
	a.unitMu.Unlock()
	if !down {
		return // started again meanwhile
	}
	a.proxyMu.Lock()
	var gone []*proxy
	for _, p := range a.proxies {
		if p.key.service == name && p.ready {
			gone = append(gone, p)
		}
	}
	a.proxyMu.Unlock()
	for _, p := range gone {
		a.slog().Info("proxy unit stopped: proxy removed", "service", name, "node", p.key.node, "unit", p.key.unit)
		a.removeProxy(p, proxyHow{announce: true})
	}
}

// targetState handles a state of p's target (internal-protocol.md §9.3).
func (a *Agent) targetState(p *proxy, state, reason string) {
	isReal := reason == "real"
	a.proxyMu.Lock()
	if p.removed {
		a.proxyMu.Unlock()
		return
	}
	if !p.ready && state == "active" {
		p.ready = true
		a.answerProxy(p, nil)
		a.proxyMu.Unlock()
		return
	}
	a.proxyMu.Unlock()
	if isReal && (state == "failed" || state == "inactive") {
		a.targetGone(p, "Target unit "+state)
	}
}

// targetGone removes p because its target failed or stopped: a pending
// CreateProxy gets ActivationFailed, a ready proxy's unit is stopped.
func (a *Agent) targetGone(p *proxy, why string) {
	a.slog().Info("proxy target gone", "node", p.key.node, "unit", p.key.unit, "reason", why)
	a.removeProxy(p, proxyHow{
		answer:   dbusrt.NewError(bluechi.ErrorNameActivationFailed, "%s", why),
		stopUnit: true, announce: true,
	})
}

// proxyAPI serves org.eclipse.bluechi.internal.Proxy for one proxy; every
// call succeeds.
type proxyAPI struct {
	daemonapi.UnimplementedInternalProxyServer
	a *Agent
	p *proxy
}

func (s *proxyAPI) Error(ctx context.Context, message string) error {
	s.a.targetGone(s.p, message)
	return nil
}

func (s *proxyAPI) TargetNew(ctx context.Context, reason string) error {
	s.a.slog().Debug("proxy target new", "node", s.p.key.node, "unit", s.p.key.unit, "reason", reason)
	return nil
}

func (s *proxyAPI) TargetStateChanged(ctx context.Context, state, substate, reason string) error {
	s.a.targetState(s.p, state, reason)
	return nil
}

func (s *proxyAPI) TargetRemoved(ctx context.Context, reason string) error {
	if reason == "real" && !s.a.proxyReady(s.p) {
		s.a.targetGone(s.p, "Target unit removed")
	}
	return nil
}

// proxyReady reports whether p's target was seen active.
func (a *Agent) proxyReady(p *proxy) bool {
	a.proxyMu.Lock()
	defer a.proxyMu.Unlock()
	return p.ready
}

// dep starts or stops bluechi-dep@unit (internal-protocol.md §9.6);
// errors are only logged.
func (a *Agent) dep(ctx context.Context, start bool, unit string) {
	name := depUnitPrefix + unit
	op, verb := a.sd.StopUnit, "stop"
	if start {
		op, verb = a.sd.StartUnit, "start"
	}
	ctx, cancel := context.WithTimeout(ctx, SystemdCallTimeout)
	defer cancel()
	if _, err := op(ctx, name, "replace", nil); err != nil {
		a.slog().Warn(verb+" dependency unit", "unit", name, "error", err)
	}
}
