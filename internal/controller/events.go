package controller

import (
	"context"
	"maps"
	"slices"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// Event reasons and the virtual state of a unit on a node that went away.
const (
	reasonReal        = "real"
	reasonVirtual     = "virtual"
	stateInactive     = "inactive"
	subAgentOffline   = "agent-offline"
	wildcard          = "*"
	wildcardActive    = "active"
	wildcardSubActive = "running"
)

// interest is one unit name (or "*") that subscriptions want from one node,
// with what the agent last reported about it (behaviours.md §4.4).
type interest struct {
	subs   []*subscription // in creation order
	loaded bool
	active string
	sub    string
}

// subscription is one Subscribe or SubscribeList of a monitor.
type subscription struct {
	id    uint32
	mon   *monitor
	node  string // node name or "*"
	units []string
	names map[string]bool
}

// watchUnits relays the agent's unit and metrics signals to monitors.
func (n *node) watchUnits(ctx context.Context, p *peer, agent *bluechi.InternalAgentClient, add func(*dbusrt.Subscription, error) error) error {
	c := n.c
	err := add(agent.OnUnitNew(ctx, func(s *bluechi.InternalAgentUnitNewSignal) {
		c.unitNew(n, p, s.Unit, s.Reason)
	}))
	if err == nil {
		err = add(agent.OnUnitRemoved(ctx, func(s *bluechi.InternalAgentUnitRemovedSignal) {
			c.unitRemoved(n, p, s.Unit)
		}))
	}
	if err == nil {
		err = add(agent.OnUnitStateChanged(ctx, func(s *bluechi.InternalAgentUnitStateChangedSignal) {
			c.unitStateChanged(n, p, s.Unit, s.ActiveState, s.SubState, s.Reason)
		}))
	}
	if err == nil {
		err = add(agent.OnUnitPropertiesChanged(ctx, func(s *bluechi.InternalAgentUnitPropertiesChangedSignal) {
			c.unitPropertiesChanged(n, p, s.Unit, s.Interface, s.Props)
		}))
	}
	if err == nil {
		m := bluechi.NewInternalAgentMetricsClient(agent.Conn(), agentBusName, bluechi.InternalAgentMetricsPath)
		err = add(m.OnAgentJobMetrics(ctx, func(s *bluechi.InternalAgentMetricsAgentJobMetricsSignal) {
			c.agentJobMetrics(n, p, s)
		}))
	}
	return err
}

// tellLocked sends a fire-and-forget call to the node's agent, if it is
// online (internal-protocol.md §8.1: the reply is not awaited).
func (n *node) tellLocked(method string, args ...any) {
	p := n.ev
	if p == nil || p.conn == nil {
		return
	}
	obj := p.conn.Object(agentBusName, bluechi.InternalAgentPath)
	if call := obj.Go(bluechi.InternalAgentInterface+"."+method, dbus.FlagNoReplyExpected, nil, args...); call.Err != nil {
		n.c.logger().Debug("call to agent not sent", "node", n.name, "method", method, "error", call.Err)
	}
}

// matchLocked returns the subscriptions an event about unit on n reaches:
// those naming the unit and, for a real unit, those naming "*" on n. A
// subscription naming both counts once. The slice is reused by the next call.
func (c *Controller) matchLocked(n *node, unit string) []*subscription {
	out := c.scratch[:0]
	if in := n.interest[unit]; in != nil {
		out = append(out, in.subs...)
	}
	if unit != wildcard {
		if in := n.interest[wildcard]; in != nil {
			for _, s := range in.subs {
				if !s.names[unit] {
					out = append(out, s)
				}
			}
		}
	}
	c.scratch = out
	return out
}

// unitNew handles the agent's UnitNew.
func (c *Controller) unitNew(n *node, p *peer, unit, reason string) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if n.ev != p {
		return
	}
	if in := n.interest[unit]; in != nil {
		in.loaded = true
		if unit == wildcard {
			in.active, in.sub = wildcardActive, wildcardSubActive
		}
	}
	sig := bluechi.MonitorUnitNewSignal{Node: n.name, Unit: unit, Reason: reason}
	for _, s := range c.matchLocked(n, unit) {
		s.mon.sendUnitNew(sig)
	}
}

