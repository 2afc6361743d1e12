package systemd

import (
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
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
// Changed is the signal's map itself: values keep their signatures.
type PropertiesChanged struct {
	Path        dbus.ObjectPath
	Unit        string
	Interface   string
	Changed     map[string]dbus.Variant
	Invalidated []string
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

// dispatch turns signals into events, one at a time.
func (c *Client) dispatch() {
	defer close(c.events)
	for sig := range c.sigs {
		if owner := c.owner.Load(); owner != nil {
			if sig.Sender == dbusrt.BusName && sig.Name == dbusrt.BusInterface+".NameOwnerChanged" {
				var name, old, now string
				if dbusrt.Decode(sig.Body, &name, &old, &now) == nil && name == BusName {
					c.owner.Store(&now)
				}
				continue
			}
			if sig.Sender != *owner {
				continue // not from systemd: forged, or not for us
			}
		}
		ev := parseSignal(sig)
		if ev == nil {
			continue
		}
		switch e := ev.(type) {
		case *JobNew:
			c.waitGate(e.Job)
		case *JobRemoved:
			c.waitGate(e.Job)
		case *PropertiesChanged:
			if e.IsJob() {
				c.waitGate(e.Path)
			}
		}
		select {
		case c.events <- ev:
		case <-c.closing:
			return
		}
	}
}

// parseSignal recognises systemd's signals; anything else gives nil.
func parseSignal(sig *dbus.Signal) Event {
	b := sig.Body
	switch {
	case sig.Path == ManagerPath && strings.HasPrefix(sig.Name, ManagerInterface+"."):
		switch strings.TrimPrefix(sig.Name, ManagerInterface+".") {
		case "UnitNew":
			if len(b) == 2 {
				id, ok1 := b[0].(string)
				p, ok2 := b[1].(dbus.ObjectPath)
				if ok1 && ok2 {
					return &UnitNew{ID: id, Path: p}
				}
			}
		case "UnitRemoved":
			if len(b) == 2 {
				id, ok1 := b[0].(string)
				p, ok2 := b[1].(dbus.ObjectPath)
				if ok1 && ok2 {
					return &UnitRemoved{ID: id, Path: p}
				}
			}
		case "JobNew":
			if len(b) == 3 {
				id, ok1 := b[0].(uint32)
				p, ok2 := b[1].(dbus.ObjectPath)
				u, ok3 := b[2].(string)
				if ok1 && ok2 && ok3 {
					return &JobNew{ID: id, Job: p, Unit: u}
				}
			}
		case "JobRemoved":
			if len(b) == 4 {
				id, ok1 := b[0].(uint32)
				p, ok2 := b[1].(dbus.ObjectPath)
				u, ok3 := b[2].(string)
				r, ok4 := b[3].(string)
				if ok1 && ok2 && ok3 && ok4 {
					return &JobRemoved{ID: id, Job: p, Unit: u, Result: r}
				}
			}
		case "Reloading":
			if len(b) == 1 {
				if a, ok := b[0].(bool); ok {
					return &Reloading{Active: a}
				}
			}
		}
	case sig.Name == PropertiesIface+".PropertiesChanged":
		p := string(sig.Path)
		if !strings.HasPrefix(p, UnitPathPrefix) && !strings.HasPrefix(p, JobPathPrefix) {
			return nil
		}
		if len(b) != 3 {
			return nil
		}
		iface, ok1 := b[0].(string)
		changed, ok2 := b[1].(map[string]dbus.Variant)
		inval, ok3 := b[2].([]string)
		if !ok1 || !ok2 || !ok3 {
			return nil
		}
		unit, _ := UnitNameFromPath(sig.Path)
		return &PropertiesChanged{Path: sig.Path, Unit: unit, Interface: iface, Changed: changed, Invalidated: inval}
	}
	return nil
}
