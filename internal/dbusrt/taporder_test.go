// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// TestTappedCallsKeepOrder: on an ordered server whose calls come from the
// tap, a call too big for the tap (decoded by godbus) still runs before
// the small calls sent after it.
func TestTappedCallsKeepOrder(t *testing.T) {
	bus := testbus.Start(t)
	ctx := context.Background()
	var (
		mu  sync.Mutex
		got []string
	)
	iface := &dbusrt.Interface{Name: "org.example.Order", XML: `<interface name="org.example.Order"/>`, Methods: []dbusrt.Method{
		{Name: "Put", InSig: "s", Call: func(_ context.Context, body []any) ([]any, error) {
			s := body[0].(string)
			if len(s) > 100 {
				s = "big"
			}
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
			return nil, nil
		}},
	}}
	conn, srv, err := dbusrt.ConnectBusTap(ctx, bus.Address, &transport.Tap{}, dbusrt.Ordered)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := srv.Export("/order", iface, nil); err != nil {
		t.Fatal(err)
	}
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	obj := client.Object(dbusrt.UniqueName(conn), "/order")
	var want []string
	for round := 0; round < 3; round++ {
		want = append(want, "big")
		obj.Go("org.example.Order.Put", dbus.FlagNoReplyExpected, nil, strings.Repeat("x", 3<<20))
		for i := 0; i < 5; i++ {
			s := fmt.Sprintf("small %d.%d", round, i)
			want = append(want, s)
			obj.Go("org.example.Order.Put", dbus.FlagNoReplyExpected, nil, s)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("calls ran as %q, want %q", got, want)
	}
}
