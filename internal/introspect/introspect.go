// SPDX-License-Identifier: Apache-2.0

// Package introspect holds what both of the project's object servers
// (dbusrt on godbus, wireconn on our own connections) put around the
// introspection XML of the standard interfaces they serve beside their
// own: the XML of each interface is generated from idl/systemd into
// internal/busnames, and this package adds the document header and the
// bus shim's part of org.freedesktop.DBus.
package introspect

import "github.com/bluechi-go/bluechi/internal/busnames"

// Header starts every introspection document.
const Header = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
`

// BusShim describes the part of org.freedesktop.DBus a peer link answers
// (Hello, AddMatch, RemoveMatch), so bus clients can use it as a bus.
const BusShim = ` <interface name="` + busnames.DBusInterface + "\">\n" +
	busnames.DBusHelloXML + busnames.DBusAddMatchXML + busnames.DBusRemoveMatchXML +
	" </interface>\n"
