// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// maxTappedSize bounds the signals and calls a Tap sees; larger ones go to
// godbus without being buffered whole by the tap. Replies are taken whole
// whatever their size while raw calls wait.
const maxTappedSize = 1 << 20

// maxQueuedOutput bounds the output buffer kept between bursts.
const maxQueuedOutput = 64 << 10

// ErrTapDetached is returned by Tap.Send before the tap's connection
// started or after it closed.
var ErrTapDetached = errors.New("transport: tap has no open connection")

// Tap gives raw access to one connection's message stream next to godbus:
// it sees incoming signals before godbus decodes them (and may keep them
// from godbus), and sends complete messages between godbus's own. It is
// for the hot paths where godbus's reflection costs too much.
//
// Pass the options of Options to the godbus connection made by Accept,
// Dial or the Server; the tap attaches when the connection starts.
type Tap struct {
	// Signal, if set, is called in the connection's reader goroutine with
	// every incoming signal (up to 1 MiB) in wire order, before godbus sees
	// it. Returning true consumes the message; otherwise godbus gets it.
	// msg and its Body are only valid during the call.
	Signal func(msg *wire.Message) bool
	// Reply, if set, is called like Signal with every incoming method
	// return and error (up to 1 MiB) that answers no raw call of the tap's
	// (Call, Start), before godbus gets it. It is where work that must
	// happen in wire order with the signals sees the replies. Returning
	// true consumes the reply: only for replies to calls godbus did not
	// make, which it would decode and drop.
	Reply func(msg *wire.Message) bool
	// MethodCall, if set, is called like Signal with every incoming method call
	// (up to 1 MiB) in wire order, before godbus sees it; frame is the
	// whole message. Returning true consumes the call; otherwise godbus
	// gets it. It is how a server takes calls without godbus's decoding.
	MethodCall func(msg *wire.Message, frame []byte) bool
	// Idle, if set, is called in the reader goroutine whenever everything
	// read so far has been handled and the reader is about to wait for
	// more input: the moment to Flush what the signals queued elsewhere.
	Idle func()
	// End, if set, is called once in the reader goroutine when the
	// incoming stream ends, with the reason: io.EOF when the peer closed
	// or the connection was closed here, otherwise what broke it (a
	// malformed message, a socket error). The connection closes after it,
	// and raw calls still waiting fail only then: End must not block, nor
	// wait for a reply on this connection.
	End func(err error)

	serial atomic.Uint32
	mu     sync.Mutex
	pc     *peerConn
	calls  map[uint32]chan *RawResult // raw calls waiting for their reply, guarded by mu
	ncalls atomic.Int32               // len(calls), read without the lock
}

type tapKey struct{}

// Options returns the godbus options that bind the tap to the connection
// they are used for: ctx becomes the connection's context (carrying the
// tap) and the tap hands out the connection's serials, so raw messages
// never reuse one of godbus's.
func (t *Tap) Options(ctx context.Context) []dbus.ConnOption {
	return []dbus.ConnOption{
		dbus.WithContext(context.WithValue(ctx, tapKey{}, t)),
		dbus.WithSerialGenerator(t),
	}
}

// GetSerial implements dbus.SerialGenerator (never 0).
func (t *Tap) GetSerial() uint32 {
	for {
		if s := t.serial.Add(1); s != 0 {
			return s
		}
	}
}

// RetireSerial implements dbus.SerialGenerator.
func (t *Tap) RetireSerial(uint32) {}

// Send writes one complete message (made with wire.AppendSignal and a
// serial from GetSerial) to the connection, after anything queued and
// never in the middle of one of godbus's messages.
func (t *Tap) Send(msg []byte) error {
	pc := t.conn()
	if pc == nil {
		return ErrTapDetached
	}
	return pc.writeMessage(msg, true)
}

// Queue adds one complete message to the connection's output without
// writing it yet: it leaves with the next Flush, Send or godbus message,
// in order. Batching saves a system call per message under bursts.
func (t *Tap) Queue(msg []byte) error {
	pc := t.conn()
	if pc == nil {
		return ErrTapDetached
	}
	return pc.writeMessage(msg, false)
}

// Flush writes what Queue left.
func (t *Tap) Flush() error {
	pc := t.conn()
	if pc == nil {
		return ErrTapDetached
	}
	return pc.writeMessage(nil, true)
}

func (t *Tap) conn() *peerConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pc
}

// TapOf returns the tap bound to conn (made with the tap's Options), or nil.
func TapOf(conn *dbus.Conn) *Tap { return tapFrom(conn) }

// tapFrom returns the tap bound to a connection's context, if any.
func tapFrom(conn *dbus.Conn) *Tap {
	t, _ := conn.Context().Value(tapKey{}).(*Tap)
	return t
}

func (t *Tap) attach(pc *peerConn) {
	t.mu.Lock()
	t.pc = pc
	t.mu.Unlock()
	pc.tap = t
	if t.Signal != nil || t.Reply != nil || t.MethodCall != nil || t.End != nil {
		pc.pump = newPump(pc)
	}
}

func (t *Tap) detach(pc *peerConn) {
	t.mu.Lock()
	if t.pc == pc {
		t.pc = nil
		t.failCallsLocked()
	}
	t.mu.Unlock()
}

// writeMessage adds one whole message (or none) to the queued output under
// the write lock and, if flush is set, writes the queue.
func (c *peerConn) writeMessage(msg []byte, flush bool) error {
	if !c.open.Load() {
		return ErrTapDetached
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !flush {
		c.out = append(c.out, msg...)
		return nil
	}
	return c.writeLocked(msg)
}

// writeLocked writes the queued output followed by msg; c.wmu is held.
func (c *peerConn) writeLocked(msg []byte) error {
	if len(c.out) == 0 {
		if len(msg) == 0 {
			return nil
		}
		_, err := c.w.Write(msg)
		return err
	}
	c.out = append(c.out, msg...)
	_, err := c.w.Write(c.out)
	if cap(c.out) > maxQueuedOutput {
		c.out = nil // do not keep a burst's buffer for ever
	} else {
		c.out = c.out[:0]
	}
	return err
}
