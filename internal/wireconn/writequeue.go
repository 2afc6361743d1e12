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

// DefaultLinger bounds, when WriteTimeout is 0, how long a connection
// closed with bytes still queued goes on writing them.
const DefaultLinger = 10 * time.Second

// writeQueue keeps what the socket did not take at once on a connection
// whose writes never wait (Options.QueueWrites): a goroutine of its own
// writes it, within WriteTimeout, while senders go on. A sender holding a
// lock others need (the controller's, while it relays to its agents) so
// never waits for one peer that stopped reading. On a plain socket a
// write goes straight to the kernel while nothing waits; on anything else
// (TLS, which cannot write without waiting) every write goes through the
// queue.
//
// A connection closed with bytes queued (a reply, then Close) stops
// reading at once but lingers: the queue's goroutine writes the rest,
// within WriteTimeout from the close, and then closes the socket.
type writeQueue struct {
	direct bool // writes may try the socket first (a plain socket); set once

	// mu is taken with or without Conn.wmu held (senders hold it, the
	// flusher does not); no other lock is taken while mu is held.
	mu          sync.Mutex
	buf         []byte    // bytes not written yet, in wire order; guarded by mu
	flushing    bool      // the flusher runs (buf may be empty while it writes); guarded by mu
	writing     int       // bytes the flusher took from buf and writes now; guarded by mu
	err         error     // why writing stopped; guarded by mu
	max         int       // bytes buf may hold beyond one message (Limits.MaxWriteQueue); guarded by mu
	closing     bool      // the connection ended; the flusher closes the socket when it stops; guarded by mu
	lingerUntil time.Time // the write deadline once closing; guarded by mu
}

// newWriteQueue returns the queue of a connection with Options.QueueWrites.
func newWriteQueue(nc net.Conn, rc syscall.RawConn) *writeQueue {
	q := &writeQueue{}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		q.direct = rc != nil
	}
	return q
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
	if q.closing {
		return ErrClosed
	}
	if !q.flushing && q.direct {
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
// WriteTimeout (after Close, within the linger deadline); a failure ends
// the connection. Once closing, it closes the socket when it stops.
func (c *Conn) flushQueue() {
	q := c.wq
	for {
		q.mu.Lock()
		p := q.buf
		q.buf, q.writing = nil, len(p)
		if len(p) == 0 || q.err != nil {
			q.flushing, q.writing = false, 0
			closing, failed := q.closing, q.err != nil
			q.mu.Unlock()
			if closing {
				c.closeSocketNow(failed)
			}
			return
		}
		// The deadline is set under mu, so that it cannot undo the
		// linger deadline closeSocket sets for the write in flight.
		switch {
		case q.closing:
			_ = c.nc.SetWriteDeadline(q.lingerUntil)
		case c.opts.WriteTimeout > 0:
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		}
		q.mu.Unlock()
		if _, err := c.write(p); err != nil {
			q.mu.Lock()
			q.err, q.flushing, q.writing = err, false, 0
			closing := q.closing
			q.mu.Unlock()
			if closing {
				c.closeSocketNow(true)
			} else {
				c.closeWith(fmt.Errorf("wireconn: writing: %w", err))
			}
			return
		}
	}
}

// closeSocket closes the socket of a connection that ended. With bytes
// still queued, or on TLS (whose close alert may wait for the socket),
// and a socket whose read side can be shut on its own, it stops reading
// at once and leaves the closing to the flusher, which writes the rest
// first; a queue that failed is dropped.
func (c *Conn) closeSocket() {
	q := c.wq
	if q == nil {
		c.nc.Close()
		return
	}
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return
	}
	q.closing = true
	switch {
	case !q.flushing && q.direct:
		q.mu.Unlock()
		c.nc.Close()
		return
	case q.err == nil && shutRead(c.nc):
		linger := c.opts.WriteTimeout
		if linger <= 0 {
			linger = DefaultLinger
		}
		q.lingerUntil = time.Now().Add(linger)
		// The write in flight may have no deadline (WriteTimeout 0) or
		// a later one: the linger bounds it too.
		_ = c.nc.SetWriteDeadline(q.lingerUntil)
		if !q.flushing {
			// Nothing queued, but closing TLS writes an alert: the
			// flusher does it.
			q.flushing = true
			go c.flushQueue()
		}
		q.mu.Unlock()
		return
	case !q.flushing:
		// No read side of its own to shut (or the queue failed): the
		// flusher closes it, with TLS's alert unless writing failed.
		q.flushing = true
		q.mu.Unlock()
		go c.flushQueue()
		return
	}
	if q.err == nil {
		q.err = ErrClosed
	}
	q.mu.Unlock()
	c.closeSocketNow(true)
}

// closeSocketNow closes the socket. After a failure (or with the queue cut
// short) at once, the bare socket under TLS: no close alert that could
// wait for a peer that does not read. Otherwise in an orderly way: after a
// linger (the read side shut) the end of the stream follows the queue
// (TLS: the close alert), and the socket is closed once the peer has
// acknowledged every byte, or at the linger deadline: Linux resets a
// connection closed with input unread (a peer that went on sending),
// dropping what the send buffer still holds.
func (c *Conn) closeSocketNow(failed bool) {
	if failed {
		if !closeBare(c.nc) {
			c.nc.Close()
		}
		return
	}
	q := c.wq
	q.mu.Lock()
	until := q.lingerUntil
	q.mu.Unlock()
	if !until.IsZero() {
		if w, ok := c.nc.(interface {
			NetConn() net.Conn
			CloseWrite() error
		}); ok {
			// TLS: the close alert (the socket stays open). Not the
			// socket's own CloseWrite: Linux resets a connection whose
			// both sides are shut as soon as the peer sends anything.
			_ = w.CloseWrite()
		}
		sock := socketOf(c.nc)
		awaitAcked(sock, until)
		discardInput(sock)
	}
	c.nc.Close()
}

// socketOf returns the socket under nc: what a TLS connection runs on, or
// nc itself.
func socketOf(nc net.Conn) net.Conn {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		return t.NetConn()
	}
	return nc
}

// shutRead shuts the read side of nc's socket (its reader then sees the
// end of the stream); false if it has none to shut.
func shutRead(nc net.Conn) bool {
	r, ok := socketOf(nc).(interface{ CloseRead() error })
	return ok && r.CloseRead() == nil
}

// closeBare closes the socket under a TLS connection, without the close
// alert that could wait for a peer that does not read; false if nc runs
// on no other connection.
func closeBare(nc net.Conn) bool {
	t, ok := nc.(interface{ NetConn() net.Conn })
	if !ok {
		return false
	}
	t.NetConn().Close()
	return true
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
