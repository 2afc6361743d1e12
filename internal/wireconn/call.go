// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// Request is a method call to send.
type Request struct {
	Destination string // may be ""
	Path        string
	Interface   string // may be ""
	Member      string
	Signature   string // of Body; "" for no arguments
	Body        []byte // little endian, as wire.Writer makes it
}

// Reply is a method return received for a Call; it owns its body.
type Reply struct {
	Signature string
	Body      []byte
	BigEndian bool
}

// Reader returns a reader over the reply's body.
func (r *Reply) Reader() wire.Reader { return wire.NewReader(r.Body, r.BigEndian) }

// writeBuffers holds the buffers messages are encoded into.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledWrite is the biggest write buffer put back into the pool.
const maxPooledWrite = 64 << 10

// send encodes and writes one message. With before, the serial is
// allocated under the write lock and given to before ahead of the write
// (to record a pending call); before returning false cancels the send.
func (c *Conn) send(h *header, body []byte, before func(serial uint32) bool) error {
	if h.sender == "" {
		h.sender = c.opts.Sender
	}
	bp := writeBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledWrite {
			*bp = (*bp)[:0]
			writeBuffers.Put(bp)
		}
	}()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h.serial = c.nextSerialLocked()
	*bp = appendMessage((*bp)[:0], h, body)
	if len(*bp) > wire.MaxMessageSize {
		return fmt.Errorf("wireconn: message of %d bytes is larger than D-Bus allows", len(*bp))
	}
	if before != nil && !before(h.serial) {
		return ErrClosed
	}
	out := *bp
	if len(c.held) > 0 {
		c.held = append(c.held, out...)
		out = c.held
	}
	return c.writeLocked(out)
}

// nextSerialLocked returns the serial of the next message (never 0); the
// caller holds wmu.
func (c *Conn) nextSerialLocked() uint32 {
	c.serial++
	if c.serial == 0 {
		c.serial = 1
	}
	return c.serial
}

// writeLocked writes p, which holds whole messages, and forgets the held
// ones; the caller holds wmu.
func (c *Conn) writeLocked(p []byte) error {
	c.held = c.held[:0]
	if cap(c.held) > maxPooledWrite {
		c.held = nil // a burst's buffer is not kept
	}
	if c.wq != nil {
		if err := c.writeQueued(p); err != nil {
			c.failWrite(fmt.Errorf("wireconn: writing: %w", err))
			return fmt.Errorf("wireconn: writing: %w", err)
		}
		return nil
	}
	if c.opts.WriteTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	}
	if _, err := c.write(p); err != nil {
		c.failWrite(fmt.Errorf("wireconn: writing: %w", err))
		return fmt.Errorf("wireconn: writing: %w", err)
	}
	return nil
}

// maxHeld is how many bytes of held messages make Hold write at once.
const maxHeld = 256 << 10

// HoldSignal encodes a signal to dest ("" broadcasts) and holds it: it
// leaves, in order, in one write with the connection's next message or
// at Flush, so that a burst of signals costs one write. The caller makes
// sure one of them follows soon.
func (c *Conn) HoldSignal(dest, path, iface, member, sig string, body []byte) error {
	h := header{typ: wire.TypeSignal, flags: FlagNoReplyExpected, path: path, iface: iface, member: member,
		destination: dest, signature: sig, sender: c.opts.Sender}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h.serial = c.nextSerialLocked()
	n := len(c.held)
	c.held = appendMessage(c.held, &h, body)
	if size := len(c.held) - n; size > wire.MaxMessageSize {
		c.held = c.held[:n]
		return fmt.Errorf("wireconn: message of %d bytes is larger than D-Bus allows", size)
	}
	if len(c.held) >= maxHeld {
		return c.writeLocked(c.held)
	}
	return nil
}

// Flush writes the messages HoldSignal holds.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.held) == 0 {
		return nil
	}
	return c.writeLocked(c.held)
}

