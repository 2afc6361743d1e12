// SPDX-License-Identifier: Apache-2.0

// Package dbusrt is the daemons' runtime under the generated D-Bus layer in
// internal/daemonapi: it serves exported objects on exact paths (with
// org.freedesktop.DBus.Properties and Introspectable), in wire order on the
// daemons' own bus connections (internal/wireconn, see ServeWire) and as a
// godbus Handler on godbus connections; it carries the caller of a method
// call in a context, makes godbus calls for the generated clients, bridges
// variant-carrying bodies to godbus's public codec, and names the standard
// D-Bus errors. Signals are routed
// by the public client package gen/bluechi, so that the daemons' and the
// public clients' subscriptions of one connection share one router.
//
// Hand-written code rarely uses it directly; the generated Export*, New*Client
// and Emit* helpers do.
package dbusrt
