// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// systemd's signals are read from the wire as they come: the
// connection's reader hands each signal over as bytes, and the few values
// an event needs are read in place. A unit's PropertiesChanged carries
// dozens of values and godbus spent more CPU decoding them than systemd
// spent running the job; here the properties stay bytes
// (PropertiesChanged.Props) until someone looks at one. Replies are read
// by the same goroutine, so that a job call's gate is set up before any
// later signal is queued (see jobCall).

// rawEvent is one recognised signal with its sender.
type rawEvent struct {
	sender string
	ev     Event
	owner  *string // set for NameOwnerChanged of systemd's name: the new owner
}

// eventQueue passes events from the connection's reader to dispatch
// without ever blocking the reader (a job call's reply must get through
// while dispatch waits at a gate).
type eventQueue struct {
	mu     sync.Mutex // guards items and closed
	items  []rawEvent
	ready  chan struct{} // signalled when items were added or the queue closed
	closed bool
}

// sigChangedProps is the type of PropertiesChanged's changed properties.
var sigChangedProps = wire.ArgSignature(daemonapi.DBusPropertiesPropertiesChangedSig, 1)

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

func (q *eventQueue) push(e rawEvent) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop waits for the next batch of events; ok is false once the queue is
// closed and empty.
func (q *eventQueue) pop(buf []rawEvent) (_ []rawEvent, ok bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			buf = append(buf[:0], q.items...)
			clear(q.items)
			q.items = q.items[:0]
			q.mu.Unlock()
			return buf, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return buf[:0], false
		}
		<-q.ready
	}
}

// signal is the connection's signal handler (on its reader goroutine):
// it queues systemd's signals as events and drops the others.
func (c *Client) signal(_ *wireconn.Conn, m *wire.Message) {
	if e, ok := parseRaw(m); ok && (e.ev != nil || e.owner != nil) {
		c.queue.push(e)
	}
}

// parseRaw recognises systemd's signals (and NameOwnerChanged for its
// name). ok is false for anything else; a recognised signal with a bad
// body gives ok with no event.
func parseRaw(m *wire.Message) (e rawEvent, ok bool) {
	e.sender = m.Sender
	r := wire.NewReader(m.Body, m.BigEndian)
	switch {
	case m.Path == string(ManagerPath) && m.Interface == ManagerInterface:
		switch m.Member {
		case daemonapi.Systemd1ManagerSignalUnitNew:
			if s, err := daemonapi.DecodeSystemd1ManagerUnitNew(m); err == nil {
				e.ev = &UnitNew{ID: s.ID, Path: s.Unit}
			}
		case daemonapi.Systemd1ManagerSignalUnitRemoved:
			if s, err := daemonapi.DecodeSystemd1ManagerUnitRemoved(m); err == nil {
				e.ev = &UnitRemoved{ID: s.ID, Path: s.Unit}
			}
		case daemonapi.Systemd1ManagerSignalJobNew:
			if s, err := daemonapi.DecodeSystemd1ManagerJobNew(m); err == nil {
				e.ev = &JobNew{ID: s.ID, Job: s.Job, Unit: s.Unit}
			}
		case daemonapi.Systemd1ManagerSignalJobRemoved:
			if s, err := daemonapi.DecodeSystemd1ManagerJobRemoved(m); err == nil {
				e.ev = &JobRemoved{ID: s.ID, Job: s.Job, Unit: s.Unit, Result: s.Result}
			}
		case daemonapi.Systemd1ManagerSignalReloading:
			if s, err := daemonapi.DecodeSystemd1ManagerReloading(m); err == nil {
				e.ev = &Reloading{Active: s.Active}
			}
		default:
			return e, false
		}
		return e, true
	// PropertiesChanged is read in place, not with the generated decoder:
	// its a{sv} is passed on as bytes (see the top of this file).
	case m.Interface == PropertiesIface && m.Member == daemonapi.DBusPropertiesSignalPropertiesChanged:
		if !strings.HasPrefix(m.Path, UnitPathPrefix) && !strings.HasPrefix(m.Path, JobPathPrefix) {
			return e, false
		}
		if m.Signature != daemonapi.DBusPropertiesPropertiesChangedSig {
			return e, true
		}
		iface, err := r.String()
		if err != nil {
			return e, true
		}
		// Room for the properties at once: moved by 4 bytes of alignment
		// they are copied value by value, and growing the copy as it
		// goes cost more than the copy.
		w := wire.Writer{Buf: make([]byte, 0, r.Rest()+r.Rest()/8+8)}
		if err := wire.Copy(&w, &r, sigChangedProps); err != nil {
			return e, true
		}
		inval, err := r.Strings()
		if err != nil || r.Done() != nil {
			return e, true
		}
		path := dbus.ObjectPath(m.Path)
		unit, _ := UnitNameFromPath(path)
		e.ev = &PropertiesChanged{Path: path, Unit: unit, Interface: iface, Props: w.Buf, Invalidated: inval}
		return e, true
	case m.Path == string(daemonapi.DBusPath) && m.Interface == daemonapi.DBusInterface && m.Member == daemonapi.DBusSignalNameOwnerChanged:
		s, err := daemonapi.DecodeDBusNameOwnerChanged(m)
		if err != nil {
			return e, true
		}
		if s.Name != BusName {
			return e, false // not about systemd
		}
		e.owner = &s.NewOwner
		return e, true
	}
	return e, false
}
