// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// Pump buffer sizes: the read buffer starts at pumpBufferSize and grows
// for a whole tapped signal; godbus's side holds at most maxPumpBacklog
// bytes before the pump waits for it.
const (
	pumpBufferSize = 8 << 10
	minReadSpace   = 4 << 10
	maxPumpBacklog = 1 << 20
	maxIdleBuffer  = 64 << 10 // a bigger read buffer is dropped once empty
)

// pump reads a tapped connection in a goroutine of its own. It splits the
// stream into messages, hands signals to the tap as they arrive and
// passes everything else on to godbus, which reads it from the pump
// instead of the socket.
//
// On a socket it reads inside one endless syscall.RawConn.Read: after a
// read that did not fill the buffer (the socket is empty) it waits for the
// poller's next edge without the read that would only say EAGAIN, which
// saves one system call per wake-up of a connection that gets a steady
// stream of small messages.
type pump struct {
	c *peerConn

	// Used by the pump goroutine only.
	buf      []byte
	r, w     int  // unparsed bytes are buf[r:w]
	pass     int  // bytes of a message for godbus still to come
	passCall bool // that message is a method call
	msg      wire.Message

	mu      sync.Mutex
	cond    sync.Cond
	out     []byte // for godbus
	err     error  // the end of the stream, after out
	stopped bool   // the connection closed: nobody reads out any more
	started bool
	partial bool // out ends inside a message (one passed on as it came)
	// callBehind: a method call went to godbus and godbus may not have
	// dispatched it yet. Until it has, later calls go to godbus too, so
	// that none overtakes it (the tap's calls are queued at once, godbus's
	// only after it decoded them).
	callBehind bool
}

func newPump(c *peerConn) *pump {
	p := &pump{c: c}
	p.cond.L = &p.mu
	return p
}

// pumped is peerConn.Read for a tapped connection.
func (c *peerConn) pumped(b []byte) (int, error) {
	p := c.pump
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.started = true
		go p.run()
	}
	if len(p.out) == 0 && !p.partial {
		// godbus wants more after whole messages: everything it was
		// given, calls included, has been dispatched.
		p.callBehind = false
	}
	for len(p.out) == 0 && p.err == nil {
		p.cond.Wait()
	}
	if len(p.out) == 0 {
		return 0, p.err
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	if len(p.out) == 0 {
		p.out = p.out[:0:0] // let a burst's buffer go
	}
	p.cond.Broadcast() // a pump waiting for room
	return n, nil
}

// stop releases a pump waiting for godbus after the connection closed.
func (p *pump) stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// run reads until the connection ends and reports why to godbus.
func (p *pump) run() {
	p.buf = make([]byte, pumpBufferSize)
	// Bytes that came with the handshake were read ahead into c.r.
	if n := p.c.r.Buffered(); n > 0 {
		ahead, _ := p.c.r.Peek(n)
		p.reserve(n)
		p.w += copy(p.buf[p.w:], ahead)
	}
	p.c.r = nil // the pump reads from here on: let the handshake's buffer go
	err := p.process()
	if err == nil {
		err = p.read()
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		err = io.EOF
	}
	if end := p.c.tap.End; end != nil {
		end(err)
	}
	p.mu.Lock()
	p.err = err
	p.cond.Broadcast()
	p.mu.Unlock()
}

// confirmEmpty bounds how long the pump trusts a short read to mean an
// empty socket: a peer's close that came together with its last data
// leaves no later edge, so after this long one read checks for it.
const confirmEmpty = 250 * time.Millisecond

