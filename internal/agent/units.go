// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"strings"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Unit event reasons and the wildcard unit name.
const (
	reasonReal    = "real"
	reasonVirtual = "virtual"
	wildcard      = "*"
)

// unitState is the last known state of a loaded unit.
type unitState struct {
	active string
	sub    string
}

func orInvalid(s string) string {
	if s == "" {
		return "invalid"
	}
	return s
}

// activeOrInvalid returns an active state as BlueChi reports it: one of
// the states api.md §2 lists, "invalid" for any other (a later systemd's
// new states, such as "refreshing", included), as upstream's agent does.
func activeOrInvalid(s string) string {
	switch s {
	case "active", "reloading", "inactive", "failed", "activating", "deactivating", "maintenance":
		return s
	}
	return "invalid"
}

// seedUnits fills the unit table from systemd's ListUnits (internal-protocol
// §11). Events queued meanwhile are applied afterwards, in order.
func (a *Agent) seedUnits(ctx context.Context) error {
	units, err := a.sd.ListUnits(ctx)
	if err != nil {
		return fmt.Errorf("list units to seed the unit table: %w", err)
	}
	a.unitMu.Lock()
	defer a.unitMu.Unlock()
	for _, u := range units {
		a.units[u.Name] = &unitState{active: u.ActiveState, sub: u.SubState}
	}
	return nil
}

// setUnitSession makes sess the receiver of unit events.
func (a *Agent) setUnitSession(sess *session) {
	a.unitMu.Lock()
	a.usess = sess
	a.unitMu.Unlock()
}

// endUnitSession stops unit events to sess; its subscriptions die with it.
func (a *Agent) endUnitSession(sess *session) {
	a.unitMu.Lock()
	if a.usess == sess {
		a.usess = nil
	}
	a.unitMu.Unlock()
}

// interestedLocked reports whether the current session wants events of unit.
func (a *Agent) interestedLocked(unit string) *session {
	s := a.usess
	if s == nil || !(s.wildcard || s.subs[unit]) {
		return nil
	}
	return s
}

// subscribe handles Subscribe(unit) from the controller of sess: a loaded
// unit is announced at once with virtual events, "*" with a virtual UnitNew.
func (a *Agent) subscribe(sess *session, unit string) error {
	a.unitMu.Lock()
	defer a.unitMu.Unlock()
	if unit == wildcard {
		if sess.wildcard {
			return dbusrt.NewError(dbusrt.ErrFailed, "Already wildcard subscribed")
		}
		sess.wildcard = true
		a.send(sess, "UnitNew", sess.emitUnitNew(wildcard, reasonVirtual))
		return nil
	}
	if sess.subs[unit] {
		return dbusrt.NewError(dbusrt.ErrFailed, "Already subscribed")
	}
	sess.subs[unit] = true
	if u := a.units[unit]; u != nil {
		a.send(sess, "UnitNew", sess.emitUnitNew(unit, reasonVirtual))
		if u.active != "" {
			a.send(sess, "UnitStateChanged", sess.emitUnitStateChanged(unit, activeOrInvalid(u.active), orInvalid(u.sub), reasonVirtual))
		}
	}
	return nil
}

// unsubscribe handles Unsubscribe(unit) from the controller of sess.
func (a *Agent) unsubscribe(sess *session, unit string) error {
	a.unitMu.Lock()
	defer a.unitMu.Unlock()
	if unit == wildcard {
		if !sess.wildcard {
			return dbusrt.NewError(dbusrt.ErrFailed, "No wildcard subscription active")
		}
		sess.wildcard = false
		return nil
	}
	if !sess.subs[unit] {
		return dbusrt.NewError(dbusrt.ErrFailed, "Not subscribed")
	}
	delete(sess.subs, unit)
	return nil
}

// send logs a failed signal emission.
func (a *Agent) send(sess *session, what string, err error) {
	if err != nil && sess.conn.Err() == nil {
		a.slog().Warn("send unit event", "signal", what, "error", err)
	}
}

// Unit events: virtual ones answer a Subscribe and leave before its reply
// (at once when it expects none); real ones are held back by the
// connection's socket (batchConn) until the next other message or the
// events loop's flush, so that the events of one unit change leave
// together (unitEventWindow).

