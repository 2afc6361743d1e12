// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// DefaultMaxWriteQueue is the Limits.MaxWriteQueue used when it is 0.
const DefaultMaxWriteQueue = 256 << 10

// writeQueue keeps what the kernel did not take at once on a connection
// whose writes never wait (Options.QueueWrites): a goroutine of its own
// writes it, within WriteTimeout, while senders go on. A sender holding a
// lock others need (the controller's, while it relays to its agents) so
// never waits for one peer that stopped reading.
type writeQueue struct {
	// mu is taken with or without Conn.wmu held (senders hold it, the
	// flusher does not); no other lock is taken while mu is held.
	mu       sync.Mutex
	buf      []byte // bytes not written yet, in wire order; guarded by mu
	flushing bool   // the flusher runs (buf may be empty while it writes); guarded by mu
	writing  int    // bytes the flusher took from buf and writes now; guarded by mu
	err      error  // why writing stopped; guarded by mu
	max      int    // bytes buf may hold beyond one message (Limits.MaxWriteQueue); guarded by mu
}

// queues reports whether c's writes go through a writeQueue: asked for,
// and a plain socket that can be written without waiting.
func queues(nc net.Conn, opts Options) bool {
	if !opts.QueueWrites {
		return false
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// writeQueued writes p (whole messages) as far as the socket takes it now
// and queues the rest; it never waits. A queue that would pass its bound
// (more than one message beyond max bytes) is an error: the peer does not
// read, and the caller closes the connection.
func (c *Conn) writeQueued(p []byte) error {
	q := c.wq
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	if !q.flushing {
		n, err := tryWriteRaw(c.rc, p)
		if err != nil {
			q.err = err
			return err
		}
		if n == len(p) {
			return nil
		}
		p = p[n:]
	}
	if waiting := len(q.buf) + q.writing; waiting > 0 && waiting+len(p) > q.max {
		q.err = fmt.Errorf("peer does not read: %d bytes wait to be written", waiting+len(p))
		return q.err
	}
	q.buf = append(q.buf, p...)
	if !q.flushing {
		q.flushing = true
		go c.flushQueue()
	}
	return nil
}

// flushQueue writes the queue until it is empty, each batch within
// WriteTimeout; a failure ends the connection.
func (c *Conn) flushQueue() {
	q := c.wq
	for {
		q.mu.Lock()
		p := q.buf
		q.buf, q.writing = nil, len(p)
		if len(p) == 0 || q.err != nil {
			q.flushing = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if c.opts.WriteTimeout > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		}
		if _, err := WriteRaw(c.rc, p); err != nil {
			q.mu.Lock()
			q.err, q.flushing, q.writing = err, false, 0
			q.mu.Unlock()
			c.closeWith(fmt.Errorf("wireconn: writing: %w", err))
			return
		}
	}
}

// tryWriteRaw writes as much of p (not empty) as the socket of rc takes
// without waiting: the bytes written, and an error only if the socket
// failed (a full socket is not one).
func tryWriteRaw(rc syscall.RawConn, p []byte) (int, error) {
	ioSync.Add(1)
	written := 0
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			rest := p[written:]
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
			if e == syscall.EINTR {
				continue
			}
			if e != 0 {
				if e != syscall.EAGAIN {
					errno = e
				}
				break
			}
			written += int(n)
		}
		return true // never wait for writability here
	})
	if err != nil {
		return written, err
	}
	if errno != 0 {
		return written, os.NewSyscallError("write", errno)
	}
	return written, nil
}
