// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"errors"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// The fast path handles the agents' signals without decoding them into Go
// values. The peer connection (internal/wireconn) hands each signal to
// peer.signal as bytes, on its reader goroutine, in the order the agent
// sent them, and reads its next message only when the handler returned.
// Job signals and heartbeats are read in place and handled at once. Unit
// signals are relayed to monitors: the few strings the controller needs
// are read in place, the properties are copied (and validated) as they
// are, and the monitor signals are written on the bus connection as they are.
// The rest (ProxyNew, ProxyRemoved, AgentJobMetrics) are decoded by the
// generated Decode functions and handled on the reader too, so that every
// signal of a connection is handled in wire order.

// Body signatures of the relayed signals: the agent's from the IDL, the
// monitor's for the output.
const (
	sigAgentJob           = daemonapi.InternalAgentJobDoneSig
	sigAgentUnitNew       = daemonapi.InternalAgentUnitNewSig
	sigAgentUnitRemoved   = daemonapi.InternalAgentUnitRemovedSig
	sigAgentUnitState     = daemonapi.InternalAgentUnitStateChangedSig
	sigAgentUnitProps     = daemonapi.InternalAgentUnitPropertiesChangedSig
	sigMonitorUnitNew     = daemonapi.MonitorUnitNewSig
	sigMonitorUnitRemoved = daemonapi.MonitorUnitRemovedSig
	sigMonitorUnitState   = daemonapi.MonitorUnitStateChangedSig
	sigMonitorUnitProps   = daemonapi.MonitorUnitPropertiesChangedSig
)

// sigProps is the type of the properties argument the agent's
// UnitPropertiesChanged and the monitor's share.
var sigProps = wire.ArgSignature(sigMonitorUnitProps, 3)

// errSignature is the reason a relayed signal with a wrong body is dropped.
var errSignature = errors.New("unexpected signature")

// signal handles one signal of the agent connection (Options.Signal): on
// the connection's reader, in wire order; m.Body is valid only until it
// returns. Signals of a connection that has not registered are dropped.
func (p *peer) signal(_ *wireconn.Conn, m *wire.Message) {
	if p.rawSignal(m) {
		p.c.kickFlush()
		return
	}
	var err error
	switch {
	case m.Path == string(daemonapi.InternalAgentPath) && m.Interface == daemonapi.InternalAgentInterface:
		switch m.Member {
		case daemonapi.InternalAgentSignalProxyNew:
			var s daemonapi.InternalAgentProxyNewSignal
			if s, err = daemonapi.DecodeInternalAgentProxyNew(m); err == nil {
				if n := p.registeredNode(); n != nil {
					p.c.proxyNew(n, p, &s)
				}
			}
		case daemonapi.InternalAgentSignalProxyRemoved:
			var s daemonapi.InternalAgentProxyRemovedSignal
			if s, err = daemonapi.DecodeInternalAgentProxyRemoved(m); err == nil {
				if n := p.registeredNode(); n != nil {
					p.c.proxyRemoved(n, p, &s)
				}
			}
		}
	case m.Path == string(daemonapi.InternalAgentMetricsPath) && m.Interface == daemonapi.InternalAgentMetricsInterface &&
		m.Member == daemonapi.InternalAgentMetricsSignalAgentJobMetrics:
		var s daemonapi.InternalAgentMetricsAgentJobMetricsSignal
		if s, err = daemonapi.DecodeInternalAgentMetricsAgentJobMetrics(m); err == nil {
			if n := p.registeredNode(); n != nil {
				p.c.agentJobMetrics(n, p, &s)
			}
		}
	}
	if err != nil {
		p.c.logger().Debug("agent signal dropped", "peer", p.addr, "member", m.Member, "error", err)
	}
}

// kickFlush makes sure the monitor signals (and job property changes)
// held on the bus connection while handling agent signals are written soon, in
// one write per burst: the flush runs on a goroutine of its own, which
// (with one processor, as the daemon runs) gets its turn once the
// agents' readers have handed over what they read and wait for more.
// At most one flush is pending at a time; one started after a signal was
// queued always takes it along.
func (c *Controller) kickFlush() {
	if c.flushPending.CompareAndSwap(false, true) {
		go func() {
			c.flushPending.Store(false)
			c.flushMonitorSignals()
		}()
	}
}

// flushMonitorSignals writes the queued monitor signals.
func (c *Controller) flushMonitorSignals() {
	if err := c.busWire.Flush(); err != nil {
		c.logger().Debug("monitor signals not sent", "error", err)
	}
}