func (s *session) emitUnitNew(unit, reason string) error {
	s.queued.Store(true)
	return daemonapi.EmitInternalAgentUnitNewWire(s.conn, string(daemonapi.InternalAgentPath),
		daemonapi.InternalAgentUnitNewSignal{Unit: unit, Reason: reason})
}

func (s *session) emitUnitRemoved(unit string) error {
	s.queued.Store(true)
	return daemonapi.EmitInternalAgentUnitRemovedWire(s.conn, string(daemonapi.InternalAgentPath),
		daemonapi.InternalAgentUnitRemovedSignal{Unit: unit})
}

func (s *session) emitUnitStateChanged(unit, active, sub, reason string) error {
	s.queued.Store(true)
	return daemonapi.EmitInternalAgentUnitStateChangedWire(s.conn, string(daemonapi.InternalAgentPath),
		daemonapi.InternalAgentUnitStateChangedSignal{Unit: unit, ActiveState: active, SubState: sub, Reason: reason})
}

// unitNew handles systemd's UnitNew: the unit is loaded, inactive/dead
// until systemd says otherwise.
func (a *Agent) unitNew(id string) {
	a.unitMu.Lock()
	defer a.unitMu.Unlock()
	if a.units[id] == nil {
		a.units[id] = &unitState{active: "inactive", sub: "dead"}
	}
	if s := a.interestedLocked(id); s != nil {
		a.send(s, "UnitNew", s.emitUnitNew(id, reasonReal))
	}
}

// unitRemoved handles systemd's UnitRemoved: the unit is forgotten.
func (a *Agent) unitRemoved(id string) {
	a.unitMu.Lock()
	defer a.unitMu.Unlock()
	delete(a.units, id)
	if s := a.interestedLocked(id); s != nil {
		a.send(s, "UnitRemoved", s.emitUnitRemoved(id))
	}
}

// unitChanged handles a PropertiesChanged of a unit: a new active or sub
// state gives a real UnitStateChanged, and every change is passed on as
// UnitPropertiesChanged, for interesting units only.
func (a *Agent) unitChanged(e *systemd.PropertiesChanged) {
	a.unitMu.Lock()
	defer a.unitMu.Unlock()
	u := a.units[e.Unit]
	if u == nil {
		return
	}
	s := a.interestedLocked(e.Unit)
	if e.Interface == systemd.UnitInterface {
		active, sub := u.active, u.sub
		if v, ok := e.String("ActiveState"); ok {
			active = v
		}
		if v, ok := e.String("SubState"); ok {
			sub = v
		}
		if active != u.active || sub != u.sub {
			if (active == "inactive" || active == "failed") && active != u.active && strings.HasPrefix(e.Unit, proxyUnitPrefix) {
				go a.localUnitStopped(e.Unit) // takes proxyMu, which is taken before unitMu elsewhere
			}
			u.active, u.sub = active, sub
			if s != nil {
				a.send(s, "UnitStateChanged", s.emitUnitStateChanged(e.Unit, activeOrInvalid(active), orInvalid(sub), reasonReal))
			}
		}
	}
	if s != nil {
		a.send(s, "UnitPropertiesChanged", s.queueProps(e))
	}
}

// sigUnitProps is the type of UnitPropertiesChanged's properties.
var sigUnitProps = wire.ArgSignature(daemonapi.InternalAgentUnitPropertiesChangedSig, 2)

// queueProps sends UnitPropertiesChanged(unit, interface, props) with the
// properties' bytes as systemd sent them, held back with the unit events.
func (s *session) queueProps(e *systemd.PropertiesChanged) error {
	if !wire.ValidString(e.Unit) || !wire.ValidString(e.Interface) {
		return fmt.Errorf("unit %q: not a valid D-Bus string", e.Unit)
	}
	var w wire.Writer
	w.String(e.Unit)
	w.String(e.Interface)
	r := wire.NewReader(e.Props, false)
	if err := wire.Copy(&w, &r, sigUnitProps); err != nil {
		return err
	}
	s.queued.Store(true)
	return s.conn.Emit(string(daemonapi.InternalAgentPath), daemonapi.InternalAgentInterface,
		daemonapi.InternalAgentSignalUnitPropertiesChanged, daemonapi.InternalAgentUnitPropertiesChangedSig, w.Buf)
}