// read feeds the socket's bytes to process until an error.
func (p *pump) read() error {
	sc, ok := p.c.Conn.(syscall.Conn)
	if !ok {
		return p.readPlain()
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return p.readPlain()
	}
	var (
		failure error
		armed   bool // a read deadline bounds a wait after a short read
	)
	disarm := func() {
		if armed {
			_ = p.c.Conn.SetReadDeadline(time.Time{})
			armed = false
		}
	}
	for {
		err = rc.Read(func(fd uintptr) bool {
			for {
				space := p.space()
				n, errno := rawIO(syscall.SYS_READ, fd, space)
				ioSync.Load()
				switch {
				case errno == syscall.EAGAIN:
					// Empty for sure: the next edge is certain to come.
					disarm()
					p.idle()
					return false
				case errno != 0:
					failure = errno
					return true
				case n == 0:
					failure = io.EOF
					return true
				}
				p.w += int(n)
				if failure = p.process(); failure != nil {
					return true
				}
				if int(n) < len(space) {
					// Most likely empty: wait for the next edge without
					// the read that would say EAGAIN, but not for ever.
					if !armed {
						armed = p.c.Conn.SetReadDeadline(time.Now().Add(confirmEmpty)) == nil
					}
					p.idle()
					return false
				}
			}
		})
		if failure != nil {
			return failure
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && armed {
			disarm()
			continue // read again, from a fresh start
		}
		return err
	}
}

// readPlain is read for a connection without a file descriptor.
func (p *pump) readPlain() error {
	for {
		n, err := p.c.Conn.Read(p.space())
		p.w += n
		if perr := p.process(); perr != nil {
			return perr
		}
		if err != nil {
			return err
		}
		p.idle()
	}
}

// idle tells the tap that everything read so far is handled.
func (p *pump) idle() {
	if p.c.tap.Idle != nil {
		p.c.tap.Idle()
	}
}

// space returns free room at the end of the buffer, compacting it first.
func (p *pump) space() []byte {
	p.reserve(minReadSpace)
	return p.buf[p.w:]
}

// reserve makes room for n more bytes after w.
func (p *pump) reserve(n int) {
	if p.r == p.w {
		p.r, p.w = 0, 0
		if len(p.buf) > maxIdleBuffer {
			p.buf = make([]byte, pumpBufferSize) // let a big message's buffer go
		}
	}
	if len(p.buf)-p.w >= n {
		return
	}
	if p.r > 0 {
		p.w = copy(p.buf, p.buf[p.r:p.w])
		p.r = 0
	}
	if len(p.buf)-p.w < n {
		grown := make([]byte, max(2*len(p.buf), p.w+n))
		copy(grown, p.buf[:p.w])
		p.buf = grown
	}
}

// process handles every complete message in buf[r:w]: signals and calls
// go to the tap, the rest (and signals it declines) to godbus, replies after the
// tap's Reply saw them. A message the tap does not look at, or one too big
// for it, goes to godbus as its bytes come.
func (p *pump) process() error {
	for {
		if p.pass > 0 {
			n := min(p.pass, p.w-p.r)
			if n == 0 {
				return nil
			}
			if err := p.deliver(p.buf[p.r:p.r+n], p.pass > n, p.passCall); err != nil {
				return err
			}
			p.passCall = false
			p.pass -= n
			p.r += n
			continue
		}
		if p.w-p.r < wire.HeaderSize {
			return nil
		}
		size, typ, err := wire.FrameSize(p.buf[p.r:p.w])
		if err != nil {
			return fmt.Errorf("transport: malformed message from peer: %w", err)
		}
		tap := p.c.tap
		signal := typ == wire.TypeSignal && tap.Signal != nil
		reply := (typ == wire.TypeMethodReturn || typ == wire.TypeError) && (tap.Reply != nil || tap.ncalls.Load() > 0)
		isCall := typ == wire.TypeMethodCall
		call := isCall && tap.MethodCall != nil && !p.godbusHasCall()
		// Replies are taken whole however big while raw calls wait (one of
		// them may be the answer, which godbus would drop); godbus would
		// have buffered them whole too.
		big := size > maxTappedSize && !(reply && tap.ncalls.Load() > 0)
		if !signal && !reply && !call || big {
			p.pass, p.passCall = size, isCall && tap.MethodCall != nil
			continue
		}
		if p.w-p.r < size {
			p.reserve(size - (p.w - p.r))
			return nil
		}
		frame := p.buf[p.r : p.r+size]
		p.r += size
		if wire.Parse(frame, &p.msg) == nil {
			if call {
				if tap.MethodCall(&p.msg, frame) {
					continue
				}
			} else if reply {
				if tap.takeReply(&p.msg) {
					continue
				}
				if tap.Reply != nil && tap.Reply(&p.msg) {
					continue
				}
			} else if tap.Signal(&p.msg) {
				continue
			}
		}
		// A call the tap declined or could not parse goes to godbus.
		if err := p.deliver(frame, false, call); err != nil {
			return err
		}
	}
}

// godbusHasCall reports whether a call given to godbus may still be
// waiting to be dispatched.
func (p *pump) godbusHasCall() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.callBehind
}

// deliver appends bytes for godbus, waiting while it is far behind;
// partial says they end inside a message, call that a method call starts
// with them (the tap takes no call before godbus dispatched it).
func (p *pump) deliver(b []byte, partial, call bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.out) >= maxPumpBacklog && !p.stopped {
		p.cond.Wait()
	}
	if p.stopped {
		return net.ErrClosed
	}
	p.partial = partial
	if call {
		p.callBehind = true
	}
	p.out = append(p.out, b...)
	p.cond.Broadcast()
	return nil
}
