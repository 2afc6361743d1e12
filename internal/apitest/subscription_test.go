// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"errors"
	"strings"
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

// TestSubscriptionDone: Done closes after Close only once a running call of
// the callback has returned (Close does not wait, so a callback may call
// it), and Err is nil after Close.
func TestSubscriptionDone(t *testing.T) {
	bus := testbus.Start(t)
	emitter, client := connectPlain(t, bus.Address), connectPlain(t, bus.Address)
	m := bluechi.Match{Path: "/test", Interface: "org.example.Test", Member: "Ping"}
	entered, release := make(chan struct{}), make(chan struct{})
	sub, err := bluechi.Subscribe(context.Background(), client, m, func(*dbus.Signal) {
		entered <- struct{}{}
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := emitter.Emit("/test", "org.example.Test.Ping"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("signal not delivered")
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
		t.Fatal("Done closed while the callback runs")
	default:
	}
	close(release)
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the callback returned")
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Err after Close: %v", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Closed from its own callback.
	var self *bluechi.Subscription
	ready := make(chan struct{})
	self, err = bluechi.Subscribe(context.Background(), client, m, func(*dbus.Signal) {
		<-ready
		self.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	if err := emitter.Emit("/test", "org.example.Test.Ping"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-self.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after Close from the callback")
	}
}

// TestSubscriptionEndsWithTheBus: a bus that goes away ends every
// subscription of the connection: Done closes and Err says why.
func TestSubscriptionEndsWithTheBus(t *testing.T) {
	bus := testbus.Start(t)
	client := connectPlain(t, bus.Address)
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(client, bluechi.ControllerBusName, bluechi.ControllerPath)
	sub, err := ctrl.OnJobRemoved(ctx, func(*bluechi.ControllerJobRemovedSignal) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Err(); err != nil {
		t.Fatalf("Err while active: %v", err)
	}
	bus.Stop()
	select {
	case <-sub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("subscription did not end with the bus")
	}
	if err := sub.Err(); !errors.Is(err, bluechi.ErrConnectionClosed) {
		t.Fatalf("Err = %v, want ErrConnectionClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close after the bus went away: %v", err)
	}
	if err := sub.Err(); !errors.Is(err, bluechi.ErrConnectionClosed) {
		t.Fatalf("Err after Close = %v", err)
	}
}

// TestCancelledSubscribeLeavesNoRule: Subscribe calls whose context ends
// while the bus adds the match rule leave no rule on the bus (a connection
// may hold only so many), and return the context's error.
func TestCancelledSubscribeLeavesNoRule(t *testing.T) {
	bus := testbus.Start(t)
	client := connectPlain(t, bus.Address)
	ctrl := bluechi.NewControllerClient(client, bluechi.ControllerBusName, bluechi.ControllerPath)
	stats := client.Object("org.freedesktop.DBus", "/org/freedesktop/DBus")
	jobRules := func() int {
		t.Helper()
		var all map[string][]string
		if err := stats.Call("org.freedesktop.DBus.Debug.Stats.GetAllMatchRules", 0).Store(&all); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range all[client.Names()[0]] {
			if strings.Contains(r, bluechi.ControllerSignalJobRemoved) {
				n++
			}
		}
		return n
	}
	failed := 0
	for i := range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%100)*time.Microsecond)
		sub, err := ctrl.OnJobRemoved(ctx, func(*bluechi.ControllerJobRemovedSignal) {})
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Subscribe: %v", err)
			}
			failed++
			continue
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if failed == 0 {
		t.Fatal("no Subscribe was cut short; the test proves nothing")
	}
	// The removals of rules added after their Subscribe gave up are on
	// their way: poll.
	deadline := time.Now().Add(10 * time.Second)
	for n := jobRules(); n != 0; n = jobRules() {
		if time.Now().After(deadline) {
			t.Fatalf("%d JobRemoved match rules left after %d cut-short Subscribes", n, failed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
