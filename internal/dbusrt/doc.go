// SPDX-License-Identifier: Apache-2.0

// Package dbusrt is the daemons' runtime under the generated D-Bus layer in
// internal/daemonapi: it serves exported objects on exact paths (with
// org.freedesktop.DBus.Properties and Introspectable), carries the caller of a
// method call in a context, makes the daemons' calls (ordered, and raw on a
// tapped connection), and names the standard D-Bus errors. Signals are routed
// by the public client package gen/bluechi, so that the daemons' and the
// public clients' subscriptions of one connection share one router.
//
// Hand-written code rarely uses it directly; the generated Export*, New*Client
// and Emit* helpers do.
package dbusrt
