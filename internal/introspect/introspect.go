// SPDX-License-Identifier: Apache-2.0

// Package introspect holds the introspection XML of the standard D-Bus
// interfaces that both of the project's object servers (dbusrt on godbus,
// wireconn on our own connections) serve beside their own.
package introspect

// Header starts every introspection document.
const Header = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
`

// Peer describes org.freedesktop.DBus.Peer.
const Peer = ` <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg name="machine_uuid" type="s" direction="out"/>
  </method>
 </interface>
`

// Introspectable describes org.freedesktop.DBus.Introspectable.
const Introspectable = ` <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
`

// Properties describes org.freedesktop.DBus.Properties.
const Properties = ` <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" type="s" direction="in"/>
   <arg name="property_name" type="s" direction="in"/>
   <arg name="value" type="v" direction="out"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" type="s" direction="in"/>
   <arg name="props" type="a{sv}" direction="out"/>
  </method>
  <method name="Set">
   <arg name="interface_name" type="s" direction="in"/>
   <arg name="property_name" type="s" direction="in"/>
   <arg name="value" type="v" direction="in"/>
  </method>
  <signal name="PropertiesChanged">
   <arg name="interface_name" type="s"/>
   <arg name="changed_properties" type="a{sv}"/>
   <arg name="invalidated_properties" type="as"/>
  </signal>
 </interface>
`

// BusShim describes the part of org.freedesktop.DBus a peer link answers
// (Hello, AddMatch, RemoveMatch), so bus clients can use it as a bus.
const BusShim = ` <interface name="org.freedesktop.DBus">
  <method name="Hello">
   <arg name="unique_name" type="s" direction="out"/>
  </method>
  <method name="AddMatch">
   <arg name="rule" type="s" direction="in"/>
  </method>
  <method name="RemoveMatch">
   <arg name="rule" type="s" direction="in"/>
  </method>
 </interface>
`
