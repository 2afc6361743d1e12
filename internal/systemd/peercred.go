// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// dialPrivate connects to systemd's private socket at addr and, before a
// byte is sent, checks who serves it (config.md §4.1): the peer must run
// as root or as this process's user, as the manager does. Anything else
// listening there is refused.
func dialPrivate(ctx context.Context, addr string, opts wireconn.Options) (*wireconn.Conn, error) {
	c, err := transport.DialFirst(ctx, addr, transport.DefaultSocketOptions(), func(nc net.Conn, network string, _ transport.Address) (*wireconn.Conn, error) {
		if err := checkPeerUID(nc, network); err != nil {
			nc.Close()
			return nil, &transport.FinalError{Err: err}
		}
		c, err := wireconn.Client(ctx, nc, opts)
		if err != nil {
			return nil, &transport.FinalError{Err: err}
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wireconn: %w", err)
	}
	return c, nil
}

// checkPeerUID refuses a unix socket whose peer (SO_PEERCRED) is neither
// root nor this process's effective user, and any other kind of socket.
func checkPeerUID(nc net.Conn, network string) error {
	sc, ok := nc.(syscall.Conn)
	if network != "unix" || !ok {
		return fmt.Errorf("systemd's private socket must be a unix socket, not %s", network)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("refusing systemd's private socket: served by uid %d (pid %d), want root or uid %d", cred.Uid, cred.Pid, os.Geteuid())
	}
	return nil
}
