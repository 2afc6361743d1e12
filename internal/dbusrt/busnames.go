// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/busnames"
)

// The message bus itself.
const (
	BusName      = busnames.DBusBusName
	BusPath      = dbus.ObjectPath(busnames.DBusPath)
	BusInterface = busnames.DBusInterface
)

// NameOwner returns the unique name owning name on conn's bus.
func NameOwner(ctx context.Context, conn *dbus.Conn, name string) (string, error) {
	var owner string
	err := conn.Object(BusName, BusPath).CallWithContext(ctx, BusInterface+"."+busnames.DBusMethodGetNameOwner, 0, name).Store(&owner)
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", name, err)
	}
	return owner, nil
}

// OwnerChange is one NameOwnerChanged signal.
type OwnerChange struct {
	Name, OldOwner, NewOwner string
}

// WatchNameOwner calls fn for every owner change of name, in order.
func WatchNameOwner(ctx context.Context, conn *dbus.Conn, name string, fn func(OwnerChange)) (*Subscription, error) {
	m := Match{Sender: BusName, Path: BusPath, Interface: BusInterface, Member: busnames.DBusSignalNameOwnerChanged, Arg0: name}
	sub, err := Subscribe(ctx, conn, m, func(s *dbus.Signal) {
		var c OwnerChange
		if Decode(s.Body, &c.Name, &c.OldOwner, &c.NewOwner) == nil && c.Name == name {
			fn(c)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("watch owner of %s: %w", name, err)
	}
	return sub, nil
}
