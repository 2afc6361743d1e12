// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// TestSignalsOnlyFromTheOwner: a client's subscription to the controller's
// signals (sender org.eclipse.bluechi) takes them only from the name's
// current owner. Another bus client can send a signal to the subscriber
// directly, past the bus's match rules, with the controller's path and
// interface; it is dropped, as is the signal of an owner that gave the name
// up, while the new owner's are taken.
func TestSignalsOnlyFromTheOwner(t *testing.T) {
	bus := testbus.Start(t)
	connect := func() *dbus.Conn {
		conn, _, err := dbusrt.ConnectBus(bus.Address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	own := func(conn *dbus.Conn) {
		t.Helper()
		r, err := conn.RequestName(bluechi.ControllerBusName, dbus.NameFlagDoNotQueue)
		if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("RequestName: %v %v", r, err)
		}
	}
	owner, stranger, client := connect(), connect(), connect()
	own(owner)

	got := make(chan uint32, 16)
	sub, err := bluechi.NewControllerClient(client, bluechi.ControllerBusName, bluechi.ControllerPath).
		OnJobRemoved(context.Background(), func(s *bluechi.ControllerJobRemovedSignal) { got <- s.ID })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	jobRemoved := func(id uint32) []any {
		return []any{id, dbus.ObjectPath("/org/eclipse/bluechi/job/1"), "node", "unit.service", "done"}
	}
	// broadcast sends JobRemoved(id) as the controller does.
	broadcast := func(conn *dbus.Conn, id uint32) {
		t.Helper()
		if err := conn.Emit(bluechi.ControllerPath, bluechi.ControllerInterface+"."+bluechi.ControllerSignalJobRemoved, jobRemoved(id)...); err != nil {
			t.Fatal(err)
		}
	}
	// unicast sends JobRemoved(id) to the client alone, then waits until
	// the bus has routed it (its messages are handled in order).
	unicast := func(conn *dbus.Conn, id uint32) {
		t.Helper()
		body := jobRemoved(id)
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(bluechi.ControllerPath),
			dbus.FieldInterface:   dbus.MakeVariant(bluechi.ControllerInterface),
			dbus.FieldMember:      dbus.MakeVariant(bluechi.ControllerSignalJobRemoved),
			dbus.FieldDestination: dbus.MakeVariant(client.Names()[0]),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body}
		if call := conn.Send(msg, nil); call.Err != nil {
			t.Fatal(call.Err)
		}
		if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err; err != nil {
			t.Fatal(err)
		}
	}
	// expect reads the ids that arrive up to and including the marker.
	expect := func(marker uint32, want ...uint32) {
		t.Helper()
		var ids []uint32
		for {
			select {
			case id := <-got:
				ids = append(ids, id)
				if id != marker {
					continue
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no marker %d; got %v", marker, ids)
			}
			break
		}
		if len(ids) != len(want) {
			t.Fatalf("got JobRemoved %v, want %v", ids, want)
		}
		for i := range ids {
			if ids[i] != want[i] {
				t.Fatalf("got JobRemoved %v, want %v", ids, want)
			}
		}
	}

	unicast(stranger, 1) // forged: dropped
	unicast(owner, 2)    // the owner's, even sent directly: taken
	broadcast(owner, 3)  // the marker
	expect(3, 2, 3)

	// The name changes hands.
	if _, err := owner.ReleaseName(bluechi.ControllerBusName); err != nil {
		t.Fatal(err)
	}
	next := connect()
	own(next)
	unicast(owner, 4) // the former owner: dropped
	broadcast(next, 5)
	expect(5, 5)
}
