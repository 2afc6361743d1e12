// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"

	"github.com/godbus/dbus/v5"
)

// Invoke makes a generated client's method call through godbus and
// returns the reply's body; Release(ctx) runs once the call is on the
// wire.
func Invoke(ctx context.Context, obj dbus.BusObject, iface, member string, args ...any) ([]any, error) {
	done := obj.GoWithContext(ctx, iface+"."+member, 0, make(chan *dbus.Call, 1), args...).Done
	Release(ctx)
	call := <-done
	return call.Body, call.Err
}
