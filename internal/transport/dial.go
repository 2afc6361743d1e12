// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"
)

// Dialer opens peer connections to a controller. The zero value
// authenticates with ANONYMOUS and applies DefaultSocketOptions on TCP.
type Dialer struct {
	// Mechanism is MechanismAnonymous (also for "") or MechanismExternal.
	Mechanism Mechanism
	// UID is the decimal uid claimed with EXTERNAL; "" means the
	// effective uid of this process.
	UID string
	// Socket, if set, replaces DefaultSocketOptions for TCP connections.
	Socket *SocketOptions
	// HandshakeTimeout bounds the SASL handshake (0:
	// DefaultHandshakeTimeout); a deadline of the context also applies.
	HandshakeTimeout time.Duration
	// BeforeStart, if set, runs on the connection before godbus reads
	// from it.
	BeforeStart BeforeStartFunc
}

// Dial connects to a D-Bus address ("tcp:host=H,port=P",
// "unix:path=P", "unix:abstract=N", or several separated by ';', tried in
// order) with the zero Dialer and returns a started godbus connection
// (Hello is not called). opts are passed to godbus unchanged.
func Dial(ctx context.Context, address string, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	var d Dialer
	return d.Dial(ctx, address, opts...)
}

// DialNetConn authenticates as a client over an already connected socket
// with the zero Dialer and returns a started godbus connection (Hello is
// not called). Socket options are not applied. On error nc is closed.
func DialNetConn(nc net.Conn, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	var d Dialer
	return d.DialNetConn(context.Background(), nc, opts...)
}

// Dial connects to a D-Bus address, see the package-level Dial. ctx bounds
// connecting and authenticating, not the returned connection.
func (d *Dialer) Dial(ctx context.Context, address string, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	addrs, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	so := DefaultSocketOptions()
	if d.Socket != nil {
		so = *d.Socket
	}
	var errs []error
	for _, a := range addrs {
		conn, err := d.dialOne(ctx, a, so, opts)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("transport: connecting to %q: %w", address, errors.Join(errs...))
}

func (d *Dialer) dialOne(ctx context.Context, a Address, so SocketOptions, opts []dbus.ConnOption) (*dbus.Conn, error) {
	network, target, err := a.Network()
	if err != nil {
		return nil, err
	}
	nd := net.Dialer{KeepAlive: -1}
	nc, err := nd.DialContext(ctx, network, target)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	if err := ApplySocketOptions(nc, so); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return d.DialNetConn(ctx, nc, opts...)
}

// DialNetConn authenticates over an already connected socket, see the
// package-level DialNetConn.
func (d *Dialer) DialNetConn(ctx context.Context, nc net.Conn, opts ...dbus.ConnOption) (*dbus.Conn, error) {
	uid := d.UID
	if d.Mechanism == MechanismExternal && uid == "" {
		uid = strconv.Itoa(os.Geteuid())
	}
	lim := handshakeLimits{maxLineLength: DefaultMaxLineLength, maxLines: DefaultMaxLines}
	r := bufio.NewReaderSize(newSysIO(nc), readBufferSize)
	var guid string
	err := withDeadline(ctx, nc, orDefault(d.HandshakeTimeout, DefaultHandshakeTimeout), func() error {
		var err error
		guid, err = clientHandshake(r, nc, d.Mechanism, uid, lim)
		return err
	})
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: authenticating to %s: %w", describeRemote(nc), err)
	}
	return startConn(nc, r, guid, opts, d.BeforeStart)
}

// describeRemote names the server end of nc for error messages.
func describeRemote(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.Network() + " " + a.String()
	}
	return "server"
}