// Go sends a method call and arranges for done to be called once with
// the reply (err nil, or an *Error for an error reply, with m holding the
// reply either way) or with a nil m and the error that prevented one
// (ErrClosed, ctx's error, a write error). done runs on the reader
// goroutine for replies, so it must not block; m.Body is valid only until
// it returns. If ctx ends before the reply, the reply is dropped when it
// comes.
func (c *Conn) Go(ctx context.Context, r *Request, done func(m *wire.Message, err error)) {
	h := header{typ: wire.TypeMethodCall, path: r.Path, iface: r.Interface, member: r.Member,
		destination: r.Destination, signature: r.Signature}
	var serial uint32
	err := c.send(&h, r.Body, func(s uint32) bool {
		serial = s
		p := &pending{done: done}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closing {
			return false
		}
		c.pending[s] = p
		p.stop = context.AfterFunc(ctx, func() {
			if c.takePending(s) != nil {
				done(nil, ctx.Err())
			}
		})
		return true
	})
	if err != nil {
		if serial == 0 || c.takePending(serial) != nil || err == ErrClosed {
			done(nil, err)
		}
	}
}

// takePending removes and returns the pending call of serial, or nil.
func (c *Conn) takePending(serial uint32) *pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[serial]
	delete(c.pending, serial)
	return p
}

// resolve hands a reply to the call waiting for it.
func (c *Conn) resolve(m *wire.Message) {
	p := c.takePending(m.ReplySerial)
	if p == nil {
		return // late, or not ours
	}
	p.stop()
	if m.Type == wire.TypeError {
		p.done(m, errorOf(m))
		return
	}
	p.done(m, nil)
}

// errorOf makes an *Error of an error reply.
func errorOf(m *wire.Message) *Error {
	e := &Error{Name: m.ErrorName}
	if len(m.Signature) > 0 && m.Signature[0] == 's' {
		r := wire.NewReader(m.Body, m.BigEndian)
		e.Message, _ = r.String()
	}
	return e
}

// Call sends a method call and waits for its reply. An error reply is
// returned as *Error. It must not be called from a handler of the same
// connection (the reply would wait for the handler): use Go there.
func (c *Conn) Call(ctx context.Context, r *Request) (*Reply, error) {
	type result struct {
		reply *Reply
		err   error
	}
	ch := make(chan result, 1)
	c.Go(ctx, r, func(m *wire.Message, err error) {
		var rep *Reply
		if m != nil && err == nil {
			rep = &Reply{Signature: m.Signature, Body: append([]byte(nil), m.Body...), BigEndian: m.BigEndian}
		}
		ch <- result{rep, err}
	})
	res := <-ch
	return res.reply, res.err
}

// Send sends a method call with NO_REPLY_EXPECTED.
func (c *Conn) Send(r *Request) error {
	h := header{typ: wire.TypeMethodCall, flags: FlagNoReplyExpected, path: r.Path, iface: r.Interface,
		member: r.Member, destination: r.Destination, signature: r.Signature}
	return c.send(&h, r.Body, nil)
}

// Emit sends a signal (no destination).
func (c *Conn) Emit(path, iface, member, sig string, body []byte) error {
	return c.EmitTo("", path, iface, member, sig, body)
}

// EmitTo sends a signal to dest only ("" broadcasts).
func (c *Conn) EmitTo(dest, path, iface, member, sig string, body []byte) error {
	h := header{typ: wire.TypeSignal, flags: FlagNoReplyExpected, path: path, iface: iface, member: member,
		destination: dest, signature: sig}
	return c.send(&h, body, nil)
}

// Reply answers call with a method return of signature sig. It does
// nothing when the call carried NO_REPLY_EXPECTED. The call may be
// answered after its handler returned (only its header fields are used).
func (c *Conn) Reply(call *wire.Message, sig string, body []byte) error {
	if call.Flags&FlagNoReplyExpected != 0 {
		return nil
	}
	h := header{typ: wire.TypeMethodReturn, replySerial: call.Serial, destination: call.Sender, signature: sig}
	return c.send(&h, body, nil)
}

// ReplyError answers call with an error reply carrying text as its
// message. It does nothing when the call carried NO_REPLY_EXPECTED.
func (c *Conn) ReplyError(call *wire.Message, name, text string) error {
	if call.Flags&FlagNoReplyExpected != 0 {
		return nil
	}
	h := header{typ: wire.TypeError, replySerial: call.Serial, destination: call.Sender, errorName: name, signature: "s"}
	if !wire.ValidString(text) {
		text = "(invalid message)"
	}
	return c.send(&h, stringBody(text), nil)
}
