// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Invoke makes a generated client's method call and returns the reply's
// body. On a connection whose tap reads replies (transport.Tap.CanCall), a
// call whose arguments and reply have only simple types (s, o, u, i, b,
// as) is encoded by internal/wire and its reply read from the wire, which
// spares godbus's reflection on the hot calls between controller and
// agent; the result is what godbus would have returned. Any other call goes
// through godbus. Either way Release(ctx) runs once the call is on the wire.
// Two differences remain: a connection lost during a raw call gives
// dbus.ErrClosed (godbus gives its read error), and an error reply keeps
// only its message, the first string of its body.
func Invoke(ctx context.Context, conn *dbus.Conn, obj dbus.BusObject, dest string, path dbus.ObjectPath, iface, member, outSig string, args ...any) ([]any, error) {
	if tap := transport.TapOf(conn); tap != nil && simpleSignature(outSig) && tap.CanCall() {
		if sig, body, ok := simpleArgs(args); ok {
			if err := ctx.Err(); err != nil {
				return nil, err // as godbus: nothing is sent
			}
			rawCalls.Add(1)
			return rawCall(ctx, tap, dest, path, iface, member, sig, body, outSig)
		}
	}
	done := obj.GoWithContext(ctx, iface+"."+member, 0, make(chan *dbus.Call, 1), args...).Done
	Release(ctx)
	call := <-done
	return call.Body, call.Err
}

// rawCalls counts the calls Invoke sent raw (for tests).
var rawCalls atomic.Int64

// rawCall sends one call encoded by internal/wire and decodes its reply.
func rawCall(ctx context.Context, tap *transport.Tap, dest string, path dbus.ObjectPath, iface, member, sig string, body []byte, outSig string) ([]any, error) {
	serial := tap.GetSerial()
	wait, err := tap.Start(serial, wire.AppendCall(nil, serial, dest, string(path), iface, member, sig, body))
	Release(ctx)
	if err != nil {
		return nil, dbus.ErrClosed
	}
	r, err := wait(ctx)
	switch {
	case errors.Is(err, transport.ErrTapDetached):
		return nil, dbus.ErrClosed
	case err != nil:
		return nil, err // the context's error, as godbus returns it
	case r.ErrorName != "":
		return nil, transport.GodbusError(r.ErrorName, r.Signature, r.Body, r.BigEndian)
	case r.Signature != outSig:
		return nil, NewError(ErrInvalidArgs, "reply of signature %q, want %q", r.Signature, outSig)
	case outSig == "":
		return nil, nil
	}
	rd := wire.NewReader(r.Body, r.BigEndian)
	out, ok := simpleBody(outSig, &rd)
	if !ok {
		return nil, NewError(ErrInvalidArgs, "reply does not match its signature %q", outSig)
	}
	return out, nil
}

// simpleSignature reports whether sig has only the types simpleBody reads.
func simpleSignature(sig string) bool {
	for i := 0; i < len(sig); i++ {
		switch sig[i] {
		case 's', 'o', 'u', 'i', 'b':
		case 'a':
			if i+1 >= len(sig) || sig[i+1] != 's' {
				return false
			}
			i++
		default:
			return false
		}
	}
	return true
}

// maxSimpleBody is the largest body simpleArgs encodes: the hot calls and
// replies are small, and godbus checks the protocol's size limits.
const maxSimpleBody = 1 << 20

// simpleArgs encodes arguments of the Go types godbus gives s, o, u, i, b
// and as; ok is false for any other type or for a string the wire cannot
// carry (godbus then reports it).
func simpleArgs(args []any) (sig string, body []byte, ok bool) {
	var w wire.Writer
	sb := make([]byte, 0, len(args)+1)
	for _, a := range args {
		switch v := a.(type) {
		case string:
			if !wire.ValidString(v) {
				return "", nil, false
			}
			w.String(v)
			sb = append(sb, 's')
		case dbus.ObjectPath:
			if !wire.ValidObjectPath(string(v)) {
				return "", nil, false
			}
			w.ObjectPath(string(v))
			sb = append(sb, 'o')
		case uint32:
			w.Uint32(v)
			sb = append(sb, 'u')
		case int32:
			w.Uint32(uint32(v))
			sb = append(sb, 'i')
		case bool:
			b := uint32(0)
			if v {
				b = 1
			}
			w.Uint32(b)
			sb = append(sb, 'b')
		case []string:
			m := w.BeginArray(4)
			for _, s := range v {
				if !wire.ValidString(s) {
					return "", nil, false
				}
				w.String(s)
			}
			w.EndArray(m)
			sb = append(sb, 'a', 's')
		default:
			return "", nil, false
		}
	}
	if len(sb) > 255 || len(w.Buf) > maxSimpleBody {
		return "", nil, false // godbus enforces the limits of big bodies
	}
	return string(sb), w.Buf, true
}
