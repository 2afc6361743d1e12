// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

func TestNameOwnerWatch(t *testing.T) {
	bus := testbus.Start(t)
	watcher, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	ctx := context.Background()
	const name = "org.example.BusnameTest"
	if _, err := dbusrt.NameOwner(ctx, watcher, name); err == nil {
		t.Fatal("no owner expected")
	}
	changes := make(chan dbusrt.OwnerChange, 4)
	sub, err := dbusrt.WatchNameOwner(ctx, watcher, name, func(c dbusrt.OwnerChange) { changes <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	owner, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := dbusrt.RequestName(owner, name); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c.Name != name || c.OldOwner != "" || c.NewOwner != dbusrt.UniqueName(owner) {
			t.Fatalf("%+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no NameOwnerChanged")
	}
	if got, err := dbusrt.NameOwner(ctx, watcher, name); err != nil || got != dbusrt.UniqueName(owner) {
		t.Fatalf("owner %q %v", got, err)
	}
}

// TestNameOwnerSpoof proves a NameOwnerChanged sent by an ordinary client
// (unicast, so no match rule filters it) does not reach WatchNameOwner.
func TestNameOwnerSpoof(t *testing.T) {
	bus := testbus.Start(t)
	watcher, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	ctx := context.Background()
	const name = "org.example.Spoofed"
	changes := make(chan dbusrt.OwnerChange, 4)
	sub, err := dbusrt.WatchNameOwner(ctx, watcher, name, func(c dbusrt.OwnerChange) { changes <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	evil, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	if err := dbusrt.EmitTo(evil, dbusrt.UniqueName(watcher), dbusrt.BusPath, dbusrt.BusInterface, "NameOwnerChanged", name, ":1.999", ""); err != nil {
		t.Fatal(err)
	}
	// A real change, sent after the spoof, is the first one delivered.
	owner, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := dbusrt.RequestName(owner, name); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c.NewOwner != dbusrt.UniqueName(owner) {
			t.Fatalf("spoofed change delivered: %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no NameOwnerChanged")
	}
}
