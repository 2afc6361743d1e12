// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"bytes"
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/bluechi-go/bluechi/internal/busnames"
	"github.com/bluechi-go/bluechi/internal/introspect"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Standard error names used in replies.
const (
	ErrUnknownMethod    = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrUnknownObject    = "org.freedesktop.DBus.Error.UnknownObject"
	ErrUnknownInterface = "org.freedesktop.DBus.Error.UnknownInterface"
	ErrUnknownProperty  = "org.freedesktop.DBus.Error.UnknownProperty"
	ErrInvalidArgs      = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrFailed           = "org.freedesktop.DBus.Error.Failed"
	ErrLimitsExceeded   = "org.freedesktop.DBus.Error.LimitsExceeded"
)

// Export serves ifc on path, replacing an interface of the same name
// there. It may be called at any time; calls already dispatched are not
// affected.
func (c *Conn) Export(path string, ifc *Interface) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.objects[path]
	o := &object{}
	if old != nil {
		o.ifaces = slices.DeleteFunc(slices.Clone(old.ifaces), func(i *Interface) bool { return i.Name == ifc.Name })
	}
	o.ifaces = append(o.ifaces, ifc)
	c.objects[path] = o
}

// Unexport stops serving the interface called name on path.
func (c *Conn) Unexport(path, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.objects[path]
	if old == nil {
		return
	}
	o := &object{ifaces: slices.DeleteFunc(slices.Clone(old.ifaces), func(i *Interface) bool { return i.Name == name })}
	if len(o.ifaces) == 0 {
		delete(c.objects, path)
	} else {
		c.objects[path] = o
	}
}

// serveCall answers a method call: the standard interfaces here, the rest
// by the exported interfaces. The answers given here wait for the calls
// queued before them (Serve), so that every reply leaves in wire order.
func (c *Conn) serveCall(m *wire.Message) {
	if c.opts.MethodCall != nil && m.Interface != busnames.DBusPeerInterface {
		c.opts.MethodCall(c, m)
		return
	}
	if ifc := c.handlerOf(m); ifc != nil {
		ifc.Call(c, m)
		return
	}
	if c.queueBusy() {
		held := *m // the header strings are copies already
		held.Body = bytes.Clone(m.Body)
		c.Serve(CallOf(m), func(context.Context) { c.answer(&held) })
		return
	}
	c.answer(m)
}

// handlerOf returns the exported interface that serves m, or nil when
// the answer is the connection's own (a standard interface or an error).
func (c *Conn) handlerOf(m *wire.Message) *Interface {
	switch {
	case m.Interface == busnames.DBusPeerInterface || m.Interface == busnames.DBusIntrospectableInterface || m.Interface == busnames.DBusPropertiesInterface:
		return nil
	case c.opts.BusShim && m.Path == busnames.DBusPath:
		return nil
	}
	c.mu.Lock()
	o := c.objects[m.Path]
	c.mu.Unlock()
	if o == nil {
		return nil
	}
	for _, ifc := range o.ifaces {
		if m.Interface != "" && ifc.Name != m.Interface {
			continue
		}
		if slices.Contains(ifc.Methods, m.Member) {
			return ifc
		}
		if m.Interface != "" {
			return nil
		}
	}
	return nil
}

// queueBusy reports whether calls are queued or running (Serve).
func (c *Conn) queueBusy() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.queue.running
}

// answer is serveCall's own part: the standard interfaces, and the errors
// for calls nothing serves.
func (c *Conn) answer(m *wire.Message) {
	switch {
	case m.Interface == busnames.DBusPeerInterface:
		switch m.Member {
		case busnames.DBusPeerMethodPing:
			c.Reply(m, "", nil)
		case busnames.DBusPeerMethodGetMachineID:
			c.Reply(m, busnames.DBusPeerGetMachineIDOutSig, stringBody(machineID()))
		default:
			c.ReplyError(m, ErrUnknownMethod, "Unknown method '"+m.Member+"' of "+busnames.DBusPeerInterface)
		}
		return
	case c.opts.BusShim && m.Path == busnames.DBusPath && m.Interface != busnames.DBusIntrospectableInterface:
		if m.Interface == busnames.DBusInterface || m.Interface == "" {
			switch m.Member {
			case busnames.DBusMethodHello:
				c.Reply(m, busnames.DBusHelloOutSig, stringBody(":1.0"))
				return
			case busnames.DBusMethodAddMatch, busnames.DBusMethodRemoveMatch:
				c.Reply(m, "", nil)
				return
			}
		}
		c.ReplyError(m, ErrUnknownMethod, "Unknown method '"+m.Member+"'")
		return
	case m.Interface == busnames.DBusIntrospectableInterface:
		if m.Member != busnames.DBusIntrospectableMethodIntrospect {
			c.ReplyError(m, ErrUnknownMethod, "Unknown method '"+m.Member+"' of "+busnames.DBusIntrospectableInterface)
			return
		}
		if xml, ok := c.introspect(m.Path); ok {
			c.Reply(m, busnames.DBusIntrospectableIntrospectOutSig, stringBody(xml))
		} else {
			c.ReplyError(m, ErrUnknownObject, "Unknown object '"+m.Path+"'")
		}
		return
	}
	c.mu.Lock()
	o := c.objects[m.Path]
	c.mu.Unlock()
	if o == nil {
		c.ReplyError(m, ErrUnknownObject, "Unknown object '"+m.Path+"'")
		return
	}
	if m.Interface == busnames.DBusPropertiesInterface {
		c.serveProperties(o, m)
		return
	}
	for _, ifc := range o.ifaces {
		if m.Interface != "" && ifc.Name != m.Interface {
			continue
		}
		if slices.Contains(ifc.Methods, m.Member) {
			ifc.Call(c, m)
			return
		}
		if m.Interface != "" {
			c.ReplyError(m, ErrUnknownMethod, "Unknown method '"+m.Member+"' of "+m.Interface)
			return
		}
	}
	if m.Interface != "" {
		c.ReplyError(m, ErrUnknownInterface, "Object does not implement the interface '"+m.Interface+"'")
		return
	}
	c.ReplyError(m, ErrUnknownMethod, "Unknown method '"+m.Member+"'")
}

