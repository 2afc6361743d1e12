// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// Serving on our own connection.
//
// A Server serves a wireconn connection end to end (the daemons' bus
// connections): the connection hands it every method call in wire order
// (wireconn.Options.MethodCall = ServeWire), the arguments are decoded on
// the reader, and the handlers run one at a time on the connection's call
// queue (wireconn.Serve) in that order; a handler that has put its own
// request on the wire calls Release to let the next one start. Replies and
// signals are encoded by internal/wire where the values are of simple
// types, and by godbus's public codec (EncodeBody) otherwise; a handler
// may answer with a ready body (RawReply).

// BindWire attaches s to c, whose Options.MethodCall is s.ServeWire: the
// signals and property changes of its exports are sent on c.
func (s *Server) BindWire(c *wireconn.Conn) {
	s.mu.Lock()
	s.wc = c
	s.mu.Unlock()
	go func() {
		<-c.Done()
		s.Terminate()
	}()
}

// Wire returns the connection BindWire attached, or nil.
func (s *Server) Wire() *wireconn.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.wc
}

// MaxCallBody bounds the arguments of a call ServeWire takes (1 MiB):
// bigger ones are answered LimitsExceeded before they are decoded. That
// is room for 1024 unit files of paths up to 1 kB, or for unit properties
// of nearly 1 MiB together (systemd's largest credential, 1 MiB, does not
// fit with the rest of a call). A 24 MB property value cost the
// controller and its agent seconds of CPU each, enough to miss
// heartbeats, and a 20 MB Description made systemd abort (it copies a
// unit setting it writes onto its stack, and asserts a bound on that
// copy).
const MaxCallBody = 1 << 20

// ServeWire serves one method call of c; it is c's Options.MethodCall
// and runs on c's reader goroutine.
func (s *Server) ServeWire(c *wireconn.Conn, m *wire.Message) {
	call := wireconn.CallOf(m)
	inSig, fn, err := s.resolve(dbus.ObjectPath(m.Path), m.Interface, m.Member)
	var args []any
	if err == nil && len(m.Body) > MaxCallBody {
		err = NewError(ErrLimitsExceeded, "Arguments of %d bytes to %s.%s(): at most %d are taken",
			len(m.Body), m.Interface, m.Member, MaxCallBody)
	}
	if err == nil {
		if m.Signature != inSig {
			err = NewError(ErrInvalidArgs, "Invalid arguments '%s' to call %s.%s(), expecting '%s'.",
				m.Signature, m.Interface, m.Member, inSig)
		} else {
			args, err = decodeArgs(m)
		}
	}
	c.Serve(call, func(ctx context.Context) {
		if err != nil {
			replyWireError(c, call, err)
			_ = c.Flush()
			return
		}
		out, err := runHandler(WithCall(ctx, &Call{Sender: call.Sender, Wire: c}), fn, args)
		if err != nil {
			replyWireError(c, call, err)
			_ = c.Flush() // with NO_REPLY_EXPECTED nothing was written
			return
		}
		if call.NoReply {
			// What the handler held would have left with the reply.
			_ = c.Flush()
			return
		}
		sig, body, err := encodeValues(out)
		if err != nil {
			replyWireError(c, call, NewError(ErrFailed, "reply cannot be encoded: %v", err))
			return
		}
		_ = c.ReplyCall(call, sig, body) // a closed connection needs no reply
	})
}

// decodeArgs decodes a call's body into the values godbus would give:
// simple bodies by internal/wire, others by godbus's codec.
func decodeArgs(m *wire.Message) ([]any, error) {
	if m.Signature == "" {
		if len(m.Body) != 0 {
			return nil, NewError(ErrInvalidArgs, "body of %d bytes without a signature", len(m.Body))
		}
		return nil, nil
	}
	r := wire.NewReader(m.Body, m.BigEndian)
	if body, ok := simpleBody(m.Signature, &r); ok {
		return body, nil
	}
	return DecodeBody(m.Signature, m.Body, m.BigEndian)
}

// encodeValues returns the signature and little-endian body of a reply or
// signal: a RawReply as it is, simple values by internal/wire, others by
// godbus's codec.
func encodeValues(vals []any) (string, []byte, error) {
	if len(vals) == 1 {
		if r, ok := vals[0].(RawReply); ok {
			return r.Signature, r.Body, nil
		}
	}
	if sig, body, ok := simpleArgs(vals); ok {
		return sig, body, nil
	}
	sig := dbus.SignatureOf(vals...).String()
	body, err := EncodeBody(sig, vals...)
	if err != nil {
		return "", nil, err
	}
	return sig, body, nil
}

// runHandler runs fn, turning a panic into Failed and any error into a
// D-Bus error.
func runHandler(ctx context.Context, fn MethodFunc, args []any) (out []any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, NewError(ErrFailed, "internal error: %v", r)
			fmt.Fprintf(debugOut, "dbusrt: panic in handler: %v\n%s", r, debug.Stack())
		}
	}()
	out, err = fn(ctx, args)
	if err != nil {
		return nil, AsDBusError(err)
	}
	return out, nil
}

// replyWireError answers call with err as a D-Bus error.
func replyWireError(c *wireconn.Conn, call wireconn.Call, err error) {
	e := AsDBusError(err)
	text := ""
	if len(e.Body) > 0 {
		text, _ = e.Body[0].(string)
	}
	_ = c.ErrorCall(call, e.Name, text)
}

// emitWire sends a signal of the export's object on c; with hold it waits
// for the connection's next write (wireconn.Conn.HoldSignal).
func emitWire(c *wireconn.Conn, dest string, path dbus.ObjectPath, iface, member string, hold bool, args []any) error {
	sig, body, err := encodeValues(args)
	if err != nil {
		return fmt.Errorf("dbusrt: encode signal %s.%s: %w", iface, member, err)
	}
	if hold {
		return c.HoldSignal(dest, string(path), iface, member, sig, body)
	}
	return c.EmitTo(dest, string(path), iface, member, sig, body)
}

// Release lets the next queued call of the handler's connection start
// before the current handler returns (wireconn.Release). It is a no-op
// outside such handlers.
func Release(ctx context.Context) { wireconn.Release(ctx) }

// RawReply is a reply body already in wire format: little endian, aligned
// from its first byte, valid for Signature. A method returning it as its
// only value has it sent as it is on a wireconn connection; on a godbus
// connection it is decoded and sent by godbus.
type RawReply struct {
	Signature string
	Body      []byte
}
