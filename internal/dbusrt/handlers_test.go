// SPDX-License-Identifier: Apache-2.0

package dbusrt_test

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// goroutineID reads the running goroutine's number from its stack header
// ("goroutine 42 [running]:").
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// TestOrderedHandlersReused: calls that come one after another on an
// ordered connection run on one handler goroutine (its stack is grown
// already), a call that arrives while a handler waits on a released turn
// gets a goroutine of its own, and no handler goroutine outlives the
// connection.
func TestOrderedHandlersReused(t *testing.T) {
	bus := testbus.Start(t)
	ctx := context.Background()
	block := make(chan struct{})
	waiter := make(chan uint64, 1) // the goroutine of the handler waiting on block
	iface := &dbusrt.Interface{Name: "org.example.Handlers", XML: `<interface name="org.example.Handlers"/>`, Methods: []dbusrt.Method{
		{Name: "Who", Call: func(context.Context, []any) ([]any, error) {
			return []any{goroutineID()}, nil
		}},
		{Name: "Wait", Call: func(ctx context.Context, _ []any) ([]any, error) {
			dbusrt.Release(ctx)
			waiter <- goroutineID()
			<-block
			return []any{goroutineID()}, nil
		}},
	}}
	base := runtime.NumGoroutine()
	conn, srv, err := dbusrt.ConnectBusTap(ctx, bus.Address, &transport.Tap{}, dbusrt.Ordered)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Export("/h", iface, nil); err != nil {
		t.Fatal(err)
	}
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	obj := client.Object(dbusrt.UniqueName(conn), "/h")
	who := func() uint64 {
		var id uint64
		if err := obj.Call("org.example.Handlers.Who", 0).Store(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first, changes := who(), 0
	for i := 0; i < 20; i++ {
		if id := who(); id != first {
			// A handler counts itself idle just before it waits, so
			// a call right after a reply may rarely find none waiting.
			changes++
			first = id
		}
	}
	if changes > 5 {
		t.Fatalf("20 calls in a row ran on %d different goroutines", changes+1)
	}
	waiting := obj.Go("org.example.Handlers.Wait", 0, nil)
	waitID := <-waiter
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var id uint64
	if err := obj.CallWithContext(cctx, "org.example.Handlers.Who", 0).Store(&id); err != nil {
		t.Fatalf("a call behind a handler waiting on a released turn: %v", err)
	}
	if id == waitID {
		t.Fatal("a call ran on the goroutine of a handler that had not returned")
	}
	close(block)
	if call := <-waiting.Done; call.Err != nil {
		t.Fatal(call.Err)
	}
	conn.Close()
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base+2; time.Sleep(5 * time.Millisecond) {
		// base+2: the client connection's reader and its signal router.
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the connection closed, %d before it", runtime.NumGoroutine(), base)
		}
	}
}
