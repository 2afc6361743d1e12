// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// Call describes the method call a handler is serving.
type Call struct {
	// Conn is the godbus connection the call arrived on, nil on a
	// wireconn connection.
	Conn *dbus.Conn
	// Wire is the wireconn connection the call arrived on, nil on a
	// godbus connection.
	Wire *wireconn.Conn
	// Sender is the caller's unique bus name ("" on peer-to-peer connections).
	Sender string
	// Message is the call message as godbus received it (nil on a
	// wireconn connection).
	Message *dbus.Message
}

type callKey struct{}

// WithCall returns a context that carries c.
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// CallFrom returns the call carried by ctx, if any.
func CallFrom(ctx context.Context) (*Call, bool) {
	c, ok := ctx.Value(callKey{}).(*Call)
	return c, ok
}

// SenderFrom returns the caller's unique bus name carried by ctx, or "".
func SenderFrom(ctx context.Context) string {
	if c, ok := CallFrom(ctx); ok {
		return c.Sender
	}
	return ""
}

// ConnFrom returns the connection carried by ctx, or nil.
func ConnFrom(ctx context.Context) *dbus.Conn {
	if c, ok := CallFrom(ctx); ok {
		return c.Conn
	}
	return nil
}
