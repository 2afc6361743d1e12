// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"bytes"
	"reflect"
	"unsafe"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Calls without godbus's decoder.
//
// godbus decodes every message with reflection and allocates about 16 kB
// for a call of two strings; on the request path of a job that was most of
// the time a daemon spent on the call. An ordered server whose connection
// has a tap takes the calls from the tap's reader instead (TapCalls), in
// wire order, and builds the *dbus.Message itself from the header that
// internal/wire already checked and a body of simple types (s, o, u, i, b,
// as). Any other body is decoded by godbus from the same bytes. Handlers
// get the arguments, flags, serial and the header fields dispatch uses
// exactly as godbus would give them; the message lacks only the header
// fields no call handler reads (UNIX_FDS, unknown codes). Unlike godbus,
// which drops a call with unknown flags or header fields, such calls are
// served, as the D-Bus specification asks receivers to ignore both.

// serialOffset is the offset of dbus.Message's unexported serial, which
// only godbus's decoder can otherwise set (replies are addressed by it).
// Zero (never the serial's offset: Type comes first) turns fast decoding
// off, should a godbus version lack the field.
var serialOffset = func() uintptr {
	f, ok := reflect.TypeFor[dbus.Message]().FieldByName("serial")
	if !ok || f.Type.Kind() != reflect.Uint32 {
		return 0
	}
	return f.Offset
}()

// TapCalls makes the ordered server s take its method calls from t (before
// the connection is made with t's options). Calls then never reach godbus.
func (s *Server) TapCalls(t *transport.Tap) {
	s.mu.RLock()
	ordered := s.queue != nil
	s.mu.RUnlock()
	if ordered {
		t.MethodCall = s.tappedCall
	}
}

// tappedCall queues one call read by the tap.
func (s *Server) tappedCall(m *wire.Message, frame []byte) bool {
	msg := decodeCall(m, frame)
	if msg == nil {
		return false // godbus decodes it again and drops it as it would have
	}
	s.enqueue(msg)
	return true
}

// decodeCall turns a parsed method call into the message godbus would
// have decoded from frame, or nil if godbus refuses frame.
func decodeCall(m *wire.Message, frame []byte) *dbus.Message {
	if msg := fastDecode(m); msg != nil {
		return msg
	}
	msg, err := dbus.DecodeMessage(bytes.NewReader(frame))
	if err != nil {
		return nil
	}
	return msg
}

// fastDecode builds the message from m if its body has only simple types.
func fastDecode(m *wire.Message) *dbus.Message {
	if serialOffset == 0 {
		return nil
	}
	var body []any
	if m.Signature != "" {
		var ok bool
		r := wire.NewReader(m.Body, m.BigEndian)
		if body, ok = simpleBody(m.Signature, &r); !ok {
			return nil
		}
	} else if len(m.Body) != 0 {
		return nil
	}
	h := make(map[dbus.HeaderField]dbus.Variant, 6)
	h[dbus.FieldPath] = dbus.MakeVariant(dbus.ObjectPath(m.Path))
	h[dbus.FieldMember] = dbus.MakeVariant(m.Member)
	if m.Interface != "" {
		h[dbus.FieldInterface] = dbus.MakeVariant(m.Interface)
	}
	if m.Destination != "" {
		h[dbus.FieldDestination] = dbus.MakeVariant(m.Destination)
	}
	if m.Sender != "" {
		h[dbus.FieldSender] = dbus.MakeVariant(m.Sender)
	}
	if m.Signature != "" {
		sig, err := dbus.ParseSignature(m.Signature)
		if err != nil {
			return nil
		}
		h[dbus.FieldSignature] = dbus.MakeVariant(sig)
	}
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Flags: dbus.Flags(m.Flags), Headers: h, Body: body}
	*(*uint32)(unsafe.Add(unsafe.Pointer(msg), serialOffset)) = m.Serial
	return msg
}

// simpleBody decodes a body of the types s, o, u, i, b and as, with the Go
// types godbus gives them; ok is false for any other signature or a body
// that does not match it.
func simpleBody(sig string, r *wire.Reader) (body []any, ok bool) {
	body = make([]any, 0, len(sig))
	for i := 0; i < len(sig); i++ {
		switch sig[i] {
		case 's', 'o':
			v, err := r.String()
			if err != nil {
				return nil, false
			}
			if sig[i] == 's' {
				body = append(body, v)
				continue
			}
			if !wire.ValidObjectPath(v) {
				return nil, false
			}
			body = append(body, dbus.ObjectPath(v))
		case 'u', 'i', 'b':
			v, err := r.Uint32()
			if err != nil {
				return nil, false
			}
			switch sig[i] {
			case 'u':
				body = append(body, v)
			case 'i':
				body = append(body, int32(v))
			default:
				if v > 1 {
					return nil, false
				}
				body = append(body, v == 1)
			}
		case 'a':
			if i+1 >= len(sig) || sig[i+1] != 's' {
				return nil, false
			}
			i++
			v, err := r.Strings()
			if err != nil {
				return nil, false
			}
			if v == nil {
				v = []string{}
			}
			body = append(body, v)
		default:
			return nil, false
		}
	}
	if r.Done() != nil {
		return nil, false
	}
	return body, true
}
