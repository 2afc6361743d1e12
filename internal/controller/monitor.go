// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/unitname"
)

// Monitor limits: a SubscribeList takes at most maxSubscribeUnits names.
const maxSubscribeUnits = 1024

// peerClosedReason is the PeerRemoved reason when a monitor closes.
const peerClosedReason = "monitor closed"

// monitor is one org.eclipse.bluechi.Monitor; its mutable fields are
// guarded by c.emu.
type monitor struct {
	c     *Controller
	id    uint32
	path  dbus.ObjectPath
	owner string
	obj   *daemonapi.MonitorObject
	watch func() // stops the watch of the owner (NameOwnerChanged)

	subs   map[uint32]*subscription
	peers  []monitorPeer
	fwd    func(member string, args ...string) // set for a proxy's subscription: events go here, not to dests
	dests  []string                            // owner, then peers in the order they were added
	closed bool
}

type monitorPeer struct {
	id   uint32
	name string
}

// CreateMonitor creates a monitor owned by the caller's unique name. The
// monitor closes by itself when the owner leaves the bus.
func (c *Controller) CreateMonitor(ctx context.Context) (dbus.ObjectPath, error) {
	owner := dbusrt.SenderFrom(ctx)
	if owner == "" {
		return "", failed("Monitors can only be created by bus clients")
	}
	c.emu.Lock()
	if c.evClosed {
		c.emu.Unlock()
		return "", failed("Controller is shutting down")
	}
	c.nextMonitor++
	m := &monitor{c: c, id: c.nextMonitor, owner: owner, subs: map[uint32]*subscription{}, dests: []string{owner}}
	m.path = bluechi.MonitorPath(m.id)
	obj, err := daemonapi.ExportMonitorOn(c.api, m.path, &monitorAPI{m: m}, bluechi.MonitorProperties{})
	if err != nil {
		c.emu.Unlock()
		return "", failed("export monitor: %v", err)
	}
	m.obj = obj
	c.monitors[m.id] = m
	c.emu.Unlock()

	// Watch the owner, then make sure it did not leave before the watch.
	watch, err := c.bus.WatchNameOwner(ctx, owner, func(_, newOwner string) {
		if newOwner == "" {
			c.goBackground(func() { c.closeMonitor(m, "owner left the bus") })
		}
	})
	if err != nil {
		c.closeMonitor(m, "")
		return "", failed("watch monitor owner %s: %v", owner, err)
	}
	c.emu.Lock()
	if m.closed { // closed meanwhile: shutdown, or the owner already left
		c.emu.Unlock()
		watch()
		return "", failed("Monitor closed while being created")
	}
	m.watch = watch
	c.emu.Unlock()
	if has, err := c.nameHasOwner(ctx, owner); err == nil && !has {
		c.closeMonitor(m, "owner left the bus")
		return "", failed("Monitor owner %s left the bus", owner)
	}
	c.logger().Debug("monitor created", "path", m.path, "owner", owner)
	return m.path, nil
}

func (c *Controller) nameHasOwner(ctx context.Context, name string) (bool, error) {
	return c.bus.NameHasOwner(ctx, name)
}

// closeMonitor closes m as Monitor.Close does; false if it was closed.
func (c *Controller) closeMonitor(m *monitor, why string) bool {
	c.emu.Lock()
	if m.closed {
		c.emu.Unlock()
		return false
	}
	watch := c.dropMonitorLocked(m, true)
	c.emu.Unlock()
	if watch != nil {
		watch()
	}
	if why != "" {
		c.logger().Debug("monitor closed", "path", m.path, "owner", m.owner, "why", why)
	}
	return true
}

// dropMonitorLocked removes every subscription of m (telling agents when
// notify is set, which also sends PeerRemoved to the peers), unexports it
// and returns its owner watch for the caller to close outside the lock.
func (c *Controller) dropMonitorLocked(m *monitor, notify bool) (stopWatch func()) {
	m.closed = true
	for _, s := range m.sortedSubs() {
		c.removeSubLocked(s, notify)
	}
	if notify {
		for _, p := range m.peers {
			m.emitTo(p.name, func(dest string) error {
				return m.obj.EmitPeerRemovedTo(dest, bluechi.MonitorPeerRemovedSignal{Reason: peerClosedReason})
			})
		}
	}
	m.peers, m.dests = nil, nil
	m.obj.Unexport()
	delete(c.monitors, m.id)
	w := m.watch
	m.watch = nil
	return w
}

