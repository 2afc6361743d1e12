// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"testing"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// TestParseNameOwnerChanged: the bus's NameOwnerChanged about systemd's
// name gives its new owner; about another name it is not systemd's; with
// a bad body it gives nothing.
func TestParseNameOwnerChanged(t *testing.T) {
	msg := func(sig string, args ...string) *wire.Message {
		var w wire.Writer
		for _, a := range args {
			w.String(a)
		}
		return &wire.Message{Type: wire.TypeSignal, Sender: daemonapi.DBusBusName, Path: string(daemonapi.DBusPath),
			Interface: daemonapi.DBusInterface, Member: daemonapi.DBusSignalNameOwnerChanged, Signature: sig, Body: w.Buf}
	}
	e, ok := parseRaw(msg(daemonapi.DBusNameOwnerChangedSig, BusName, ":1.1", ":1.7"))
	if !ok || e.owner == nil || *e.owner != ":1.7" || e.sender != daemonapi.DBusBusName {
		t.Fatalf("about systemd: %+v, %v", e, ok)
	}
	if e, ok := parseRaw(msg(daemonapi.DBusNameOwnerChangedSig, "org.example.Other", "", ":1.7")); ok || e.owner != nil {
		t.Fatalf("about another name: %+v, %v", e, ok)
	}
	if e, _ := parseRaw(msg("ss", BusName, ":1.1")); e.owner != nil || e.ev != nil {
		t.Fatalf("bad signature: %+v", e)
	}
	if e, _ := parseRaw(msg(daemonapi.DBusNameOwnerChangedSig, BusName, ":1.1")); e.owner != nil || e.ev != nil {
		t.Fatalf("short body: %+v", e)
	}
}
