// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"math"
	"slices"
)

// Writer appends values of a little-endian body. Alignment is relative to
// the start of Buf. The zero value is ready; Reset keeps the buffer.
type Writer struct {
	Buf []byte
}

// Reset empties the body, keeping its memory.
func (w *Writer) Reset() { w.Buf = w.Buf[:0] }

// String appends a string (alignment 4, length, bytes, NUL). The caller
// guarantees that s is valid UTF-8 without NUL.
func (w *Writer) String(s string) {
	if p := -len(w.Buf) & 3; p != 0 {
		w.Buf = append(w.Buf, zeros[:p]...)
	}
	w.Buf = binary.LittleEndian.AppendUint32(w.Buf, uint32(len(s)))
	w.Buf = append(w.Buf, s...)
	w.Buf = append(w.Buf, 0)
}

// Uint32 appends a uint32 (alignment 4).
func (w *Writer) Uint32(v uint32) {
	w.Align(4)
	w.Buf = binary.LittleEndian.AppendUint32(w.Buf, v)
}

// Signature appends a signature (alignment 1). The caller guarantees
// that sig is a valid signature.
func (w *Writer) Signature(sig string) {
	w.Buf = append(w.Buf, byte(len(sig)))
	w.Buf = append(w.Buf, sig...)
	w.Buf = append(w.Buf, 0)
}

// ObjectPath appends an object path, which is laid out as a string. The
// caller guarantees that p is a valid object path.
func (w *Writer) ObjectPath(p string) { w.String(p) }

// Align pads the body with zero bytes to a multiple of n (1, 2, 4 or 8).
func (w *Writer) Align(n int) {
	if p := -len(w.Buf) & (n - 1); p != 0 {
		w.Buf = append(w.Buf, zeros[:p]...)
	}
}

// ArrayMark is where an array begun by BeginArray lies in the body.
type ArrayMark struct{ lenAt, start int }

// BeginArray starts an array whose elements align to elemAlign: it writes
// a placeholder length and the padding before the first element.
func (w *Writer) BeginArray(elemAlign int) ArrayMark {
	w.Align(4)
	m := ArrayMark{lenAt: len(w.Buf)}
	w.Buf = append(w.Buf, 0, 0, 0, 0)
	w.Align(elemAlign)
	m.start = len(w.Buf)
	return m
}

// EndArray sets the length of the array begun at m to the bytes of the
// elements written since. The caller keeps arrays below 64 MiB.
func (w *Writer) EndArray(m ArrayMark) {
	binary.LittleEndian.PutUint32(w.Buf[m.lenAt:], uint32(len(w.Buf)-m.start))
}

// AppendReturn appends one complete little-endian method return to dst,
// answering the call with serial replySerial, and returns the extended
// slice. The header holds REPLY_SERIAL, DESTINATION (left out when dest is
// "") and SIGNATURE (left out when sig is ""); body follows. The caller's
// guarantees are those of AppendSignal.
func AppendReturn(dst []byte, serial, replySerial uint32, dest, sig string, body []byte) []byte {
	base := len(dst)
	dst = beginMessage(dst, TypeMethodReturn, 0, serial, HeaderSize+3*16+len(dest)+len(sig), body)
	dst = append(dst, FieldReplySerial, 1, 'u', 0)
	dst = binary.LittleEndian.AppendUint32(dst, replySerial)
	if dest != "" {
		dst = appendField(dst, base, FieldDestination, 's', dest)
	}
	return endMessage(dst, base, sig, body)
}

// AppendCall appends one complete little-endian method call to dst and
// returns the extended slice: header fields PATH, INTERFACE (left out when
// iface is ""), MEMBER, DESTINATION (left out when dest is "") and
// SIGNATURE (left out when sig is ""), no flags, then body. The caller's
// guarantees are those of AppendSignal.
func AppendCall(dst []byte, serial uint32, dest, path, iface, member, sig string, body []byte) []byte {
	base := len(dst)
	dst = beginMessage(dst, TypeMethodCall, 0, serial, HeaderSize+5*16+len(path)+len(iface)+len(member)+len(dest)+len(sig), body)
	dst = appendField(dst, base, FieldPath, 'o', path)
	if iface != "" {
		dst = appendField(dst, base, FieldInterface, 's', iface)
	}
	dst = appendField(dst, base, FieldMember, 's', member)
	if dest != "" {
		dst = appendField(dst, base, FieldDestination, 's', dest)
	}
	return endMessage(dst, base, sig, body)
}