// sortedSubs returns the monitor's subscriptions in creation order.
func (m *monitor) sortedSubs() []*subscription {
	out := slices.Collect(maps.Values(m.subs))
	slices.SortFunc(out, func(a, b *subscription) int { return cmp.Compare(a.id, b.id) })
	return out
}

// emitTo sends one signal to dest, logging a failure.
func (m *monitor) emitTo(dest string, emit func(dest string) error) {
	if err := emit(dest); err != nil {
		m.c.logger().Debug("monitor signal not sent", "path", m.path, "to", dest, "error", err)
	}
}

func (m *monitor) sendUnitNew(s bluechi.MonitorUnitNewSignal) {
	if m.fwd != nil {
		m.fwd(bluechi.MonitorSignalUnitNew, s.Reason)
	}
	for _, d := range m.dests {
		m.emitTo(d, func(dest string) error { return m.obj.EmitUnitNewTo(dest, s) })
	}
}

func (m *monitor) sendUnitRemoved(s bluechi.MonitorUnitRemovedSignal) {
	if m.fwd != nil {
		m.fwd(bluechi.MonitorSignalUnitRemoved, s.Reason)
	}
	for _, d := range m.dests {
		m.emitTo(d, func(dest string) error { return m.obj.EmitUnitRemovedTo(dest, s) })
	}
}

func (m *monitor) sendUnitStateChanged(s bluechi.MonitorUnitStateChangedSignal) {
	if m.fwd != nil {
		m.fwd(bluechi.MonitorSignalUnitStateChanged, s.ActiveState, s.SubState, s.Reason)
	}
	for _, d := range m.dests {
		m.emitTo(d, func(dest string) error { return m.obj.EmitUnitStateChangedTo(dest, s) })
	}
}

func (m *monitor) rebuildDests() {
	m.dests = append(m.dests[:0], m.owner)
	for _, p := range m.peers {
		m.dests = append(m.dests, p.name)
	}
}

// monitorAPI serves org.eclipse.bluechi.Monitor for one monitor.
type monitorAPI struct {
	daemonapi.UnimplementedMonitorServer
	m *monitor
}

// gone is the error of a call that reached a monitor while it closed.
func (a *monitorAPI) gone() error {
	return dbusrt.NewError(dbusrt.ErrUnknownObject, "Unknown object '%s'.", a.m.path)
}

// ownerOnly refuses a call from anyone but the monitor's owner with
// AccessDenied. Added peers are listeners (api.md §6.4): they receive the
// monitor's signals but may not change it. A call that reaches a monitor
// already closing gets UnknownObject first, whoever sent it: the object is
// unexported only after PeerRemoved went out, so a peer that heard it may
// still find the object exported.
func (a *monitorAPI) ownerOnly(ctx context.Context, method string) error {
	a.m.c.emu.Lock()
	closed := a.m.closed
	a.m.c.emu.Unlock()
	if closed {
		return a.gone()
	}
	// m.owner never changes, so it is read without the lock.
	if sender := dbusrt.SenderFrom(ctx); sender != a.m.owner {
		a.m.c.logger().Debug("monitor call refused", "path", a.m.path, "method", method, "caller", sender, "owner", a.m.owner)
		return dbusrt.NewError(dbusrt.ErrAccessDenied, "Only the owner of monitor %s may call %s", a.m.path, method)
	}
	return nil
}

func (a *monitorAPI) Close(ctx context.Context) error {
	if err := a.ownerOnly(ctx, "Close"); err != nil {
		return err
	}
	if !a.m.c.closeMonitor(a.m, "closed by "+dbusrt.SenderFrom(ctx)) {
		return a.gone()
	}
	return nil
}

func (a *monitorAPI) Subscribe(ctx context.Context, node, unit string) (uint32, error) {
	if err := a.ownerOnly(ctx, "Subscribe"); err != nil {
		return 0, err
	}
	return a.subscribe(node, []string{unit})
}

