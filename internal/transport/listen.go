// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Listener is a net.Listener whose Accept applies SocketOptions to every
// accepted TCP connection.
type Listener struct {
	net.Listener
	opts SocketOptions
}

// NewListener wraps l (e.g. a socket passed by systemd socket activation)
// so that accepted TCP connections get opts.
func NewListener(l net.Listener, opts SocketOptions) *Listener {
	return &Listener{Listener: l, opts: opts}
}

// Accept waits for the next connection and applies the socket options to
// it. If they cannot be applied, the connection is closed and an error
// returned; the listener itself stays usable.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := ApplySocketOptions(nc, l.opts); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: connection from %s: %w", nc.RemoteAddr(), err)
	}
	return nc, nil
}

// Listen opens a listener for peer connections.
//
// For network "tcp", an address with an empty host (":842") listens on the
// IPv6 wildcard in dual-stack mode, so IPv4 clients are served too, and
// falls back to IPv4 INADDR_ANY where IPv6 is unavailable, like upstream;
// other addresses, and networks "tcp4" and "tcp6", are used as given.
// SO_REUSEADDR is set (Go does so for every TCP listener).
//
// For network "unix", address is a socket path: its parent directory is
// created (0755) and a stale socket file at the path is removed; a socket
// still served there is not taken over (the error wraps
// syscall.EADDRINUSE), and any other kind of file there is an error. A path
// starting with '@' names an abstract socket. opts do not apply to unix sockets.
func Listen(network, address string, opts SocketOptions) (*Listener, error) {
	// Go's own keep-alive defaults are disabled: ApplySocketOptions decides.
	lc := net.ListenConfig{KeepAlive: -1}
	ctx := context.Background()
	switch network {
	case "tcp", "tcp4", "tcp6":
		l, err := lc.Listen(ctx, network, address)
		if err != nil && network == "tcp" && noIPv6(err) {
			host, port, serr := net.SplitHostPort(address)
			if serr == nil && host == "" {
				l, err = lc.Listen(ctx, "tcp4", net.JoinHostPort("0.0.0.0", port))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("transport: listening on %s %s: %w", network, address, err)
		}
		return NewListener(l, opts), nil
	case "unix":
		if !strings.HasPrefix(address, "@") {
			if err := prepareSocketPath(address); err != nil {
				return nil, err
			}
		}
		l, err := lc.Listen(ctx, "unix", address)
		if err != nil {
			return nil, fmt.Errorf("transport: listening on unix socket %s: %w", address, err)
		}
		return NewListener(l, opts), nil
	}
	return nil, fmt.Errorf("transport: cannot listen on network %q", network)
}

// noIPv6 reports whether err says that IPv6 sockets are unavailable.
func noIPv6(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EPROTONOSUPPORT) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

// prepareSocketPath creates the parent directory of a socket path and
// removes a stale socket there: one nobody listens on any more (a
// connection to it is refused). A socket that is still served, by another
// controller or by systemd for socket activation, is left alone and
// reported as in use; any other kind of file is an error.
func prepareSocketPath(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("transport: creating directory for unix socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("transport: checking unix socket path %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("transport: %s exists and is not a socket", path)
	}
	if live, err := socketServed(path); err != nil {
		return fmt.Errorf("transport: checking unix socket %s: %w", path, err)
	} else if live {
		return fmt.Errorf("transport: unix socket %s is in use by another process: %w", path, syscall.EADDRINUSE)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transport: removing stale unix socket %s: %w", path, err)
	}
	return nil
}

// socketServed reports whether something accepts connections on the unix
// socket at path. A listening socket the kernel lists for this network
// namespace (/proc/net/unix) answers without touching it: connecting to a
// socket that systemd holds for activation would start its service.
// Otherwise a probe connection decides (refused: stale); it is closed at
// once, unused.
func socketServed(path string) (bool, error) {
	if listedListening(path) {
		return true, nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return true, nil
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fs.ErrNotExist):
		return false, nil
	case errors.Is(err, syscall.EAGAIN):
		return true, nil // served, with a full backlog
	}
	return false, err
}

// soAcceptCon is the flag of a listening socket in /proc/net/unix.
const soAcceptCon = 1 << 16

// listedListening reports whether /proc/net/unix lists a listening socket
// bound to path. Lines read "Num RefCount Protocol Flags Type St Inode
// Path", numbers in hex.
func listedListening(path string) bool {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 8 || strings.Join(f[7:], " ") != path {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&soAcceptCon != 0 {
			return true
		}
	}
	return false
}
