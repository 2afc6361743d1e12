// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Ordered dispatch.
//
// godbus runs every incoming method call in a goroutine of its own, so two
// calls that arrive in one order can reach their handlers in the other. A
// Server made ordered (SetOrdered, before the connection is created) takes
// method calls out of godbus in its reader goroutine, in wire order, and
// starts their handlers one at a time: the next handler starts when the
// previous one returned or released its turn with Release (generated clients
// do that as soon as their request is on the wire). So requests are passed
// on in the order they came in, while slow answers do not block the queue.

// MaxQueuedCalls bounds the calls waiting on an ordered connection; more are
// refused with LimitsExceeded, so a flooding peer is throttled.
const MaxQueuedCalls = 4096

type turnKey struct{}

// turn is a handler's place in the ordered queue.
type turn struct {
	once sync.Once
	ch   chan struct{}
}

func (t *turn) release() { t.once.Do(func() { close(t.ch) }) }

// Release lets the next queued call start before the current handler
// returns. It is a no-op outside ordered handlers.
func Release(ctx context.Context) {
	if t, ok := ctx.Value(turnKey{}).(*turn); ok {
		t.release()
	}
}

type orderQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []*dbus.Message
	closed  bool
}

// SetOrdered makes s dispatch method calls in wire order; call it before
// ConnOptions.
func (s *Server) SetOrdered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queue == nil {
		s.queue = &orderQueue{}
		s.queue.cond = sync.NewCond(&s.queue.mu)
	}
}

// intercept runs in godbus's reader goroutine for every incoming message.
func (s *Server) intercept(msg *dbus.Message) {
	q := s.queue
	if q == nil || msg.Type != dbus.TypeMethodCall {
		return
	}
	cp := *msg
	msg.Type = 0 // godbus ignores messages of no known type: we own this call now
	s.enqueue(&cp)
}

// enqueue queues one call, or refuses it when the queue is full.
func (s *Server) enqueue(msg *dbus.Message) {
	q := s.queue
	q.mu.Lock()
	if len(q.pending) >= MaxQueuedCalls || q.closed {
		q.mu.Unlock()
		if conn := s.Conn(); conn != nil {
			sendError(conn, msg, NewError(ErrLimitsExceeded, "Too many queued calls"))
		}
		return
	}
	q.pending = append(q.pending, msg)
	q.cond.Signal()
	q.mu.Unlock()
}

// runQueue starts queued handlers one at a time until the connection closes.
func (s *Server) runQueue() {
	q := s.queue
	work := make(chan queuedCall) // unbuffered: a send succeeds only into a waiting handler
	go func() {
		<-s.baseCtx.Done()
		q.mu.Lock()
		q.closed = true
		q.cond.Broadcast()
		q.mu.Unlock()
	}()
	for {
		q.mu.Lock()
		for len(q.pending) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.pending = nil
			q.mu.Unlock()
			return
		}
		msg := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		q.mu.Unlock()
		c := queuedCall{msg: msg, t: &turn{ch: make(chan struct{})}}
		select {
		case work <- c: // a waiting handler goroutine takes it
		default:
			go s.handleCalls(work, c)
		}
		<-c.t.ch
	}
}

// A handler goroutine that finished its call waits for the next one
// instead of ending: a new goroutine starts with a small stack and copies
// it each time it doubles (three times for a typical handler, on the path
// of every call), while a waiting one has its stack grown already. At most
// maxIdleHandlers wait per ordered connection, each for at most
// handlerLinger, so an idle daemon keeps none.
const (
	maxIdleHandlers = 1
	handlerLinger   = time.Second
)

// queuedCall is one call handed to a handler goroutine, with its turn.
type queuedCall struct {
	msg *dbus.Message
	t   *turn
}

// handleCalls dispatches c, then further calls from work, until it has
// waited handlerLinger for one, another handler is waiting already, or the
// connection closes.
func (s *Server) handleCalls(work <-chan queuedCall, c queuedCall) {
	var linger *time.Timer
	for {
		s.handleCall(c)
		if s.idleHandlers.Add(1) > maxIdleHandlers {
			s.idleHandlers.Add(-1)
			return
		}
		if linger == nil {
			linger = time.NewTimer(handlerLinger)
		} else {
			linger.Reset(handlerLinger)
		}
		select {
		case c = <-work:
			s.idleHandlers.Add(-1)
		case <-linger.C:
			s.idleHandlers.Add(-1)
			return
		case <-s.baseCtx.Done():
			s.idleHandlers.Add(-1)
			return
		}
	}
}

// handleCall dispatches c and releases its turn, even if the handler ends
// its goroutine (runtime.Goexit).
func (s *Server) handleCall(c queuedCall) {
	defer c.t.release()
	s.dispatch(c.msg, c.t)
}

