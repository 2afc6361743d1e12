// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"context"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// TestSimpleRepliesMatchGodbus: a handler's reply of simple types, sent by
// a tapped server with internal/wire, reaches a client as the same message
// body as godbus's reply from a plain server; other replies still go
// through godbus.
func TestSimpleRepliesMatchGodbus(t *testing.T) {
	bus := testbus.Start(t)
	ctx := context.Background()
	iface := &dbusrt.Interface{Name: "org.example.Rep", XML: `<interface name="org.example.Rep"/>`, Methods: []dbusrt.Method{
		{Name: "Echo", InSig: "souibas", Call: func(_ context.Context, body []any) ([]any, error) { return body, nil }},
		{Name: "Path", InSig: "", Call: func(context.Context, []any) ([]any, error) { return []any{dbus.ObjectPath("/org/x/job/7")}, nil }},
		{Name: "None", InSig: "", Call: func(context.Context, []any) ([]any, error) { return nil, nil }},
		{Name: "Map", InSig: "s", Call: func(_ context.Context, body []any) ([]any, error) {
			return []any{map[string]uint32{body[0].(string): 1}}, nil
		}},
	}}
	plain, plainSrv, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	tapped, tappedSrv, err := dbusrt.ConnectBusTap(ctx, bus.Address, &transport.Tap{}, dbusrt.Ordered)
	if err != nil {
		t.Fatal(err)
	}
	defer tapped.Close()
	for _, s := range []*dbusrt.Server{plainSrv, tappedSrv} {
		if _, err := s.Export("/rep", iface, nil); err != nil {
			t.Fatal(err)
		}
	}
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	calls := []struct {
		member string
		args   []any
		simple bool
	}{
		{"Echo", []any{"x", dbus.ObjectPath("/p"), uint32(7), int32(-2), true, []string{"a", "b"}}, true},
		{"Echo", []any{"", dbus.ObjectPath("/"), uint32(0), int32(0), false, []string{}}, true},
		{"Path", nil, true},
		{"None", nil, true},
		{"Map", []any{"k"}, false},
	}
	for _, c := range calls {
		want := client.Object(dbusrt.UniqueName(plain), "/rep").CallWithContext(ctx, "org.example.Rep."+c.member, 0, c.args...)
		before := dbusrt.SimpleReplies.Load()
		got := client.Object(dbusrt.UniqueName(tapped), "/rep").CallWithContext(ctx, "org.example.Rep."+c.member, 0, c.args...)
		if want.Err != nil || got.Err != nil {
			t.Fatalf("%s: errors %v (godbus), %v (tapped)", c.member, want.Err, got.Err)
		}
		if simple := dbusrt.SimpleReplies.Load() > before; simple != c.simple {
			t.Errorf("%s: encoded by internal/wire: %v", c.member, simple)
		}
		if diff := cmp.Diff(want.Body, got.Body); diff != "" {
			t.Errorf("%s: reply differs (-godbus +tapped):\n%s", c.member, diff)
		}
	}
}
