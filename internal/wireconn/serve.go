// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"fmt"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// Call is what a deferred reply needs of a method call, copied out of the
// message: it holds no reference to the read buffer.
type Call struct {
	Serial  uint32
	Sender  string
	NoReply bool // NO_REPLY_EXPECTED was set: ReplyCall and ErrorCall do nothing

	Path, Interface, Member string
}

// CallOf copies what a reply needs out of the method call m.
func CallOf(m *wire.Message) Call {
	// wire.Parse makes the header strings copies, so they may be kept.
	return Call{Serial: m.Serial, Sender: m.Sender, NoReply: m.Flags&FlagNoReplyExpected != 0,
		Path: m.Path, Interface: m.Interface, Member: m.Member}
}

// ReplyCall answers call with a method return of signature sig. It does
// nothing when the call carried NO_REPLY_EXPECTED.
func (c *Conn) ReplyCall(call Call, sig string, body []byte) error {
	if call.NoReply {
		return nil
	}
	h := header{typ: wire.TypeMethodReturn, replySerial: call.Serial, destination: call.Sender, signature: sig}
	return c.send(&h, body, nil)
}

// ErrorCall answers call with an error reply carrying text as its message.
// It does nothing when the call carried NO_REPLY_EXPECTED.
func (c *Conn) ErrorCall(call Call, name, text string) error {
	if call.NoReply {
		return nil
	}
	if !wire.ValidString(text) {
		text = "(invalid message)"
	}
	h := header{typ: wire.TypeError, replySerial: call.Serial, destination: call.Sender, errorName: name, signature: "s"}
	return c.send(&h, stringBody(text), nil)
}

// MaxQueuedCalls is the most functions Serve holds waiting for one
// connection (the running one and those that called Release not
// counted); the connection of a peer that queues more is closed with a
// *QueueError. Functions that called Release run beside the queue: a
// handler that releases must bound what it waits for itself.
const MaxQueuedCalls = 1024

// QueueError ends a connection whose peer queued more than MaxQueuedCalls
// calls (a peer flooding the connection).
type QueueError struct{ Max int }

func (e *QueueError) Error() string {
	return fmt.Sprintf("wireconn: peer has more than %d calls waiting to be served", e.Max)
}

// served is one function queued by Serve.
type served struct {
	call Call
	fn   func(ctx context.Context)
}

// serveQueue holds the functions Serve queued on one connection.
type serveQueue struct {
	items   []served // waiting, in order; guarded by Conn.qmu
	running bool     // a goroutine runs the queue; guarded by Conn.qmu
}

// serveState is what the context of one served function carries.
type serveState struct {
	c    *Conn
	call Call
	// handed is set (under Conn.qmu) once the function gave up its place
	// at the head of the queue, by Release or by returning.
	handed bool
}

type serveKey struct{}

// Serve queues fn on the connection's call queue. Queued functions run
// one at a time, in the order Serve was called (wire order when called
// from the reader goroutine, as handlers are), on a goroutine of the
// queue that is started on demand and ends when the queue is empty: an
// idle connection has none. fn may block. Its ctx carries the connection
// (ConnFrom) and call (CallFrom) and is cancelled when the connection
// ends; functions still queued then run with that cancelled ctx. Release
// lets the next queued function start before fn returns. Queueing more
// than MaxQueuedCalls closes the connection with a *QueueError and drops
// fn (with Options.RefuseOverflow the call is answered LimitsExceeded
// instead).
func (c *Conn) Serve(call Call, fn func(ctx context.Context)) {
	c.qmu.Lock()
	if len(c.queue.items) >= MaxQueuedCalls {
		c.qmu.Unlock()
		if c.opts.RefuseOverflow {
			_ = c.ErrorCall(call, ErrLimitsExceeded, "Too many calls waiting to be served")
			return
		}
		c.closeWith(&QueueError{Max: MaxQueuedCalls})
		return
	}
	c.queue.items = append(c.queue.items, served{call: call, fn: fn})
	start := !c.queue.running
	c.queue.running = true
	c.qmu.Unlock()
	if start {
		go c.runQueue()
	}
}

// runQueue runs queued functions until the queue is empty or a function
// handed the queue on with Release.
func (c *Conn) runQueue() {
	for {
		c.qmu.Lock()
		if len(c.queue.items) == 0 {
			c.queue.running = false
			c.queue.items = nil // an idle connection keeps no queue memory
			c.qmu.Unlock()
			return
		}
		it := c.queue.items[0]
		c.queue.items[0] = served{}
		c.queue.items = c.queue.items[1:]
		c.qmu.Unlock()
		st := &serveState{c: c, call: it.call}
		it.fn(context.WithValue(c.ctx, serveKey{}, st))
		c.qmu.Lock()
		released := st.handed
		st.handed = true
		c.qmu.Unlock()
		if released {
			return // another goroutine runs the queue now
		}
	}
}

// release hands the queue on: another goroutine (started now if work is
// waiting, else by the next Serve) runs the functions behind st's.
func (st *serveState) release() {
	c := st.c
	c.qmu.Lock()
	if st.handed {
		c.qmu.Unlock()
		return
	}
	st.handed = true
	start := len(c.queue.items) > 0
	c.queue.running = start
	c.qmu.Unlock()
	if start {
		go c.runQueue()
	}
}

// Release lets the next function queued by Serve start before the
// calling one returns, for a handler whose request is out and that now
// only waits. It does nothing on a ctx not made by Serve, and when called
// again.
func Release(ctx context.Context) {
	if st, ok := ctx.Value(serveKey{}).(*serveState); ok {
		st.release()
	}
}

// ConnFrom returns the connection of a ctx made by Serve, or nil.
func ConnFrom(ctx context.Context) *Conn {
	if st, ok := ctx.Value(serveKey{}).(*serveState); ok {
		return st.c
	}
	return nil
}

// CallFrom returns the call of a ctx made by Serve.
func CallFrom(ctx context.Context) (Call, bool) {
	if st, ok := ctx.Value(serveKey{}).(*serveState); ok {
		return st.call, true
	}
	return Call{}, false
}

// RawMethod replaces the generated decoding of one member of a generated
// interface: Call runs on the reader goroutine with the message (m.Body is
// valid only until it returns) and must not block (use c.Serve or c.Go).
type RawMethod struct {
	Member string
	Call   func(c *Conn, m *wire.Message)
}
