// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// sysIO reads and writes a socket with raw system calls, still waiting
// for readiness through Go's network poller. The socket is non-blocking,
// so a read or write never blocks the thread; skipping the runtime's
// system-call bookkeeping matters because each ordinary call wakes the
// runtime's monitor thread, which costs more than the I/O itself under a
// steady stream of small messages (measured on the event relay).
type sysIO struct {
	rc syscall.RawConn
}

// ioSync orders memory between a write and the read that receives its
// bytes, as Go's own socket I/O does for the race detector: a write adds
// (release), a read loads (acquire). One uncontended atomic per call.
var ioSync atomic.Uint64

// newSysIO returns raw I/O for nc, or nc itself when it has no file
// descriptor (e.g. net.Pipe in tests).
func newSysIO(nc net.Conn) io.ReadWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &sysIO{rc: rc}
}

// rawIO runs one read or write system call (op) on a non-blocking fd
// without the runtime's bookkeeping, retrying on EINTR. b is not empty.
func rawIO(op, fd uintptr, b []byte) (uintptr, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall(op, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if errno != syscall.EINTR {
			return n, errno
		}
	}
}

// Read implements io.Reader.
func (s *sysIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     uintptr
		errno syscall.Errno
	)
	err := s.rc.Read(func(fd uintptr) bool {
		n, errno = rawIO(syscall.SYS_READ, fd, p)
		return errno != syscall.EAGAIN
	})
	ioSync.Load()
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// Write implements io.Writer; it returns when all of p is written.
func (s *sysIO) Write(p []byte) (int, error) {
	ioSync.Add(1)
	written := 0
	for written < len(p) {
		var (
			n     uintptr
			errno syscall.Errno
		)
		rest := p[written:]
		err := s.rc.Write(func(fd uintptr) bool {
			n, errno = rawIO(syscall.SYS_WRITE, fd, rest)
			return errno != syscall.EAGAIN
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