// rawSignal handles the agent's unit, job and heartbeat signals; it runs
// in the connection's reader, in wire order. It returns false for other
// signals.
func (p *peer) rawSignal(m *wire.Message) bool {
	if m.Interface != daemonapi.InternalAgentInterface || m.Path != string(daemonapi.InternalAgentPath) {
		return false
	}
	c := p.c
	switch m.Member {
	case daemonapi.InternalAgentSignalUnitNew, daemonapi.InternalAgentSignalUnitRemoved,
		daemonapi.InternalAgentSignalUnitStateChanged, daemonapi.InternalAgentSignalUnitPropertiesChanged:
	case daemonapi.InternalAgentSignalJobDone, daemonapi.InternalAgentSignalJobStateChanged, daemonapi.InternalAgentSignalHeartbeat:
		if n := p.registeredNode(); n != nil {
			if err := c.jobSignal(n, p, m); err != nil {
				c.logger().Debug("agent signal dropped", "node", n.name, "member", m.Member, "error", err)
			}
		}
		return true
	default:
		return false
	}
	n := p.registeredNode()
	if n == nil {
		return true
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	if n.ev != p {
		return true // no longer the node's event source
	}
	if err := c.relayLocked(n, m); err != nil {
		c.logger().Debug("agent signal dropped", "node", n.name, "member", m.Member, "error", err)
	}
	return true
}

// registeredNode returns the node this connection is registered as, or nil.
func (p *peer) registeredNode() *node {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if n := p.node; n != nil && n.peer == p {
		return n
	}
	return nil
}

// jobSignal handles JobDone, JobStateChanged and Heartbeat from p, the
// connection of n.
func (c *Controller) jobSignal(n *node, p *peer, m *wire.Message) error {
	if m.Member == daemonapi.InternalAgentSignalHeartbeat {
		c.mu.Lock()
		if n.peer == p {
			touch(n)
		}
		c.mu.Unlock()
		return nil
	}
	if m.Signature != sigAgentJob {
		return errSignature
	}
	r := wire.NewReader(m.Body, m.BigEndian)
	id, err := r.Uint32()
	if err != nil {
		return err
	}
	s, err := r.String()
	if err == nil {
		err = r.Done()
	}
	if err != nil {
		return err
	}
	if m.Member == daemonapi.InternalAgentSignalJobDone {
		c.jobDone(n, id, s)
	} else {
		c.jobStateChanged(n, id, s)
	}
	return nil
}

// relayLocked updates what is known about the unit and sends the monitor
// signal to every subscription it reaches.
func (c *Controller) relayLocked(n *node, m *wire.Message) error {
	r := wire.NewReader(m.Body, m.BigEndian)
	w := &c.rawBody
	w.Reset()
	w.String(n.name)
	var subs []*subscription
	var member, sig string
	var fwd []string // what a proxy's subscription is told (proxies.go)
	switch m.Member {
	case daemonapi.InternalAgentSignalUnitNew:
		var a [2]string // unit, reason
		if err := readBody(&r, m.Signature, sigAgentUnitNew, a[:]); err != nil {
			return err
		}
		w.String(a[0])
		w.String(a[1])
		if a[0] != wildcard { // "*" only answers a Subscribe("*")
			c.unitsChangedLocked(n)
		}
		subs, member, sig, fwd = c.unitNewLocked(n, a[0]), bluechi.MonitorSignalUnitNew, sigMonitorUnitNew, a[1:2]
	case daemonapi.InternalAgentSignalUnitRemoved:
		var a [1]string // unit
		if err := readBody(&r, m.Signature, sigAgentUnitRemoved, a[:]); err != nil {
			return err
		}
		w.String(a[0])
		w.String(reasonReal)
		c.unitsChangedLocked(n)
		subs, member, sig, fwd = c.unitRemovedLocked(n, a[0]), bluechi.MonitorSignalUnitRemoved, sigMonitorUnitRemoved, []string{reasonReal}
	case daemonapi.InternalAgentSignalUnitStateChanged:
		var a [4]string // unit, active, sub, reason
		if err := readBody(&r, m.Signature, sigAgentUnitState, a[:]); err != nil {
			return err
		}
		for _, x := range a {
			w.String(x)
		}
		c.unitsChangedLocked(n)
		subs, member, sig, fwd = c.unitStateLocked(n, a[0], a[1], a[2]), bluechi.MonitorSignalUnitStateChanged, sigMonitorUnitState, a[1:4]
	case daemonapi.InternalAgentSignalUnitPropertiesChanged:
		if m.Signature != sigAgentUnitProps {
			return errSignature
		}
		var a [2]string // unit, interface; the properties follow
		if err := readStrings(&r, a[:]); err != nil {
			return err
		}
		c.unitsChangedLocked(n)
		subs = c.matchLocked(n, a[0])
		if !anyRecipient(subs) {
			return nil
		}
		w.String(a[0])
		w.String(a[1])
		if err := wire.Copy(w, &r, sigProps); err != nil {
			return err
		}
		if err := r.Done(); err != nil {
			return err
		}
		member, sig = bluechi.MonitorSignalUnitPropertiesChanged, sigMonitorUnitProps
	}
	for _, s := range subs {
		if s.mon.fwd != nil {
			if fwd != nil {
				s.mon.fwd(member, fwd...)
			}
			continue
		}
		s.mon.sendWire(member, sig, w.Buf)
	}
	return nil
}

// readStrings reads len(dst) strings at the start of a body.
func readStrings(r *wire.Reader, dst []string) error {
	for i := range dst {
		var err error
		if dst[i], err = r.String(); err != nil {
			return err
		}
	}
	return nil
}

// readBody reads a body of exactly len(dst) strings whose signature must
// be want.
func readBody(r *wire.Reader, sig, want string, dst []string) error {
	if sig != want {
		return errSignature
	}
	if err := readStrings(r, dst); err != nil {
		return err
	}
	return r.Done()
}

// sendWire holds a monitor signal with a ready body for every recipient
// on the bus connection (kickFlush writes them); the caller holds c.emu.
func (m *monitor) sendWire(member, sig string, body []byte) {
	c := m.c
	for _, d := range m.dests {
		if err := c.busWire.HoldSignal(d, string(m.path), bluechi.MonitorInterface, member, sig, body); err != nil {
			c.logger().Debug("monitor signal not sent", "path", m.path, "to", d, "error", err)
		}
	}
}

// anyRecipient reports whether a signal for subs would go anywhere (the
// cache's hidden subscription has no recipients).
func anyRecipient(subs []*subscription) bool {
	for _, s := range subs {
		if len(s.mon.dests) > 0 {
			return true
		}
	}
	return false
}
