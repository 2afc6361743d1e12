// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// Bodies of simple types (s, o, u, i, b, as) are encoded and decoded by
// internal/wire with the Go types godbus gives them, sparing godbus's
// reflection on the hot calls and signals.

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
