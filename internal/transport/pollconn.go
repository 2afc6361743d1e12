package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollConn is a socket taken out of Go's network poller: reads and writes
// are raw non-blocking system calls, and only when one would block does
// the caller wait in poll(2) for that one direction. Go's poller watches
// every socket for write space too (edge-triggered), so each message the
// peer reads from a socket we write a lot to wakes the poller for nothing;
// on the bus connection of the controller under an event storm that was
// half of all its wake-ups. The price is a thread blocked in poll while
// the connection's reader waits.
type pollConn struct {
	local, remote net.Addr

	mu     sync.Mutex
	fd     int
	users  int  // operations using fd right now
	closed bool // fd is closed once users drops to 0
}

// newPollConn moves nc's socket to a pollConn; nc is closed. r holds what
// was read from nc ahead; the returned reader continues it on the new
// connection.
func newPollConn(nc net.Conn, r *bufio.Reader) (*pollConn, *bufio.Reader, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("transport: %T has no file descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	if dupErr != nil {
		return nil, nil, fmt.Errorf("transport: duplicating socket: %w", dupErr)
	}
	// The duplicate shares the open file, which stays non-blocking.
	pc := &pollConn{fd: fd, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	ahead, _ := r.Peek(r.Buffered())
	ahead = bytes.Clone(ahead)
	_ = nc.Close() // leaves the poller; the duplicate keeps the socket open
	var src io.Reader = pc
	if len(ahead) > 0 {
		src = io.MultiReader(bytes.NewReader(ahead), pc)
	}
	return pc, bufio.NewReaderSize(src, readBufferSize), nil
}

// acquire marks an operation on fd; false once closed.
func (c *pollConn) acquire() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return -1, false
	}
	c.users++
	return c.fd, true
}

func (c *pollConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users--
	if c.closed && c.users == 0 && c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
}

// io runs one raw read or write, waiting in poll while it would block.
func (c *pollConn) io(op uintptr, events int16, p []byte) (int, error) {
	fd, ok := c.acquire()
	if !ok {
		return 0, net.ErrClosed
	}
	defer c.release()
	for {
		n, _, errno := syscall.RawSyscall(op, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if err := c.wait(fd, events); err != nil {
				return 0, err
			}
		default:
			name := "read"
			if op == syscall.SYS_WRITE {
				name = "write"
			}
			return 0, os.NewSyscallError(name, errno)
		}
		if c.isClosed() {
			return 0, net.ErrClosed
		}
	}
}

// wait blocks in poll until fd is ready for events (or hung up).
func (c *pollConn) wait(fd int, events int16) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		_, err := unix.Ppoll(fds, nil, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("ppoll", err)
		}
	}
}

func (c *pollConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Read implements io.Reader.
func (c *pollConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.io(syscall.SYS_READ, unix.POLLIN, p)
	ioSync.Load()
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write implements io.Writer; it returns when all of p is written.
func (c *pollConn) Write(p []byte) (int, error) {
	ioSync.Add(1)
	written := 0
	for written < len(p) {
		n, err := c.io(syscall.SYS_WRITE, unix.POLLOUT, p[written:])
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// Close shuts the socket down, which wakes a reader or writer waiting in
// poll, and closes it once they have let go.
func (c *pollConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	fd := c.fd
	c.mu.Unlock()
	_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	c.mu.Lock()
	c.users++
	c.mu.Unlock()
	c.release()
	return nil
}

// LocalAddr implements net.Conn.
func (c *pollConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn.
func (c *pollConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn; deadlines are not supported.
func (c *pollConn) SetDeadline(time.Time) error { return errors.ErrUnsupported }

// SetReadDeadline implements net.Conn; deadlines are not supported.
func (c *pollConn) SetReadDeadline(time.Time) error { return errors.ErrUnsupported }

// SetWriteDeadline implements net.Conn; deadlines are not supported.
func (c *pollConn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
