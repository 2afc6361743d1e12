// SPDX-License-Identifier: Apache-2.0

// Package introspect holds the introspection XML of the standard D-Bus
// interfaces that both of the project's object servers (dbusrt on godbus,
// wireconn on our own connections) serve beside their own. The XML of
// each interface is generated from idl/systemd into internal/busnames;
// this package only puts the pieces together.
package introspect

import "github.com/bluechi-go/bluechi/internal/busnames"

// Header starts every introspection document.
const Header = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
`

// Peer describes org.freedesktop.DBus.Peer.
const Peer = busnames.DBusPeerXML

// Introspectable describes org.freedesktop.DBus.Introspectable.
const Introspectable = busnames.DBusIntrospectableXML

// Properties describes org.freedesktop.DBus.Properties.
const Properties = busnames.DBusPropertiesXML

// BusShim describes the part of org.freedesktop.DBus a peer link answers
// (Hello, AddMatch, RemoveMatch), so bus clients can use it as a bus.
const BusShim = ` <interface name="` + busnames.DBusInterface + "\">\n" +
	busnames.DBusHelloXML + busnames.DBusAddMatchXML + busnames.DBusRemoveMatchXML +
	" </interface>\n"
