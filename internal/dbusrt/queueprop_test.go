// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// TestQueuePropertyMatchesGodbus shows that QueueProperty on a tapped
// connection sends, once flushed, the PropertiesChanged signal SetProperty
// sends through godbus, for every simple type and for an invalidated
// property; and that a value of another type still goes out at once.
func TestQueuePropertyMatchesGodbus(t *testing.T) {
	bus := testbus.Start(t)
	ctx := context.Background()
	iface := &dbusrt.Interface{Name: "org.example.Props", XML: `<interface name="org.example.Props"/>`, Properties: []dbusrt.Property{
		{Name: "S", Sig: "s", Emit: dbusrt.EmitTrue},
		{Name: "O", Sig: "o", Emit: dbusrt.EmitTrue},
		{Name: "U", Sig: "u", Emit: dbusrt.EmitTrue},
		{Name: "I", Sig: "i", Emit: dbusrt.EmitTrue},
		{Name: "B", Sig: "b", Emit: dbusrt.EmitTrue},
		{Name: "T", Sig: "t", Emit: dbusrt.EmitTrue},
		{Name: "Gone", Sig: "s", Emit: dbusrt.EmitInvalidates},
	}}
	initial := map[string]any{"S": "", "O": dbus.ObjectPath("/"), "U": uint32(0), "I": int32(0), "B": false, "T": uint64(0), "Gone": ""}
	plain, plainSrv, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	tap := &transport.Tap{}
	tapped, tappedSrv, err := dbusrt.ConnectBusTap(ctx, bus.Address, tap, dbusrt.Ordered)
	if err != nil {
		t.Fatal(err)
	}
	defer tapped.Close()
	plainObj, err := plainSrv.Export("/p", iface, initial)
	if err != nil {
		t.Fatal(err)
	}
	tappedObj, err := tappedSrv.Export("/p", iface, initial)
	if err != nil {
		t.Fatal(err)
	}
	watcher, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if err := watcher.AddMatchSignal(dbus.WithMatchInterface(dbusrt.PropertiesInterface)); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 16)
	watcher.Signal(signals)
	next := func(sender string) *dbus.Signal {
		t.Helper()
		select {
		case s := <-signals:
			if s.Sender != sender {
				t.Fatalf("signal from %s, want %s", s.Sender, sender)
			}
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no PropertiesChanged")
			return nil
		}
	}
	changes := []struct {
		name  string
		value any
	}{
		{"S", "running"}, {"O", dbus.ObjectPath("/a/b")}, {"U", uint32(7)}, {"I", int32(-3)}, {"B", true},
		{"T", uint64(1 << 40)}, // not simple: sent at once through godbus
		{"Gone", "x"},
	}
	for _, c := range changes {
		if err := plainObj.SetProperty(c.name, c.value); err != nil {
			t.Fatal(err)
		}
		want := next(dbusrt.UniqueName(plain))
		before := dbusrt.QueuedProps.Load()
		if err := tappedObj.QueueProperty(c.name, c.value); err != nil {
			t.Fatal(err)
		}
		if queued := dbusrt.QueuedProps.Load() > before; queued != (c.name != "T") {
			t.Errorf("%s queued raw: %v", c.name, queued)
		}
		if err := tap.Flush(); err != nil {
			t.Fatal(err)
		}
		got := next(dbusrt.UniqueName(tapped))
		if diff := cmp.Diff(want.Body, got.Body, cmp.AllowUnexported(dbus.Variant{}, dbus.Signature{})); diff != "" {
			t.Errorf("%s: PropertiesChanged differs (-godbus +queued):\n%s", c.name, diff)
		}
		if got.Name != want.Name || got.Path != want.Path {
			t.Errorf("%s: got %s on %s, want %s on %s", c.name, got.Name, got.Path, want.Name, want.Path)
		}
		if v := tappedObj.Property(c.name).Value(); !cmp.Equal(v, c.value) {
			t.Errorf("%s: value %v after QueueProperty, want %v", c.name, v, c.value)
		}
	}
	// An unchanged value sends nothing: the next signal is the plain one.
	if err := tappedObj.QueueProperty("S", "running"); err != nil {
		t.Fatal(err)
	}
	if err := tap.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := plainObj.SetProperty("S", "done"); err != nil {
		t.Fatal(err)
	}
	next(dbusrt.UniqueName(plain))
}
