// SPDX-License-Identifier: Apache-2.0

// Package isonline implements bluechi-is-online: it tells whether the local
// agent, one node or the whole system is online, optionally waiting for it
// to come online or watching until it goes offline.
package isonline

import "time"

// Options are the command-line settings of one check.
type Options struct {
	// Wait > 0 waits up to that long for the component to come online.
	Wait time.Duration
	// Monitor keeps running while online and ends when it goes offline.
	Monitor bool
	// SwitchTimeout > 0 tolerates the disconnect of a controller switch
	// (agent mode) for that long.
	SwitchTimeout time.Duration
}

// State is what is known about the component.
type State struct {
	// HasName: the bus name has an owner.
	HasName bool
	// Connected: the last Status seen was the online value.
	Connected bool
	// Switching: a controller switch was announced and its disconnect not seen yet.
	Switching bool
}

// Online reports whether the component counts as online.
func (s State) Online() bool { return s.HasName && s.Connected }

// Machine decides, event by event, whether the check is over.
type Machine struct {
	State
	Options
}

// NeedsLoop reports whether events must be awaited at all: when monitoring
// something online, or waiting for something offline.
func (m *Machine) NeedsLoop() bool {
	return (m.Monitor && m.Online()) || (m.Wait > 0 && !m.Online())
}

// StatusChanged records a new Status; it returns true when the loop ends.
func (m *Machine) StatusChanged(online bool) bool {
	m.Connected = online
	if m.Switching && !m.Online() {
		// The disconnect a controller switch causes: expected, ignored once.
		m.Switching = false
		return false
	}
	return m.settled()
}

// settled: a monitor sees the component go offline, or a waiter sees it online.
func (m *Machine) settled() bool {
	return (m.Monitor && !m.Online()) || (!m.Monitor && m.Wait > 0 && m.Online())
}

// OwnerChanged records a change of the bus name's owner ("" = no owner).
// Upstream only notices new owners; losing the owner here also counts as
// going offline, so a monitor ends when the component dies without a word.
func (m *Machine) OwnerChanged(newOwner string) bool {
	if newOwner != "" {
		m.HasName = true
		return false
	}
	m.HasName = false
	return m.settled()
}

// ControllerAddressChanged announces a controller switch; it returns the
// time to (re)arm the timer with, or 0 to leave it alone.
func (m *Machine) ControllerAddressChanged() time.Duration {
	if m.SwitchTimeout <= 0 {
		return 0
	}
	m.Switching = true
	return m.SwitchTimeout
}

// TimerFired handles the end of the wait or of a switch; it returns true
// when the loop ends (everything but an online component being monitored).
func (m *Machine) TimerFired() bool {
	return !(m.Online() && m.Monitor)
}
