// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The socket is read and written with raw system calls, still waiting for
// readiness through Go's network poller (the socket is non-blocking, so a
// call never blocks the thread). An ordinary system call enters the
// runtime's syscall bookkeeping, which wakes the runtime's monitor thread
// (sysmon) whenever it sleeps; under a steady stream of small messages
// that thread then never sleeps long and costs more than the I/O itself:
// on the agent, running a job through the controller spent a quarter of
// its CPU samples in runtime.sysmon before reads and writes went raw.

// ioSync orders memory between a write and the read that receives its
// bytes for the race detector, as Go's own socket I/O does: a write adds
// (release), a read loads (acquire). One uncontended atomic per call.
var ioSync atomic.Uint64

// rawRead is one read(2) on the non-blocking fd into b (not empty),
// retried on EINTR: n bytes, or -1 and the error (EAGAIN included).
func rawRead(fd uintptr, b []byte) (int, error) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			ioSync.Load()
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return -1, errno
	}
}

// WriteRaw writes all of p (not empty) to the socket of rc with raw
// write(2) calls, waiting for writability (and honouring the write
// deadline) through the network poller.
func WriteRaw(rc syscall.RawConn, p []byte) (int, error) {
	ioSync.Add(1)
	written := 0
	for written < len(p) {
		var (
			n     uintptr
			errno syscall.Errno
		)
		rest := p[written:]
		err := rc.Write(func(fd uintptr) bool {
			for {
				n, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
				if errno != syscall.EINTR {
					return errno != syscall.EAGAIN
				}
			}
		})
		if err != nil {
			return written, err
		}
		if errno != 0 {
			return written, os.NewSyscallError("write", errno)
		}
		written += int(n)
	}
	return written, nil
}

// write writes one whole message: raw on a plain TCP or unix socket,
// through nc.Write on anything else (a wrapper may want to see it).
func (c *Conn) write(p []byte) (int, error) {
	if c.rc != nil && len(p) > 0 {
		switch c.nc.(type) {
		case *net.TCPConn, *net.UnixConn:
			return WriteRaw(c.rc, p)
		}
	}
	return c.nc.Write(p)
}
