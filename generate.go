// SPDX-License-Identifier: Apache-2.0

// Package bluechi is a Go implementation of Eclipse BlueChi. The D-Bus API is
// defined by the XML in idl/; `go generate` turns it into gen/bluechi and
// gen/docs/api.md with the generator in tools/dbusgen. idl/systemd holds the
// part of systemd's D-Bus API the agent calls and of the message bus's own
// interface (org.freedesktop.DBus) the daemons' bus connections call: it
// only feeds the daemons' generated clients in internal/daemonapi.
package bluechi

//go:generate go run ./tools/dbusgen -idl idl -out gen/bluechi -pkg bluechi -api internal/daemonapi -docs gen/docs/api.md -tests internal/apitest/roundtrip_gen_test.go -client-idl idl/systemd -names internal/busnames
