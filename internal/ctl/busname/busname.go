// Package busname asks the message bus about well-known names: who owns
// one now, and when it gets a new owner. The generated BlueChi clients do
// not cover the bus daemon's own interface, so its few members live here.
package busname

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// Names of the message bus's own object.
const (
	busName      = "org.freedesktop.DBus"
	busPath      = dbus.ObjectPath("/org/freedesktop/DBus")
	busInterface = "org.freedesktop.DBus"
)

// Owner returns the unique name owning name, or an error (the bus answers
// NameHasNoOwner when nobody does).
func Owner(ctx context.Context, conn *dbus.Conn, name string) (string, error) {
	var owner string
	err := conn.Object(busName, busPath).CallWithContext(ctx, busInterface+".GetNameOwner", 0, name).Store(&owner)
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", name, err)
	}
	return owner, nil
}

// OwnerChange is one NameOwnerChanged signal.
type OwnerChange struct {
	Name, OldOwner, NewOwner string
}

// WatchOwner calls fn for every NameOwnerChanged of name, until the
// subscription is closed.
func WatchOwner(ctx context.Context, conn *dbus.Conn, name string, fn func(OwnerChange)) (*dbusrt.Subscription, error) {
	m := dbusrt.Match{Sender: busName, Path: busPath, Interface: busInterface, Member: "NameOwnerChanged", Arg0: name}
	sub, err := dbusrt.Subscribe(ctx, conn, m, func(s *dbus.Signal) {
		var c OwnerChange
		if dbusrt.Decode(s.Body, &c.Name, &c.OldOwner, &c.NewOwner) == nil {
			fn(c)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("watch owner of %s: %w", name, err)
	}
	return sub, nil
}
