// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Decode stores a message body into typed pointers. Values of type v and
// a{sv} are taken as they arrived, so nested signatures survive (godbus's
// Store would turn struct-valued variants into av).
func Decode(body []any, ptrs ...any) error {
	if len(body) != len(ptrs) {
		return NewError(ErrInvalidArgs, "message has %d values, want %d", len(body), len(ptrs))
	}
	for i, p := range ptrs {
		switch p := p.(type) {
		case *dbus.Variant:
			if v, ok := body[i].(dbus.Variant); ok {
				*p = v
				continue
			}
		case *map[string]dbus.Variant:
			if m, ok := body[i].(map[string]dbus.Variant); ok {
				*p = m
				continue
			}
		case *string:
			if s, ok := body[i].(string); ok {
				*p = s
				continue
			}
		case *uint32:
			if u, ok := body[i].(uint32); ok {
				*p = u
				continue
			}
		case *dbus.ObjectPath:
			if o, ok := body[i].(dbus.ObjectPath); ok {
				*p = o
				continue
			}
		}
		if err := dbus.Store(body[i:i+1], p); err != nil {
			return NewError(ErrInvalidArgs, "value %d: %v", i, err)
		}
	}
	return nil
}

// UniqueName returns the connection's unique bus name, or "" on a
// peer-to-peer connection.
func UniqueName(conn *dbus.Conn) string {
	if n := conn.Names(); len(n) > 0 {
		return n[0]
	}
	return ""
}

// ConnectSessionBus opens a private session-bus connection served by a new Server.
func ConnectSessionBus(prepare ...func(*Server)) (*dbus.Conn, *Server, error) {
	srv := newPrepared(prepare)
	conn, err := dbus.SessionBusPrivate(srv.ConnOptions()...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect session bus: %w", err)
	}
	return finishBus(conn, srv, "session bus")
}

// ConnectSystemBus opens a private system-bus connection served by a new Server.
func ConnectSystemBus(prepare ...func(*Server)) (*dbus.Conn, *Server, error) {
	srv := newPrepared(prepare)
	conn, err := dbus.SystemBusPrivate(srv.ConnOptions()...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect system bus: %w", err)
	}
	return finishBus(conn, srv, "system bus")
}

// ConnectBus opens a connection to the message bus at address.
func ConnectBus(address string, prepare ...func(*Server)) (*dbus.Conn, *Server, error) {
	srv := newPrepared(prepare)
	conn, err := dbus.Dial(address, srv.ConnOptions()...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect bus %s: %w", address, err)
	}
	return finishBus(conn, srv, address)
}

func newPrepared(prepare []func(*Server)) *Server {
	s := NewServer()
	for _, p := range prepare {
		p(s)
	}
	return s
}

func finishBus(conn *dbus.Conn, srv *Server, what string) (*dbus.Conn, *Server, error) {
	srv.Bind(conn)
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("authenticate to %s: %w", what, err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("hello to %s: %w", what, err)
	}
	return conn, srv, nil
}

// RequestName takes a well-known name, replacing an existing owner and never
// queueing; anything but primary ownership is an error.
func RequestName(conn *dbus.Conn, name string) error {
	reply, err := conn.RequestName(name, dbus.NameFlagReplaceExisting|dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request name %s: %w", name, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner {
		return fmt.Errorf("request name %s: not the primary owner (reply %d)", name, reply)
	}
	return nil
}

// DialPeer opens a peer-to-peer godbus connection to address (a
// controller's agent port, say) with godbus's own client authentication:
// EXTERNAL on a unix socket, ANONYMOUS on TCP. There is no Hello. opts
// are godbus's (a Server's ConnOptions, to serve objects on it; Bind the
// server to the connection afterwards).
func DialPeer(address string, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	conn, err := dbus.Dial(address, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", address, err)
	}
	auth := []dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Geteuid()))}
	if strings.HasPrefix(address, "tcp:") {
		auth = []dbus.Auth{dbus.AuthAnonymous()}
	}
	if err := conn.Auth(auth); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to %s: %w", address, err)
	}
	return conn, nil
}
