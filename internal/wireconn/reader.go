// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// chunkSize is the size of the pooled read buffers. A message that fits
// in one read is dispatched straight from the buffer; a bigger one is
// gathered in a buffer of its own, grown as its bytes arrive.
const chunkSize = 8 << 10

// firstFrameCap bounds the first allocation for a message in progress,
// whatever its header announces: a peer must send bytes to make us hold
// memory.
const firstFrameCap = 64 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// read is the reader goroutine.
func (c *Conn) read() {
	c.shutdown(c.readLoop())
}

func (c *Conn) readLoop() error {
	if len(c.ahead) > 0 {
		ahead := c.ahead
		c.ahead = nil
		if err := c.feed(ahead); err != nil {
			return err
		}
		if err := c.watchStall(); err != nil {
			return err
		}
	}
	if c.rc == nil {
		return c.readPlain()
	}
	for {
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		// The buffer is taken only once the socket is readable, so an
		// idle connection holds none.
		err := c.rc.Read(func(fd uintptr) bool {
			b := chunks.Get().(*[]byte)
			for {
				n, rerr = rawRead(fd, *b)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				chunks.Put(b)
				return false
			}
			buf = b
			return true
		})
		if err != nil {
			if c.spuriousDeadline(err) {
				continue
			}
			return c.readError(err)
		}
		if rerr != nil {
			chunks.Put(buf)
			return rerr
		}
		if n == 0 {
			chunks.Put(buf)
			return io.EOF
		}
		if c.stopRead.Load() {
			// Closed while this read waited (its read side shut): what
			// came since is not served.
			chunks.Put(buf)
			return ErrClosed
		}
		err = c.feed((*buf)[:n])
		chunks.Put(buf)
		if err != nil {
			return err
		}
		if err := c.watchStall(); err != nil {
			return err
		}
	}
}

// smallRead is the buffer readPlain blocks in while the peer is quiet.
const smallRead = 512

// readPlain is readLoop for a connection without a file descriptor (TLS):
// such a read blocks with its buffer, so an idle connection waits in a
// small one of its own and takes a pooled chunk only while a read fills
// the small buffer, until a read no longer fills the chunk.
func (c *Conn) readPlain() error {
	small := make([]byte, smallRead)
	var chunk *[]byte
	defer func() {
		if chunk != nil {
			chunks.Put(chunk)
		}
	}()
	for {
		b := small
		if chunk != nil {
			b = *chunk
		}
		n, err := c.nc.Read(b)
		if n > 0 {
			if c.stopRead.Load() {
				return ErrClosed
			}
			if ferr := c.feed(b[:n]); ferr != nil {
				return ferr
			}
		}
		switch {
		case chunk == nil && n == len(small):
			chunk = chunks.Get().(*[]byte)
		case chunk != nil && n < len(b):
			chunks.Put(chunk)
			chunk = nil
		}
		if err != nil {
			if c.spuriousDeadline(err) {
				continue
			}
			return c.readError(err)
		}
		if err := c.watchStall(); err != nil {
			return err
		}
	}
}

// spuriousDeadline reports (and clears) a stall deadline that expired
// after the limits were lifted by another goroutine.
func (c *Conn) spuriousDeadline(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) || c.stall.Load() > 0 {
		return false
	}
	c.armed = false
	return c.nc.SetReadDeadline(time.Time{}) == nil
}

func (c *Conn) readError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && c.armed {
		return fmt.Errorf("%w: %d bytes of a message within %v", ErrStalled, c.partialBytes(), time.Duration(c.stall.Load()))
	}
	return err
}

func (c *Conn) partialBytes() int {
	if c.frame != nil {
		return len(c.frame)
	}
	return c.hn
}

// watchStall arms the stall deadline when a message began and is not
// complete, and clears it when no message is in progress.
func (c *Conn) watchStall() error {
	partial := c.hn > 0 || c.frame != nil
	stall := time.Duration(c.stall.Load())
	arm := partial && c.needArm && stall > 0
	c.needArm = false
	switch {
	case arm:
		c.armed = true
		return c.nc.SetReadDeadline(c.partialSince.Add(stall))
	case c.armed && (!partial || stall <= 0):
		// Done, or the limits were lifted (MarkRegistered) meanwhile.
		c.armed = false
		return c.nc.SetReadDeadline(time.Time{})
	}
	return nil
}

// beginPartial notes that a message began and did not come whole.
func (c *Conn) beginPartial() {
	c.needArm = true
	c.partialSince = time.Now()
}

// feed splits p into messages and dispatches every complete one.
func (c *Conn) feed(p []byte) error {
	for len(p) > 0 {
		if c.frame != nil {
			n := min(c.size-len(c.frame), len(p))
			if len(c.frame)+n > cap(c.frame) {
				grown := make([]byte, len(c.frame), min(c.size, max(2*cap(c.frame), len(c.frame)+n)))
				copy(grown, c.frame)
				c.frame = grown
			}
			c.frame = append(c.frame, p[:n]...)
			p = p[n:]
			if len(c.frame) < c.size {
				return nil
			}
			frame := c.frame
			c.frame = nil
			if err := c.dispatch(frame); err != nil {
				return err
			}
			continue
		}
		if c.hn == 0 && len(p) >= wire.HeaderSize {
			size, err := c.frameSize(p)
			if err != nil {
				return err
			}
			if len(p) >= size {
				if err := c.dispatch(p[:size]); err != nil {
					return err
				}
				p = p[size:]
				continue
			}
			c.startFrame(size, p, true)
			p = nil
			continue
		}
		if c.hn == 0 {
			c.beginPartial()
		}
		n := copy(c.hdr[c.hn:], p)
		c.hn += n
		p = p[n:]
		if c.hn < wire.HeaderSize {
			return nil
		}
		c.hn = 0
		size, err := c.frameSize(c.hdr[:])
		if err != nil {
			return err
		}
		c.startFrame(size, c.hdr[:], false)
	}
	return nil
}

// startFrame begins gathering a message of size bytes with its first bytes
// b (fewer than size); fresh says the message began in this read.
func (c *Conn) startFrame(size int, b []byte, fresh bool) {
	if fresh {
		c.beginPartial()
	}
	c.size = size
	c.frame = append(make([]byte, 0, min(size, max(firstFrameCap, len(b)))), b...)
}

// frameSize reads a message's size from its fixed header and applies the
// size limit.
func (c *Conn) frameSize(hdr []byte) (int, error) {
	size, _, err := wire.FrameSize(hdr)
	if err != nil {
		return 0, fmt.Errorf("wireconn: malformed message from peer: %w", err)
	}
	if max := int(c.maxSize.Load()); size > max {
		return 0, &LimitError{Size: size, Max: max}
	}
	return size, nil
}

// dispatch parses one whole message and hands it on.
func (c *Conn) dispatch(frame []byte) error {
	m := &c.msg
	if err := wire.Parse(frame, m); err != nil {
		return fmt.Errorf("wireconn: malformed message from peer: %w", err)
	}
	switch m.Type {
	case wire.TypeMethodCall:
		c.serveCall(m)
	case wire.TypeMethodReturn, wire.TypeError:
		c.resolve(m)
	case wire.TypeSignal:
		if c.opts.Signal != nil {
			c.opts.Signal(c, m)
		}
	}
	// Other types are ignored, as the specification asks.
	*m = wire.Message{}
	return nil
}