// beginMessage grows dst for a message whose header takes about hdr bytes
// and appends the fixed part of the header.
func beginMessage(dst []byte, typ, flags byte, serial uint32, hdr int, body []byte) []byte {
	dst = slices.Grow(dst, hdr+len(body))
	dst = append(dst, 'l', typ, flags, 1)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.LittleEndian.AppendUint32(dst, serial)
	return append(dst, 0, 0, 0, 0) // length of the field array, set by endMessage
}

// endMessage appends the SIGNATURE field, sets the field array's length
// and appends the padding and the body of the message begun at base.
func endMessage(dst []byte, base int, sig string, body []byte) []byte {
	dst = appendSignatureField(dst, base, sig)
	binary.LittleEndian.PutUint32(dst[base+12:], uint32(len(dst)-base-HeaderSize))
	dst = pad8(dst, base)
	return append(dst, body...)
}

// AppendSignal appends one complete little-endian signal message to dst and
// returns the extended slice. The header holds the fields PATH, INTERFACE,
// MEMBER, DESTINATION (left out when dest is "") and SIGNATURE (left out
// when sig is ""), the flags are NO_REPLY_EXPECTED (as for every signal
// libdbus makes), and body follows.
//
// The caller guarantees that serial is not 0, that the names are valid, that
// body is a valid little-endian body of signature sig (such as Writer and
// Copy make), and that the message is not larger than MaxMessageSize.
// Alignment is relative to len(dst), so dst may hold other messages.
func AppendSignal(dst []byte, serial uint32, path, iface, member, dest, sig string, body []byte) []byte {
	base := len(dst)
	dst = beginMessage(dst, TypeSignal, FlagNoReplyExpected, serial, HeaderSize+5*16+len(path)+len(iface)+len(member)+len(dest)+len(sig), body)
	dst = appendField(dst, base, FieldPath, 'o', path)
	dst = appendField(dst, base, FieldInterface, 's', iface)
	dst = appendField(dst, base, FieldMember, 's', member)
	if dest != "" {
		dst = appendField(dst, base, FieldDestination, 's', dest)
	}
	return endMessage(dst, base, sig, body)
}

// appendField appends a header field of a string type t ('s' or 'o').
func appendField(dst []byte, base int, code, t byte, s string) []byte {
	dst = pad8(dst, base)
	// Code and variant signature take 4 bytes: the length is aligned.
	dst = append(dst, code, 1, t, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	dst = append(dst, s...)
	return append(dst, 0)
}

// pad8 appends zero bytes up to a multiple of 8 counted from base.
func pad8(dst []byte, base int) []byte {
	if p := -(len(dst) - base) & 7; p != 0 {
		dst = append(dst, zeros[:p]...)
	}
	return dst
}

// appendSignatureField appends the SIGNATURE header field, if sig is not "".
func appendSignatureField(dst []byte, base int, sig string) []byte {
	if sig == "" {
		return dst
	}
	dst = pad8(dst, base)
	dst = append(dst, FieldSignature, 1, 'g', 0, byte(len(sig)))
	dst = append(dst, sig...)
	return append(dst, 0)
}

// Byte appends a byte (type 'y').
func (w *Writer) Byte(v byte) { w.Buf = append(w.Buf, v) }

// Bool appends a boolean (type 'b', 4 bytes, 0 or 1).
func (w *Writer) Bool(v bool) {
	var u uint32
	if v {
		u = 1
	}
	w.Uint32(u)
}

// Int16 appends an int16 (type 'n', alignment 2).
func (w *Writer) Int16(v int16) { w.Uint16(uint16(v)) }

// Uint16 appends a uint16 (type 'q', alignment 2).
func (w *Writer) Uint16(v uint16) {
	w.Align(2)
	w.Buf = binary.LittleEndian.AppendUint16(w.Buf, v)
}

// Int32 appends an int32 (type 'i', alignment 4).
func (w *Writer) Int32(v int32) { w.Uint32(uint32(v)) }

// Int64 appends an int64 (type 'x', alignment 8).
func (w *Writer) Int64(v int64) { w.Uint64(uint64(v)) }

// Uint64 appends a uint64 (type 't', alignment 8).
func (w *Writer) Uint64(v uint64) {
	w.Align(8)
	w.Buf = binary.LittleEndian.AppendUint64(w.Buf, v)
}

// Double appends a float64 (type 'd', alignment 8).
func (w *Writer) Double(v float64) { w.Uint64(math.Float64bits(v)) }

// BeginStruct aligns the body for a struct or dict entry (alignment 8).
func (w *Writer) BeginStruct() { w.Align(8) }
