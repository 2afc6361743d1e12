// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var orders = []binary.ByteOrder{binary.LittleEndian, binary.BigEndian}

// godbusMessage encodes a message with godbus and sets its serial, which
// godbus leaves at 0 for messages it does not send itself.
func godbusMessage(tb testing.TB, msg *dbus.Message, order binary.ByteOrder, serial uint32) []byte {
	tb.Helper()
	if len(msg.Body) > 0 {
		if msg.Headers == nil {
			msg.Headers = map[dbus.HeaderField]dbus.Variant{}
		}
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(msg.Body...))
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, order); err != nil {
		tb.Fatalf("godbus cannot encode %v: %v", msg, err)
	}
	b := buf.Bytes()
	order.PutUint32(b[8:], serial)
	return b
}

// godbusSignal encodes a signal with the given body.
func godbusSignal(tb testing.TB, order binary.ByteOrder, body ...any) []byte {
	tb.Helper()
	return godbusMessage(tb, &dbus.Message{
		Type: dbus.TypeSignal,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/example/Agent")),
			dbus.FieldInterface: dbus.MakeVariant("org.example.Agent"),
			dbus.FieldMember:    dbus.MakeVariant("UnitPropertiesChanged"),
			dbus.FieldSender:    dbus.MakeVariant(":1.42"),
		},
		Body: body,
	}, order, 99)
}

// bodyOf returns the body of an encoded message.
func bodyOf(tb testing.TB, msg []byte) []byte {
	tb.Helper()
	var m Message
	if err := Parse(msg, &m); err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return m.Body
}

// decode decodes a message with godbus.
func decode(tb testing.TB, msg []byte) *dbus.Message {
	tb.Helper()
	m, err := dbus.DecodeMessage(bytes.NewReader(msg))
	if err != nil {
		tb.Fatalf("godbus cannot decode the message: %v\n% x", err, msg)
	}
	return m
}

type variantView struct {
	Sig   string
	Value any
}

// cmpOpts compares values decoded by godbus.
var cmpOpts = cmp.Options{
	cmp.Transformer("Variant", func(v dbus.Variant) variantView {
		return variantView{v.Signature().String(), v.Value()}
	}),
	cmp.Transformer("Signature", func(s dbus.Signature) string { return s.String() }),
	cmpopts.EquateEmpty(),
}

// builder makes bodies by hand, for input godbus would not produce.
type builder struct {
	b   []byte
	big bool
}

func (b *builder) order() interface {
	binary.ByteOrder
	binary.AppendByteOrder
} {
	if b.big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func (b *builder) pad(n int) *builder {
	for len(b.b)%n != 0 {
		b.b = append(b.b, 0)
	}
	return b
}

func (b *builder) raw(p ...byte) *builder { b.b = append(b.b, p...); return b }

func (b *builder) u32(v uint32) *builder {
	b.pad(4)
	b.b = b.order().AppendUint32(b.b, v)
	return b
}

func (b *builder) u64(v uint64) *builder {
	b.pad(8)
	b.b = b.order().AppendUint64(b.b, v)
	return b
}

// str appends a well-formed string or object path with content s.
func (b *builder) str(s string) *builder {
	b.u32(uint32(len(s)))
	b.b = append(b.b, s...)
	b.b = append(b.b, 0)
	return b
}

// sig appends a signature (or the signature of a variant).
func (b *builder) sig(s string) *builder {
	b.b = append(b.b, byte(len(s)))
	b.b = append(b.b, s...)
	b.b = append(b.b, 0)
	return b
}
