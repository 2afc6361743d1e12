// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"net"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setRecvErr turns on IP_RECVERR; on an IPv6 socket also IPV6_RECVERR, the
// IPv4 option then covering IPv4-mapped peers.
func setRecvErr(tc *net.TCPConn) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		sa, err := syscall.Getsockname(int(fd))
		if err != nil {
			serr = err
			return
		}
		if _, v6 := sa.(*syscall.SockaddrInet6); v6 {
			if err := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR, 1); err != nil {
				serr = err
				return
			}
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// PeerClosed reports whether the peer of nc has certainly gone: it shut
// down its sending side (even with data still unread here) or the socket
// holds an error. It never consumes data and never waits, so it is safe
// while another goroutine reads nc.
func PeerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		for {
			n, err := unix.Poll(fds, 0)
			if err == unix.EINTR {
				continue
			}
			gone = err != nil || n == 1 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
			return
		}
	})
	return gone || err != nil
}

// PeerSecurityContext returns the peer's security label (SO_PEERSEC), e.g.
// the SELinux context "system_u:system_r:bluechi_agent_t:s0" of the process
// at the other end of a unix socket. It fails where the kernel has no label
// for the peer: without an LSM that provides one, or for most TCP peers.
func PeerSecurityContext(nc net.Conn) (string, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return "", syscall.ENOTSOCK
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return "", err
	}
	var label string
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		label, lerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_PEERSEC)
	}); err != nil {
		return "", err
	}
	if lerr != nil {
		return "", lerr
	}
	return strings.TrimRight(label, "\x00"), nil
}
