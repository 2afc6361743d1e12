// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
)

// Signal routing is the public client package's: one router per connection
// serves the daemons' subscriptions and those of the generated public
// clients, so signals reach them all in arrival order.

// Match selects signals (see bluechi.Match).
type Match = bluechi.Match

// Subscription is one signal subscription; Close ends it.
type Subscription = bluechi.Subscription

// PropertiesChanged is a parsed org.freedesktop.DBus.Properties.PropertiesChanged signal.
type PropertiesChanged = bluechi.PropertiesChanged

// Subscribe calls fn for every signal on conn that m selects, in arrival
// order, from one goroutine per connection (so fn must not block for long).
// On a bus connection it also adds the match rule; on a peer-to-peer
// connection there is no bus to ask and every signal arrives anyway.
func Subscribe(ctx context.Context, conn *dbus.Conn, m Match, fn func(*dbus.Signal)) (*Subscription, error) {
	return bluechi.Subscribe(ctx, conn, m, fn)
}

// SubscribePropertiesChanged calls fn for PropertiesChanged of iface on path.
func SubscribePropertiesChanged(ctx context.Context, conn *dbus.Conn, sender string, path dbus.ObjectPath, iface string, fn func(*PropertiesChanged)) (*Subscription, error) {
	return bluechi.SubscribePropertiesChanged(ctx, conn, sender, path, iface, fn)
}
