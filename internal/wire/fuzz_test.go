// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/godbus/dbus/v5"
)

// FuzzCopy copies arbitrary bodies. It must never panic, and whatever Copy
// accepts must be accepted again, unchanged, when copied back at the
// original alignment, and must be a body godbus decodes.
func FuzzCopy(f *testing.F) {
	for _, c := range copyCases() {
		for _, order := range orders {
			body := bodyOf(f, godbusSignal(f, order, c.v))
			f.Add(body, dbus.SignatureOf(c.v).String(), order == binary.BigEndian, uint8(0))
			f.Add(body, dbus.SignatureOf(c.v).String(), order == binary.BigEndian, uint8(4))
		}
	}
	f.Add([]byte{1, 'v', 0, 1, 'v', 0, 1, 'y', 0, 1}, "v", false, uint8(3))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, "at", false, uint8(4))
	f.Fuzz(func(t *testing.T, body []byte, sig string, big bool, pre uint8) {
		pre %= 8
		r := NewReader(body, big)
		w := Writer{Buf: make([]byte, pre)}
		if err := Copy(&w, &r, sig); err != nil {
			if len(w.Buf) != int(pre) || r.Rest() != len(body) {
				t.Fatal("state changed on error")
			}
			return
		}
		read := len(body) - r.Rest()
		// Copied back to the original offset, the bytes are those read
		// (in little endian).
		back := Writer{Buf: make([]byte, 0, read)}
		r2 := NewReader(w.Buf, false)
		r2.off = int(pre)
		if err := Copy(&back, &r2, sig); err != nil {
			t.Fatalf("copy of the copy fails: %v", err)
		}
		if r2.Rest() != 0 {
			t.Fatalf("copy of the copy reads %d of %d bytes", len(w.Buf)-r2.Rest()-int(pre), len(w.Buf)-int(pre))
		}
		if !big && !bytes.Equal(back.Buf, body[:read]) {
			t.Fatalf("round trip differs:\n% x\n% x", back.Buf, body[:read])
		}
		// godbus decodes it.
		var b Writer
		b.String("x")
		r3 := NewReader(w.Buf, false)
		r3.off = int(pre)
		if err := Copy(&b, &r3, sig); err != nil {
			t.Fatal(err)
		}
		msg := AppendSignal(nil, 1, "/", "a.b", "C", "", "s"+sig, b.Buf)
		if _, err := dbus.DecodeMessage(bytes.NewReader(msg)); err != nil {
			t.Fatalf("godbus refuses %q: %v\n% x", sig, err, msg)
		}
		var m Message
		if err := Parse(msg, &m); err != nil {
			t.Fatalf("Parse of AppendSignal: %v", err)
		}
	})
}

// FuzzParse parses arbitrary frames. It must never panic; what it accepts
// must agree with FrameSize and, where godbus decodes the same bytes, with
// godbus' header.
func FuzzParse(f *testing.F) {
	for _, order := range orders {
		f.Add(godbusSignal(f, order, "a", "b", "c"))
		f.Add(godbusSignal(f, order, unitProps()))
		f.Add(godbusMessage(f, &dbus.Message{Type: dbus.TypeError, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldReplySerial: v(uint32(3)),
			dbus.FieldErrorName:   v("a.b.C"),
			dbus.FieldDestination: v(":1.5"),
		}, Body: []any{"msg"}}, order, 9))
	}
	f.Add(rawMessage(false, TypeSignal, 1, nil, append(signalFields[:3:3], field{10, "v", func(b *builder) { b.sig("t").u64(1) }})...))
	f.Add([]byte("l\x04\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, buf []byte) {
		size, typ, ferr := FrameSize(buf)
		var m Message
		err := Parse(buf, &m)
		if err != nil {
			return
		}
		if ferr != nil || size != len(buf) || typ != m.Type {
			t.Fatalf("Parse accepts what FrameSize says is %d, %d, %v", size, typ, ferr)
		}
		if m.Serial == 0 || (len(m.Body) == 0) != (m.Signature == "") || !ValidSignature(m.Signature) {
			t.Fatalf("bad message accepted: %+v", m)
		}
		g, gerr := dbus.DecodeMessage(bytes.NewReader(buf))
		if gerr != nil {
			return // godbus also checks the body
		}
		str := func(f dbus.HeaderField) string {
			if x, ok := g.Headers[f]; ok {
				switch y := x.Value().(type) {
				case string:
					return y
				case dbus.ObjectPath:
					return string(y)
				case dbus.Signature:
					return y.String()
				}
			}
			return ""
		}
		if m.Path != str(dbus.FieldPath) || m.Interface != str(dbus.FieldInterface) ||
			m.Member != str(dbus.FieldMember) || m.ErrorName != str(dbus.FieldErrorName) ||
			m.Destination != str(dbus.FieldDestination) || m.Sender != str(dbus.FieldSender) ||
			m.Signature != str(dbus.FieldSignature) || m.Serial != g.Serial() || m.Flags != byte(g.Flags) {
			t.Fatalf("Parse and godbus disagree: %+v\n%v", m, g)
		}
	})
}