// serveProperties answers org.freedesktop.DBus.Properties: the interfaces
// served here have no properties (the internal interfaces declare none),
// so GetAll is empty and Get and Set fail.
func (c *Conn) serveProperties(o *object, m *wire.Message) {
	r := wire.NewReader(m.Body, m.BigEndian)
	iface, err := r.String()
	if err != nil || !strings.HasPrefix(m.Signature, "s") {
		c.ReplyError(m, ErrInvalidArgs, "Invalid arguments for "+m.Member)
		return
	}
	known := iface == "" || slices.ContainsFunc(o.ifaces, func(i *Interface) bool { return i.Name == iface }) ||
		iface == busnames.DBusPeerInterface || iface == busnames.DBusIntrospectableInterface || iface == busnames.DBusPropertiesInterface
	switch m.Member {
	case busnames.DBusPropertiesMethodGetAll:
		if m.Signature != busnames.DBusPropertiesGetAllInSig {
			c.ReplyError(m, ErrInvalidArgs, "Invalid arguments for GetAll")
		} else if !known {
			c.ReplyError(m, ErrUnknownInterface, "Object does not implement the interface '"+iface+"'")
		} else {
			c.Reply(m, busnames.DBusPropertiesGetAllOutSig, make([]byte, 8)) // empty array, padded to its elements
		}
	case busnames.DBusPropertiesMethodGet, busnames.DBusPropertiesMethodSet:
		prop, _ := r.String()
		if !known {
			c.ReplyError(m, ErrUnknownInterface, "Object does not implement the interface '"+iface+"'")
		} else {
			c.ReplyError(m, ErrUnknownProperty, "Unknown property '"+prop+"'")
		}
	default:
		c.ReplyError(m, ErrUnknownMethod, "Unknown method '"+m.Member+"' of "+busnames.DBusPropertiesInterface)
	}
}

// introspect returns the introspection document of path: its interfaces
// and its direct children. ok is false for a path with neither.
func (c *Conn) introspect(path string) (string, bool) {
	c.mu.Lock()
	o := c.objects[path]
	prefix := strings.TrimSuffix(path, "/") + "/"
	kids := map[string]bool{}
	for p := range c.objects {
		if rest, ok := strings.CutPrefix(p, prefix); ok && rest != "" {
			kid, _, _ := strings.Cut(rest, "/")
			kids[kid] = true
		}
	}
	c.mu.Unlock()
	shim := c.opts.BusShim && path == busnames.DBusPath
	if o == nil && len(kids) == 0 && !shim {
		return "", false
	}
	var b strings.Builder
	b.WriteString(introspect.Header + "<node>\n")
	b.WriteString(busnames.DBusPeerXML + busnames.DBusIntrospectableXML)
	if o != nil {
		b.WriteString(busnames.DBusPropertiesXML)
		for _, ifc := range o.ifaces {
			b.WriteString(ifc.XML)
		}
	}
	if shim {
		b.WriteString(introspect.BusShim)
	}
	names := make([]string, 0, len(kids))
	for k := range kids {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(` <node name="` + k + `"/>` + "\n")
	}
	b.WriteString("</node>\n")
	return b.String(), true
}

var (
	machineIDOnce sync.Once
	machineIDText string
)

// machineID is the host's machine id, as Peer.GetMachineId returns it.
func machineID() string {
	machineIDOnce.Do(func() {
		for _, f := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
			if b, err := os.ReadFile(f); err == nil {
				if id := strings.TrimSpace(string(b)); wire.ValidString(id) && id != "" {
					machineIDText = id
					return
				}
			}
		}
	})
	return machineIDText
}
