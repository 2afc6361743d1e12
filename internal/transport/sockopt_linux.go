package transport

import (
	"net"
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

// PeerClosed reports whether the peer of nc has certainly gone: it closed
// its end (a TCP socket past ESTABLISHED, or end-of-file waiting on a unix
// socket) or the socket holds an error. It never consumes data and never
// waits, so it is safe while another goroutine reads nc.
func PeerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	_, isTCP := nc.(*net.TCPConn)
	gone := false
	err = rc.Control(func(fd uintptr) {
		if isTCP {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			gone = err != nil || info.State != tcpEstablished
			return
		}
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = n == 0 && err == nil || err != nil && err != unix.EAGAIN && err != unix.EINTR
	})
	return gone || err != nil
}

// tcpEstablished is TCP_ESTABLISHED from the kernel's tcp_states.h.
const tcpEstablished = 1
