// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Event is one signal from systemd, in the order systemd sent it:
// *UnitNew, *UnitRemoved, *JobNew, *JobRemoved, *PropertiesChanged or
// *Reloading.
type Event interface{ isEvent() }

// UnitNew is Manager.UnitNew(s id, o path): a unit was loaded.
type UnitNew struct {
	ID   string
	Path dbus.ObjectPath
}

// UnitRemoved is Manager.UnitRemoved(s id, o path): a unit was unloaded.
type UnitRemoved struct {
	ID   string
	Path dbus.ObjectPath
}

// JobNew is Manager.JobNew(u id, o job, s unit).
type JobNew struct {
	ID   uint32
	Job  dbus.ObjectPath
	Unit string
}

// JobRemoved is Manager.JobRemoved(u id, o job, s unit, s result); result is
// done, canceled, timeout, failed, dependency or skipped.
type JobRemoved struct {
	ID     uint32
	Job    dbus.ObjectPath
	Unit   string
	Result string
}

// Reloading is Manager.Reloading(b active).
type Reloading struct{ Active bool }

// PropertiesChanged is org.freedesktop.DBus.Properties.PropertiesChanged on a
// unit path (Unit set to the unit's name) or a job path (Unit empty).
// Props is the changed properties' a{sv} as bytes (little endian, aligned
// from its first byte, checked as the message bus checks): String reads
// one, and the bytes can be passed on as they are (wire.Copy).
type PropertiesChanged struct {
	Path        dbus.ObjectPath
	Unit        string
	Interface   string
	Props       []byte
	Invalidated []string
}

// String returns the changed property name if it is a string.
func (p *PropertiesChanged) String(name string) (string, bool) {
	return wire.PropString(p.Props, name)
}

// IsJob reports whether the change concerns a job object.
func (p *PropertiesChanged) IsJob() bool { return strings.HasPrefix(string(p.Path), JobPathPrefix) }

func (*UnitNew) isEvent()           {}
func (*UnitRemoved) isEvent()       {}
func (*JobNew) isEvent()            {}
func (*JobRemoved) isEvent()        {}
func (*Reloading) isEvent()         {}
func (*PropertiesChanged) isEvent() {}

// Events delivers systemd's signals in wire order. An event about a job
// created through this Client's job methods is delivered only after that
// method's track function has run. The channel is closed when the
// connection ends. Read it continuously: while it is full, later events wait.
func (c *Client) Events() <-chan Event { return c.events }

// dispatch passes the queued events on, one at a time, each after the
// gate of its job (if any).
func (c *Client) dispatch() {
	defer close(c.events)
	var batch []rawEvent
	for {
		var ok bool
		if batch, ok = c.queue.pop(batch); !ok {
			return
		}
		for _, e := range batch {
			if owner := c.owner.Load(); owner != nil {
				if e.owner != nil {
					if e.sender == daemonapi.DBusBusName {
						c.owner.Store(e.owner)
					}
					continue
				}
				if e.sender != *owner {
					continue // not from systemd: forged, or not for us
				}
			}
			if e.ev == nil {
				continue
			}
			switch ev := e.ev.(type) {
			case *JobNew:
				c.waitGate(ev.Job)
			case *JobRemoved:
				c.waitGate(ev.Job)
			case *PropertiesChanged:
				if ev.IsJob() {
					c.waitGate(ev.Path)
				}
			}
			select {
			case c.events <- e.ev:
			case <-c.closing:
				return
			}
		}
	}
}