// unitRemoved handles the agent's UnitRemoved (always real).
func (c *Controller) unitRemoved(n *node, p *peer, unit string) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if n.ev != p {
		return
	}
	if in := n.interest[unit]; in != nil {
		in.loaded = false
	}
	sig := bluechi.MonitorUnitRemovedSignal{Node: n.name, Unit: unit, Reason: reasonReal}
	for _, s := range c.matchLocked(n, unit) {
		s.mon.sendUnitRemoved(sig)
	}
}

// unitStateChanged handles the agent's UnitStateChanged.
func (c *Controller) unitStateChanged(n *node, p *peer, unit, active, sub, reason string) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if n.ev != p {
		return
	}
	if in := n.interest[unit]; in != nil {
		in.loaded, in.active, in.sub = true, active, sub
	}
	sig := bluechi.MonitorUnitStateChangedSignal{Node: n.name, Unit: unit, ActiveState: active, SubState: sub, Reason: reason}
	for _, s := range c.matchLocked(n, unit) {
		s.mon.sendUnitStateChanged(sig)
	}
}

// unitPropertiesChanged handles the agent's UnitPropertiesChanged.
func (c *Controller) unitPropertiesChanged(n *node, p *peer, unit, iface string, props map[string]dbus.Variant) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if n.ev != p {
		return
	}
	subs := c.matchLocked(n, unit)
	if len(subs) == 0 {
		return
	}
	// The busiest signal: its body is made encodable once and sent as it
	// is to every recipient (the generated helper would redo that work
	// per recipient).
	body := []any{n.name, unit, iface, encodable(props)}
	for _, s := range subs {
		s.mon.sendRaw(bluechi.MonitorSignalUnitPropertiesChanged, body)
	}
}

// encodable returns props ready to be sent on: godbus decodes a struct
// inside a variant as []any, which only encodes correctly once rebuilt
// (dbusrt.FixVariants). A map without such values is returned as it is.
func encodable(props map[string]dbus.Variant) map[string]dbus.Variant {
	var out map[string]dbus.Variant
	for k, v := range props {
		if plainValue(v.Value()) {
			continue
		}
		if out == nil {
			out = maps.Clone(props)
		}
		if fixed, ok := dbusrt.FixVariants(v).(dbus.Variant); ok {
			out[k] = fixed
		}
	}
	if out == nil {
		return props
	}
	return out
}

// plainValue reports whether a decoded variant value encodes as it is.
func plainValue(x any) bool {
	switch x.(type) {
	case string, bool, byte, int16, uint16, int32, uint32, int64, uint64, float64, dbus.ObjectPath, dbus.Signature,
		[]byte, []string, []bool, []int32, []uint32, []int64, []uint64, []float64, []dbus.ObjectPath:
		return true
	}
	return false
}

// targetsOf returns the configured nodes a subscription for node covers
// (none for an unknown name). The node list never changes after New.
func (c *Controller) targetsOf(name string) []*node {
	if name == wildcard {
		return c.nodes
	}
	if n := c.byName[name]; n != nil {
		return []*node{n}
	}
	return nil
}

// validState reports whether a cached active state is worth repeating.
func validState(active string) bool { return active != "" && active != "invalid" }

func orInvalid(s string) string {
	if s == "" {
		return "invalid"
	}
	return s
}