func (a *monitorAPI) SubscribeList(ctx context.Context, node string, units []string) (uint32, error) {
	if err := a.ownerOnly(ctx, "SubscribeList"); err != nil {
		return 0, err
	}
	if len(units) == 0 {
		return 0, invalid("No units given")
	}
	if len(units) > maxSubscribeUnits {
		return 0, invalid("Too many units: %d (at most %d)", len(units), maxSubscribeUnits)
	}
	return a.subscribe(node, units)
}

// subscribe validates and adds one subscription.
func (a *monitorAPI) subscribe(node string, units []string) (uint32, error) {
	seen := make(map[string]bool, len(units))
	var distinct []string
	for _, u := range units {
		if u != wildcard {
			if err := unitname.Check(u); err != nil {
				return 0, invalid("Invalid unit name or wildcard %q: %v", u, err)
			}
		}
		if !seen[u] {
			seen[u] = true
			distinct = append(distinct, u)
		}
	}
	m, c := a.m, a.m.c
	c.emu.Lock()
	defer c.emu.Unlock()
	if m.closed {
		return 0, a.gone()
	}
	if node != wildcard && c.byName[node] == nil {
		c.logger().Info("subscription to an unknown node; it will never fire", "monitor", m.path, "node", node)
	}
	c.nextSub++
	s := &subscription{id: c.nextSub, mon: m, node: node, units: distinct, names: seen}
	c.addSubLocked(s)
	c.logger().Debug("subscribed", "monitor", m.path, "id", s.id, "node", node, "units", strings.Join(distinct, ","))
	return s.id, nil
}

func (a *monitorAPI) Unsubscribe(ctx context.Context, id uint32) error {
	if err := a.ownerOnly(ctx, "Unsubscribe"); err != nil {
		return err
	}
	m, c := a.m, a.m.c
	c.emu.Lock()
	defer c.emu.Unlock()
	if m.closed {
		return a.gone()
	}
	s := m.subs[id]
	if s == nil {
		return failed("Subscription '%d' not found", id)
	}
	c.removeSubLocked(s, true)
	return nil
}

func (a *monitorAPI) AddPeer(ctx context.Context, name string) (uint32, error) {
	if err := a.ownerOnly(ctx, "AddPeer"); err != nil {
		return 0, err
	}
	m, c := a.m, a.m.c
	if !validUniqueName(name) {
		return 0, invalid("Invalid peer name %q: not a unique bus name", name)
	}
	if name == m.owner {
		return 0, invalid("Peer %s is the owner of the monitor", name)
	}
	has, err := c.nameHasOwner(ctx, name)
	if err != nil {
		return 0, failed("%v", err)
	}
	if !has {
		return 0, invalid("Peer %s is not on the bus", name)
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	if m.closed {
		return 0, a.gone()
	}
	for _, p := range m.peers {
		if p.name == name {
			return 0, invalid("Peer %s already added", name)
		}
	}
	c.nextPeer++
	m.peers = append(m.peers, monitorPeer{id: c.nextPeer, name: name})
	m.rebuildDests()
	return c.nextPeer, nil
}

func (a *monitorAPI) RemovePeer(ctx context.Context, id uint32, reason string) error {
	if err := a.ownerOnly(ctx, "RemovePeer"); err != nil {
		return err
	}
	m, c := a.m, a.m.c
	c.emu.Lock()
	defer c.emu.Unlock()
	if m.closed {
		return a.gone()
	}
	for i, p := range m.peers {
		if p.id == id {
			m.peers = append(m.peers[:i], m.peers[i+1:]...)
			m.rebuildDests()
			m.emitTo(p.name, func(dest string) error {
				return m.obj.EmitPeerRemovedTo(dest, bluechi.MonitorPeerRemovedSignal{Reason: reason})
			})
			return nil
		}
	}
	return failed("Peer '%d' not found", id)
}

// validUniqueName checks the form of a unique bus name (api.md §6.4): ':'
// then at least two dot-separated non-empty elements of ASCII letters and
// digits, at most 255 bytes in all.
func validUniqueName(s string) bool {
	if len(s) > 255 || !strings.HasPrefix(s, ":") {
		return false
	}
	parts := strings.Split(s[1:], ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			ch := p[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
				return false
			}
		}
	}
	return true
}
