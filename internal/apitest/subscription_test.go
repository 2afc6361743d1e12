// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// connectPlain connects to addr as a module outside this one would: plain
// godbus with the sequential signal handler.
func connectPlain(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestNoCallbackAfterClose: a subscription closed by an earlier callback of
// the same signal is not called for that signal.
func TestNoCallbackAfterClose(t *testing.T) {
	bus := testbus.Start(t)
	emitter, client := connectPlain(t, bus.Address), connectPlain(t, bus.Address)
	ctx := context.Background()
	m := bluechi.Match{Path: "/test", Interface: "org.example.Test", Member: "Ping"}
	subscribe := func(fn func(*dbus.Signal)) *bluechi.Subscription {
		t.Helper()
		s, err := bluechi.Subscribe(ctx, client, m, fn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	subs := make(chan *bluechi.Subscription, 1)
	var closed, calledAfter atomic.Bool
	subscribe(func(*dbus.Signal) { // first: closes the second
		if err := (<-subs).Close(); err != nil {
			t.Error(err)
		}
		closed.Store(true)
	})
	subs <- subscribe(func(*dbus.Signal) {
		if closed.Load() {
			calledAfter.Store(true)
		}
	})
	last := make(chan struct{}, 1)
	subscribe(func(*dbus.Signal) { last <- struct{}{} }) // served after both
	if err := emitter.Emit("/test", "org.example.Test.Ping"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-last:
	case <-time.After(10 * time.Second):
		t.Fatal("signal not delivered")
	}
	if calledAfter.Load() {
		t.Fatal("callback ran after its subscription's Close returned")
	}
}