// addSubLocked indexes a new subscription on its nodes. A unit name that
// becomes interesting on a node is subscribed at its agent (which answers
// with virtual events, V1/V2); one that already was and is known loaded
// gets virtual events for the new subscription only (V3).
func (c *Controller) addSubLocked(s *subscription) {
	s.mon.subs[s.id] = s
	for _, n := range c.targetsOf(s.node) {
		for _, u := range s.units {
			in := n.interest[u]
			if in == nil {
				in = &interest{}
				n.interest[u] = in
				in.subs = append(in.subs, s)
				n.tellLocked("Subscribe", u)
				continue
			}
			in.subs = append(in.subs, s)
			if !in.loaded {
				continue
			}
			s.mon.sendUnitNew(bluechi.MonitorUnitNewSignal{Node: n.name, Unit: u, Reason: reasonVirtual})
			if validState(in.active) {
				s.mon.sendUnitStateChanged(bluechi.MonitorUnitStateChangedSignal{
					Node: n.name, Unit: u, ActiveState: in.active, SubState: orInvalid(in.sub), Reason: reasonVirtual,
				})
			}
		}
	}
}

// removeSubLocked drops a subscription; a unit name nobody wants any more
// is unsubscribed at the agent when notify is set.
func (c *Controller) removeSubLocked(s *subscription, notify bool) {
	delete(s.mon.subs, s.id)
	for _, n := range c.targetsOf(s.node) {
		for _, u := range s.units {
			in := n.interest[u]
			if in == nil {
				continue
			}
			for i, x := range in.subs {
				if x == s {
					in.subs = append(in.subs[:i], in.subs[i+1:]...)
					break
				}
			}
			if len(in.subs) == 0 {
				delete(n.interest, u)
				if notify {
					n.tellLocked("Unsubscribe", u)
				}
			}
		}
	}
}

// sortedInterest returns the node's interesting unit names in order.
func (n *node) sortedInterest() []string {
	return slices.Sorted(maps.Keys(n.interest))
}

// registeredLocked makes a freshly registered connection the node's event
// source and replays what the agent must know: every interesting unit name
// and the metrics switch (internal-protocol.md §4.4).
func (c *Controller) registeredLocked(n *node, p *peer) {
	n.ev = p
	for _, u := range n.sortedInterest() {
		in := n.interest[u]
		in.loaded, in.active, in.sub = false, "", ""
		n.tellLocked("Subscribe", u)
	}
	if c.metrics != nil {
		n.tellLocked("EnableMetrics")
	}
}

// goneLocked reports the loss of the node's connection to monitors: every
// unit known loaded gets a virtual change to inactive/agent-offline (unless
// it was inactive already) and a virtual UnitRemoved (V4).
func (c *Controller) goneLocked(n *node, p *peer) {
	if n.ev != p {
		return
	}
	for _, u := range n.sortedInterest() {
		in := n.interest[u]
		if !in.loaded {
			continue
		}
		if validState(in.active) && in.active != stateInactive {
			sig := bluechi.MonitorUnitStateChangedSignal{Node: n.name, Unit: u, ActiveState: stateInactive, SubState: subAgentOffline, Reason: reasonVirtual}
			for _, s := range c.matchLocked(n, u) {
				s.mon.sendUnitStateChanged(sig)
			}
		}
		sig := bluechi.MonitorUnitRemovedSignal{Node: n.name, Unit: u, Reason: reasonVirtual}
		for _, s := range c.matchLocked(n, u) {
			s.mon.sendUnitRemoved(sig)
		}
		in.loaded = false
	}
	n.ev = nil
}

// closeEvents drops every monitor without telling anyone and switches
// metrics off (controller shutdown).
func (c *Controller) closeEvents() {
	c.emu.Lock()
	if c.evClosed {
		c.emu.Unlock()
		return
	}
	c.evClosed = true
	var watches []*dbusrt.Subscription
	for _, m := range c.monitors {
		watches = append(watches, c.dropMonitorLocked(m, false))
	}
	if c.metrics != nil {
		c.metrics.Unexport()
		c.metrics = nil
	}
	c.emu.Unlock()
	for _, w := range watches {
		if w != nil {
			w.Close()
		}
	}
}
