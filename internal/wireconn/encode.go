// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"encoding/binary"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// Header field codes and flags of the D-Bus specification.
const (
	fieldPath        = 1
	fieldInterface   = 2
	fieldMember      = 3
	fieldErrorName   = 4
	fieldReplySerial = 5
	fieldDestination = 6
	fieldSender      = 7
	fieldSignature   = 8

	// FlagNoReplyExpected is the NO_REPLY_EXPECTED message flag.
	FlagNoReplyExpected = 0x1
)

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
	str(fieldPath, 'o', h.path)
	str(fieldInterface, 's', h.iface)
	str(fieldMember, 's', h.member)
	str(fieldErrorName, 's', h.errorName)
	if h.replySerial != 0 {
		dst = pad8(dst, base)
		dst = append(dst, fieldReplySerial, 1, 'u', 0)
		dst = binary.LittleEndian.AppendUint32(dst, h.replySerial)
	}
	str(fieldDestination, 's', h.destination)
	str(fieldSender, 's', h.sender)
	if h.signature != "" {
		dst = pad8(dst, base)
		dst = append(dst, fieldSignature, 1, 'g', 0, byte(len(h.signature)))
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
