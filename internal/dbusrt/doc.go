// Package dbusrt is the small runtime under the generated D-Bus layer in
// gen/bluechi: it serves exported objects on exact paths (with
// org.freedesktop.DBus.Properties and Introspectable), carries the caller of a
// method call in a context, routes signals to subscribers on bus and
// peer-to-peer connections alike, and names the standard D-Bus errors.
//
// Hand-written code rarely uses it directly; the generated Export*, New*Client
// and Emit* helpers do.
package dbusrt
