// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"context"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// An overridden method's RawReply reaches the caller as the values it
// encodes on a tapped connection, whether calls are dispatched in order or
// by godbus; without a tap the call fails. Other methods are untouched.
func TestRawReply(t *testing.T) {
	bus := testbus.Start(t)
	ctx := context.Background()
	var w wire.Writer
	arr := w.BeginArray(8)
	for _, s := range []string{"a", "bc"} {
		w.Align(8)
		w.String(s)
		w.Uint32(uint32(len(s)))
	}
	w.EndArray(arr)
	raw := dbusrt.RawReply{Signature: "a(su)", Body: w.Buf}
	type pair struct {
		S string
		U uint32
	}
	want := []pair{{"a", 1}, {"bc", 2}}
	iface := &dbusrt.Interface{Name: "org.example.Raw", XML: `<interface name="org.example.Raw"/>`, Methods: []dbusrt.Method{
		{Name: "List", InSig: "", Call: func(context.Context, []any) ([]any, error) { return []any{[]pair{{"godbus", 0}}}, nil }},
		{Name: "Echo", InSig: "s", Call: func(_ context.Context, body []any) ([]any, error) { return body, nil }},
	}}
	connect := map[string]func() (*dbus.Conn, *dbusrt.Server, error){
		"tapped": func() (*dbus.Conn, *dbusrt.Server, error) {
			return dbusrt.ConnectBusTap(ctx, bus.Address, &transport.Tap{}, dbusrt.Ordered)
		},
		"tapped-godbus": func() (*dbus.Conn, *dbusrt.Server, error) {
			return dbusrt.ConnectBusTap(ctx, bus.Address, &transport.Tap{})
		},
		"ordered-no-tap": func() (*dbus.Conn, *dbusrt.Server, error) { return dbusrt.ConnectBus(bus.Address, dbusrt.Ordered) },
		"godbus-no-tap":  func() (*dbus.Conn, *dbusrt.Server, error) { return dbusrt.ConnectBus(bus.Address) },
	}
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for name, dial := range connect {
		t.Run(name, func(t *testing.T) {
			conn, srv, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := srv.Export("/raw", iface, nil); err != nil {
				t.Fatal(err)
			}
			srv.Override("/raw", "org.example.Raw", "List", "", func(context.Context, []any) ([]any, error) { return []any{raw}, nil })
			obj := client.Object(dbusrt.UniqueName(conn), "/raw")
			for _, ifaceName := range []string{"org.example.Raw.List", "List"} { // with and without interface
				var got []pair
				err := obj.CallWithContext(ctx, ifaceName, 0).Store(&got)
				if strings.HasSuffix(name, "no-tap") {
					if dbusrt.ErrorName(err) != dbusrt.ErrFailed {
						t.Fatalf("raw reply without a tap: %v", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatal(diff)
				}
			}
			var echo string
			if err := obj.CallWithContext(ctx, "org.example.Raw.Echo", 0, "x").Store(&echo); err != nil || echo != "x" {
				t.Fatalf("Echo = %q, %v", echo, err)
			}
			if err := obj.CallWithContext(ctx, "org.example.Raw.List", 0, "extra").Err; dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
				t.Fatalf("List with an argument: %v", err)
			}
		})
	}
}
