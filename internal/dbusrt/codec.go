// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// The codec bridge encodes and decodes message bodies with godbus's
// public API (dbus.Message.EncodeTo, dbus.DecodeMessage), for the values
// the generated wire code does not encode itself: variants and what
// contains them. The bodies are those of internal/wire and wireconn.

// EncodeBody returns the little-endian body of values args, whose
// signature must be sig (wrap variant-carrying values with FixVariants).
func EncodeBody(sig string, args ...any) ([]byte, error) {
	if got := dbus.SignatureOf(args...).String(); got != sig {
		return nil, fmt.Errorf("dbusrt: encoding values of signature %q as %q", got, sig)
	}
	if len(args) == 0 {
		return nil, nil
	}
	msg := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(args...)),
	}, Body: args}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("dbusrt: encoding %q: %w", sig, err)
	}
	b := buf.Bytes()
	fields := int(binary.LittleEndian.Uint32(b[12:16]))
	start := (16 + fields + 7) &^ 7
	if start > len(b) {
		return nil, fmt.Errorf("dbusrt: encoding %q: short message", sig)
	}
	return b[start:], nil
}

// DecodeBody decodes body, of signature sig and in the given byte order,
// into the values godbus makes of it (store them with Decode). It fails
// on a body that is not valid for sig by the rules the message bus applies
// (wire.CheckBody), nothing left over.
func DecodeBody(sig string, body []byte, bigEndian bool) ([]any, error) {
	if sig == "" {
		if len(body) != 0 {
			return nil, NewError(ErrInvalidArgs, "body of %d bytes without a signature", len(body))
		}
		return nil, nil
	}
	if err := wire.CheckBody(sig, body, bigEndian); err != nil {
		return nil, NewError(ErrInvalidArgs, "body of signature %q: %v", sig, err)
	}
	var order interface {
		binary.ByteOrder
		binary.AppendByteOrder
	} = binary.LittleEndian
	endian := byte('l')
	if bigEndian {
		order, endian = binary.BigEndian, 'B'
	}
	// A method return with serial 1 answering serial 1: the header
	// fields REPLY_SERIAL and SIGNATURE, then the body.
	hdr := make([]byte, 0, 48+len(sig))
	hdr = append(hdr, endian, byte(dbus.TypeMethodReply), 0, 1)
	hdr = order.AppendUint32(hdr, uint32(len(body)))
	hdr = order.AppendUint32(hdr, 1)
	hdr = order.AppendUint32(hdr, 0) // field array length, set below
	hdr = append(hdr, byte(dbus.FieldReplySerial), 1, 'u', 0)
	hdr = order.AppendUint32(hdr, 1)
	hdr = append(hdr, byte(dbus.FieldSignature), 1, 'g', 0, byte(len(sig)))
	hdr = append(hdr, sig...)
	hdr = append(hdr, 0)
	order.PutUint32(hdr[12:], uint32(len(hdr)-16))
	for len(hdr)%8 != 0 {
		hdr = append(hdr, 0)
	}
	msg, err := dbus.DecodeMessage(bytes.NewReader(append(hdr, body...)))
	if err != nil {
		return nil, NewError(ErrInvalidArgs, "body of signature %q: %v", sig, err)
	}
	return msg.Body, nil
}
