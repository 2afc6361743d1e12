// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// TestInvokeMatchesGodbus: a client call through Invoke returns the same
// body and errors over a tapped connection (raw path) as over a plain one
// (godbus), for simple signatures and others, and ends with its context.
func TestInvokeMatchesGodbus(t *testing.T) {
	bus := testbus.Start(t)
	ctx := context.Background()
	block := make(chan struct{})
	defer close(block)
	iface := &dbusrt.Interface{Name: "org.example.Inv", XML: `<interface name="org.example.Inv"/>`, Methods: []dbusrt.Method{
		{Name: "Echo", InSig: "soubias", Call: func(_ context.Context, body []any) ([]any, error) { return body, nil }},
		{Name: "Path", InSig: "", Call: func(context.Context, []any) ([]any, error) { return []any{dbus.ObjectPath("/a/b")}, nil }},
		{Name: "Map", InSig: "s", Call: func(_ context.Context, body []any) ([]any, error) {
			return []any{map[string]uint32{body[0].(string): 1}}, nil
		}},
		{Name: "Fail", InSig: "", Call: func(context.Context, []any) ([]any, error) {
			return nil, dbusrt.NewError(dbusrt.ErrInvalidArgs, "no good")
		}},
		{Name: "Block", InSig: "", Call: func(context.Context, []any) ([]any, error) { <-block; return nil, nil }},
		{Name: "Big", InSig: "", Call: func(context.Context, []any) ([]any, error) { return []any{strings.Repeat("b", 3<<20)}, nil }},
	}}
	server, srv, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := srv.Export("/inv", iface, nil); err != nil {
		t.Fatal(err)
	}
	tapped, _, err := dbusrt.ConnectBusTap(ctx, bus.Address, &transport.Tap{}, dbusrt.Ordered)
	if err != nil {
		t.Fatal(err)
	}
	defer tapped.Close()
	if !transport.TapOf(tapped).CanCall() {
		t.Fatal("the tapped connection cannot make raw calls")
	}
	plain, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	dest := dbusrt.UniqueName(server)
	invoke := func(conn *dbus.Conn, ctx context.Context, member, outSig string, args ...any) ([]any, error) {
		return dbusrt.Invoke(ctx, conn, conn.Object(dest, "/inv"), dest, "/inv", "org.example.Inv", member, outSig, args...)
	}
	calls := []struct {
		member, outSig string
		args           []any
	}{
		{"Echo", "soubias", []any{"x", dbus.ObjectPath("/p"), uint32(7), true, int32(-2), []string{"a", "b"}}},
		{"Echo", "soubias", []any{"", dbus.ObjectPath("/"), uint32(0), false, int32(0), []string{}}},
		{"Path", "o", nil},
		{"Map", "a{su}", []any{"k"}},
		{"Fail", "", nil},
		{"Big", "s", nil}, // a reply past the tap's size for signals
	}
	for _, c := range calls {
		want, wantErr := invoke(plain, ctx, c.member, c.outSig, c.args...)
		before := dbusrt.RawCalls.Load()
		got, gotErr := invoke(tapped, ctx, c.member, c.outSig, c.args...)
		if raw := dbusrt.RawCalls.Load() > before; raw != (c.member != "Map") {
			t.Errorf("%s sent raw: %v", c.member, raw)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s body (-godbus +tapped):\n%s", c.member, diff)
		}
		if diff := cmp.Diff(wantErr, gotErr, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) || a.Error() == b.Error() })); diff != "" {
			t.Errorf("%s error (-godbus +tapped):\n%s", c.member, diff)
		}
	}
	var e dbus.Error
	if _, err := invoke(tapped, ctx, "Fail", ""); !errors.As(err, &e) || e.Name != dbusrt.ErrInvalidArgs {
		t.Errorf("Fail: %#v, want a dbus.Error named %s", err, dbusrt.ErrInvalidArgs)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := invoke(tapped, short, "Block", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Block past the deadline: %v", err)
	}
}
