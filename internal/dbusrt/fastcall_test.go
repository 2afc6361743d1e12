// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// encodeCall encodes a method call the way a peer would send it.
func encodeCall(t testing.TB, serial uint32, order binary.ByteOrder, flags dbus.Flags, iface string, body ...any) []byte {
	t.Helper()
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Flags: flags, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/eclipse/bluechi/node/n1")),
		dbus.FieldMember:      dbus.MakeVariant("StartUnit"),
		dbus.FieldDestination: dbus.MakeVariant("org.eclipse.bluechi"),
		dbus.FieldSender:      dbus.MakeVariant(":1.42"),
	}, Body: body}
	if iface != "" {
		msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(iface)
	}
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	// godbus encodes with the serial it keeps itself: decode and patch it.
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, order); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	order.PutUint32(b[8:], serial)
	return b
}

// TestFastDecodeMatchesGodbus: for every body of simple types, in both byte
// orders, the call built from the tap's parse equals godbus's decoding of
// the same bytes, serial included; other bodies are left to godbus.
func TestFastDecodeMatchesGodbus(t *testing.T) {
	if serialOffset == 0 {
		t.Fatal("dbus.Message has no serial field: fast decoding is off")
	}
	bodies := [][]any{
		nil,
		{"unit.service", "replace"},
		{"unit.service", "replace", uint32(7)},
		{dbus.ObjectPath("/a/b"), int32(-3), true, false},
		{[]string{}, []string{"a", "bé"}, "x"},
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for i, body := range bodies {
			for _, iface := range []string{"org.eclipse.bluechi.Node", ""} {
				frame := encodeCall(t, uint32(100+i), order, dbus.FlagNoAutoStart, iface, body...)
				var m wire.Message
				if err := wire.Parse(frame, &m); err != nil {
					t.Fatal(err)
				}
				got := fastDecode(&m)
				if got == nil {
					t.Fatalf("body %v: not decoded fast", body)
				}
				want, err := dbus.DecodeMessage(bytes.NewReader(frame))
				if err != nil {
					t.Fatal(err)
				}
				if got.Serial() != want.Serial() || got.Serial() != uint32(100+i) {
					t.Errorf("serial %d, godbus %d", got.Serial(), want.Serial())
				}
				if diff := cmp.Diff(want.Headers, got.Headers, cmp.AllowUnexported(dbus.Variant{}, dbus.Signature{})); diff != "" {
					t.Errorf("body %v headers (-godbus +fast):\n%s", body, diff)
				}
				if diff := cmp.Diff(want.Body, got.Body); diff != "" {
					t.Errorf("body (-godbus +fast):\n%s", diff)
				}
				if got.Type != want.Type || got.Flags != want.Flags {
					t.Errorf("type/flags %v/%v, godbus %v/%v", got.Type, got.Flags, want.Type, want.Flags)
				}
			}
		}
	}
	// Other types: godbus decodes them (decodeCall still answers).
	frame := encodeCall(t, 9, binary.LittleEndian, 0, "x.y", map[string]dbus.Variant{"a": dbus.MakeVariant(uint64(1))})
	var m wire.Message
	if err := wire.Parse(frame, &m); err != nil {
		t.Fatal(err)
	}
	if fastDecode(&m) != nil {
		t.Error("a{sv} decoded fast")
	}
	if msg := decodeCall(&m, frame); msg == nil || msg.Serial() != 9 || len(msg.Body) != 1 {
		t.Errorf("fallback decode: %v", msg)
	}
}

// TestFastDecodeRefusesBadBodies: a body that does not match its signature
// is left to godbus, which refuses it too.
func TestFastDecodeRefusesBadBodies(t *testing.T) {
	frame := encodeCall(t, 5, binary.LittleEndian, 0, "x.y", "abc", uint32(2))
	var m wire.Message
	if err := wire.Parse(frame, &m); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"sb", "ss", "s", "suu", "a", "ai"} {
		m.Signature = sig
		if fastDecode(&m) != nil {
			t.Errorf("signature %q over a body of su decoded fast", sig)
		}
	}
}

func BenchmarkDecodeCall(b *testing.B) {
	frame := encodeCall(b, 5, binary.LittleEndian, 0, "org.eclipse.bluechi.Node", "sb-oneshot.service", "replace")
	var m wire.Message
	if err := wire.Parse(frame, &m); err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fastDecode(&m)
		}
	})
	b.Run("godbus", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dbus.DecodeMessage(bytes.NewReader(frame))
		}
	})
}
