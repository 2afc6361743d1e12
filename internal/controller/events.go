// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"maps"
	"slices"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
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

// agentClient is the generated client of an agent's internal.Agent object.
type agentClient = daemonapi.InternalAgentWireClient

// tellLocked sends a fire-and-forget call (send, one of the generated
// SendM, which the agent does not answer) to the node's agent, if it is
// online (internal-protocol.md §8.1: the reply is not awaited); method
// names it for the log.
func (n *node) tellLocked(method string, send func(*agentClient) error) {
	p := n.ev
	if p == nil {
		return
	}
	if err := send(p.agent); err != nil {
		n.c.logger().Debug("call to agent not sent", "node", n.name, "method", method, "error", err)
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

// unitNewLocked notes that unit is loaded on n (the agent's UnitNew) and
// returns the subscriptions the event reaches.
func (c *Controller) unitNewLocked(n *node, unit string) []*subscription {
	if in := n.interest[unit]; in != nil {
		in.loaded = true
		if unit == wildcard {
			in.active, in.sub = wildcardActive, wildcardSubActive
		}
	}
	return c.matchLocked(n, unit)
}

// unitRemovedLocked notes that unit is gone from n (the agent's
// UnitRemoved, always real) and returns the subscriptions it reaches.
func (c *Controller) unitRemovedLocked(n *node, unit string) []*subscription {
	if in := n.interest[unit]; in != nil {
		in.loaded = false
	}
	return c.matchLocked(n, unit)
}

// unitStateLocked records unit's state on n (the agent's UnitStateChanged)
// and returns the subscriptions it reaches.
func (c *Controller) unitStateLocked(n *node, unit, active, sub string) []*subscription {
	if in := n.interest[unit]; in != nil {
		in.loaded, in.active, in.sub = true, active, sub
	}
	return c.matchLocked(n, unit)
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
				n.tellLocked(daemonapi.InternalAgentMethodSubscribe, func(a *agentClient) error { return a.SendSubscribe(u) })
				continue
			}
			// Only the ListUnits cache's subscription names "*" so far
			// (proxies never subscribe "*").
			first := u == wildcard && !anyRecipient(in.subs)
			in.subs = append(in.subs, s)
			if !in.loaded {
				continue
			}
			s.mon.sendUnitNew(bluechi.MonitorUnitNewSignal{Node: n.name, Unit: u, Reason: reasonVirtual})
			if first {
				// The agent answered the cache's Subscribe("*") long ago:
				// this is V2, which brings UnitNew only.
				continue
			}
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
					n.tellLocked(daemonapi.InternalAgentMethodUnsubscribe, func(a *agentClient) error { return a.SendUnsubscribe(u) })
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
	n.units.invalidate()
	for _, u := range n.sortedInterest() {
		in := n.interest[u]
		in.loaded, in.active, in.sub = false, "", ""
		n.tellLocked(daemonapi.InternalAgentMethodSubscribe, func(a *agentClient) error { return a.SendSubscribe(u) })
	}
	n.replayDepsLocked()
	c.scheduleDepCheckLocked(n, p)
	if c.metrics != nil {
		n.tellLocked(daemonapi.InternalAgentMethodEnableMetrics, (*agentClient).SendEnableMetrics)
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
	c.dropSinkLocked(n, false)
	c.dropProxiesLocked(n)
	n.stopDepCheckLocked()
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
	for _, n := range c.nodes {
		n.stopDepCheckLocked()
	}
	var watches []func()
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
			w()
		}
	}
}
