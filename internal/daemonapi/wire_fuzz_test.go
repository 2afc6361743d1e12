// SPDX-License-Identifier: Apache-2.0

package daemonapi

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
)

// godbusAccepts decodes body (signature sig) with godbus alone, or
// returns nil when godbus refuses it.
func godbusAccepts(sig string, body []byte, big bool) []any {
	var order binary.ByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/t")),
		dbus.FieldInterface: dbus.MakeVariant("org.example.T"),
		dbus.FieldMember:    dbus.MakeVariant("T"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.ParseSignatureMust(sig)),
	}}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, order); err != nil {
		return nil
	}
	b := append(buf.Bytes(), body...)
	order.PutUint32(b[4:], uint32(len(body)))
	order.PutUint32(b[8:], 1)
	got, err := dbus.DecodeMessage(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return got.Body
}

// FuzzWireDecodeListUnits: whatever the generated decoder accepts, godbus
// accepts too, with the same values.
func FuzzWireDecodeListUnits(f *testing.F) {
	body, err := wireEncodeInternalAgentListUnitsOut(sampleUnits(2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body, false)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, body []byte, big bool) {
		units, err := wireDecodeInternalAgentListUnitsOut(body, big)
		if err != nil {
			return
		}
		vals := godbusAccepts(InternalAgentListUnitsOutSig, body, big)
		if vals == nil {
			t.Fatalf("ours accepts % x, godbus does not", body)
		}
		var want []bluechi.UnitInfo
		if err := dbus.Store(vals, &want); err != nil {
			t.Fatal(err)
		}
		checkSame(t, "decoded", units, want)
	})
}

// FuzzWireDecodeEnableUnitFiles does the same for a reply of a boolean
// and an array of structs.
func FuzzWireDecodeEnableUnitFiles(f *testing.F) {
	body, err := wireEncodeInternalAgentEnableUnitFilesOut(true, []bluechi.UnitFileChange{{Type: "symlink", Filename: "/a", Destination: "/b"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body, false)
	f.Fuzz(func(t *testing.T, body []byte, big bool) {
		carries, changes, err := wireDecodeInternalAgentEnableUnitFilesOut(body, big)
		if err != nil {
			return
		}
		vals := godbusAccepts(InternalAgentEnableUnitFilesOutSig, body, big)
		if vals == nil {
			t.Fatalf("ours accepts % x, godbus does not", body)
		}
		var wc bool
		var wch []bluechi.UnitFileChange
		if err := dbus.Store(vals, &wc, &wch); err != nil {
			t.Fatal(err)
		}
		checkSame(t, "decoded", []any{carries, changes}, []any{wc, wch})
	})
}