// dispatch does what godbus's handleCall does, for one queued call.
func (s *Server) dispatch(msg *dbus.Message, t *turn) {
	conn := s.Conn()
	if conn == nil {
		return
	}
	member := headerString(msg, dbus.FieldMember)
	iface := headerString(msg, dbus.FieldInterface)
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	sender := headerString(msg, dbus.FieldSender)
	if iface == PeerInterface {
		switch member {
		case "Ping":
			sendReply(conn, msg)
		case "GetMachineId":
			id, _ := os.ReadFile("/etc/machine-id")
			sendReply(conn, msg, strings.TrimSpace(string(id)))
		default:
			sendError(conn, msg, NewError(ErrUnknownMethod, "Unknown method '%s'", member))
		}
		return
	}
	obj, _ := s.LookupObject(path)
	i, ok := obj.LookupInterface(iface)
	if !ok {
		sendError(conn, msg, NewError(ErrUnknownInterface, "Object does not implement the interface '%s'", iface))
		return
	}
	m, ok := i.LookupMethod(member)
	if !ok {
		sendError(conn, msg, NewError(ErrUnknownMethod, "Unknown method '%s'", member))
		return
	}
	var (
		out []any
		err error
	)
	if hm, ok := m.(*handlerMethod); ok {
		var args []any
		if args, err = hm.DecodeArguments(conn, sender, msg, msg.Body); err == nil {
			out, err = hm.call(context.WithValue(s.baseCtx, turnKey{}, t), args[0].(*Call))
		}
	} else if dm, ok := m.(dbus.ArgumentDecoder); ok {
		var args []any
		if args, err = dm.DecodeArguments(conn, sender, msg, msg.Body); err == nil {
			out, err = m.Call(args...)
		}
	} else {
		err = NewError(ErrFailed, "method cannot be dispatched in order")
	}
	if msg.Flags&dbus.FlagNoReplyExpected != 0 {
		// What the handler queued on the tap would have left with the
		// reply: send it now.
		if tap := transport.TapOf(conn); tap != nil {
			_ = tap.Flush()
		}
		return
	}
	if err != nil {
		sendError(conn, msg, AsDBusError(err))
		return
	}
	sendReply(conn, msg, out...)
}

func replyHeaders(call *dbus.Message) map[dbus.HeaderField]dbus.Variant {
	h := map[dbus.HeaderField]dbus.Variant{dbus.FieldReplySerial: dbus.MakeVariant(call.Serial())}
	if s := headerString(call, dbus.FieldSender); s != "" {
		h[dbus.FieldDestination] = dbus.MakeVariant(s)
	}
	return h
}

func sendReply(conn *dbus.Conn, call *dbus.Message, body ...any) {
	if len(body) == 1 {
		if r, ok := body[0].(RawReply); ok {
			if err := sendRawReply(conn, call, r); err != nil {
				sendError(conn, call, errNoTap)
			}
			return
		}
	}
	tap := transport.TapOf(conn)
	if tap != nil {
		// Simple bodies (the replies of every call on a job's path) are
		// encoded by internal/wire, sparing godbus's reflection.
		if sig, raw, ok := simpleArgs(body); ok {
			simpleReplies.Add(1)
			_ = tap.Send(wire.AppendReturn(nil, tap.GetSerial(), call.Serial(), headerString(call, dbus.FieldSender), sig, raw))
			return
		}
	}
	m := &dbus.Message{Type: dbus.TypeMethodReply, Headers: replyHeaders(call), Body: body}
	if len(body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	// A body godbus cannot encode would make it panic while reporting the
	// failure (replies on peer connections carry no destination): encode
	// first. On a tapped connection those bytes are sent as they are.
	if tap == nil {
		if err := m.EncodeTo(io.Discard, binary.LittleEndian); err != nil {
			sendError(conn, call, NewError(ErrFailed, "reply cannot be encoded: %v", err))
			return
		}
		conn.Send(m, nil)
		return
	}
	var b bytes.Buffer
	if err := m.EncodeTo(&b, binary.LittleEndian); err != nil {
		sendError(conn, call, NewError(ErrFailed, "reply cannot be encoded: %v", err))
		return
	}
	frame := b.Bytes()
	binary.LittleEndian.PutUint32(frame[8:], tap.GetSerial()) // the serial's fixed place
	_ = tap.Send(frame)                                       // a closed connection needs no reply
}

// simpleReplies counts the replies sendReply encoded with internal/wire (for
// tests).
var simpleReplies atomic.Int64

// RawReply is a reply body already in wire format: little endian, aligned
// from its first byte, valid for Signature. A method returning it as its
// only value has it sent as it is, with no godbus encoding; this needs a
// connection with a transport.Tap (elsewhere the call fails).
type RawReply struct {
	Signature string
	Body      []byte
}

// errNoTap is why a RawReply cannot be sent.
var errNoTap = NewError(ErrFailed, "raw reply on a connection without a tap")

func sendRawReply(conn *dbus.Conn, call *dbus.Message, r RawReply) error {
	tap := transport.TapOf(conn)
	if tap == nil {
		return errNoTap
	}
	_ = tap.Send(wire.AppendReturn(nil, tap.GetSerial(), call.Serial(), headerString(call, dbus.FieldSender), r.Signature, r.Body))
	return nil
}

func sendError(conn *dbus.Conn, call *dbus.Message, e *dbus.Error) {
	m := &dbus.Message{Type: dbus.TypeError, Headers: replyHeaders(call), Body: e.Body}
	m.Headers[dbus.FieldErrorName] = dbus.MakeVariant(e.Name)
	if len(e.Body) > 0 {
		m.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(e.Body...))
	}
	conn.Send(m, nil)
}
