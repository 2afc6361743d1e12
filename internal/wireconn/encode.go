// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"encoding/binary"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// FlagNoReplyExpected is the NO_REPLY_EXPECTED message flag.
const FlagNoReplyExpected = wire.FlagNoReplyExpected

// header is what an outgoing message carries besides its body. Empty
// strings and a zero ReplySerial are left out.
type header struct {
	typ, flags  byte
	serial      uint32
	replySerial uint32
	path        string
	iface       string
	member      string
	errorName   string
	destination string
	sender      string
	signature   string
}

var zeros [8]byte

// appendMessage appends one little-endian message to dst. The caller
// guarantees valid names and a body valid for the signature.
func appendMessage(dst []byte, h *header, body []byte) []byte {
	base := len(dst)
	dst = append(dst, 'l', h.typ, h.flags, 1)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.LittleEndian.AppendUint32(dst, h.serial)
	dst = append(dst, 0, 0, 0, 0) // field array length, set below
	str := func(code, t byte, s string) {
		if s == "" {
			return
		}
		dst = pad8(dst, base)
		dst = append(dst, code, 1, t, 0)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
		dst = append(dst, 0)
	}
	str(wire.FieldPath, 'o', h.path)
	str(wire.FieldInterface, 's', h.iface)
	str(wire.FieldMember, 's', h.member)
	str(wire.FieldErrorName, 's', h.errorName)
	if h.replySerial != 0 {
		dst = pad8(dst, base)
		dst = append(dst, wire.FieldReplySerial, 1, 'u', 0)
		dst = binary.LittleEndian.AppendUint32(dst, h.replySerial)
	}
	str(wire.FieldDestination, 's', h.destination)
	str(wire.FieldSender, 's', h.sender)
	if h.signature != "" {
		dst = pad8(dst, base)
		dst = append(dst, wire.FieldSignature, 1, 'g', 0, byte(len(h.signature)))
		dst = append(dst, h.signature...)
		dst = append(dst, 0)
	}
	binary.LittleEndian.PutUint32(dst[base+12:], uint32(len(dst)-base-wire.HeaderSize))
	dst = pad8(dst, base)
	return append(dst, body...)
}

func pad8(dst []byte, base int) []byte {
	if p := -(len(dst) - base) & 7; p != 0 {
		dst = append(dst, zeros[:p]...)
	}
	return dst
}

// stringBody returns the body of one string (signature "s").
func stringBody(s string) []byte {
	var w wire.Writer
	w.String(s)
	return w.Buf
}
