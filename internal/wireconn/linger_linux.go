// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tcpClose is TCP_CLOSE of linux/tcp_states.h: the state of a connection
// reset or fully closed.
const tcpClose = 7

// awaitAcked waits, until the deadline, for the peer of a TCP socket to
// acknowledge every byte written to it (the kernel's send queue empty) or
// for the connection to end; other sockets return at once.
func awaitAcked(nc net.Conn, until time.Time) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		pending := false
		cerr := rc.Control(func(fd uintptr) {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil || info.State == tcpClose {
				return // reset, or gone: nothing will be acknowledged
			}
			n, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
			pending = err == nil && n > 0
		})
		left := time.Until(until)
		if cerr != nil || !pending || left <= 0 {
			return
		}
		time.Sleep(min(wait, left))
	}
}

// discardInput reads and drops what the peer sent and nobody read (at
// most a few chunks), so that closing the socket ends the stream instead
// of resetting it. The socket's read side is shut: a read returns 0 once
// nothing is left.
func discardInput(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	b := chunks.Get().(*[]byte)
	defer chunks.Put(b)
	_ = rc.Control(func(fd uintptr) {
		for range 64 {
			n, err := syscall.Read(int(fd), *b)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return
			}
		}
	})
}
