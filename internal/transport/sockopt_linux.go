package transport

import (
	"net"
	"syscall"
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
