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
