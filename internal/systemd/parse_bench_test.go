// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// BenchmarkParsePropertiesChanged reads a unit's PropertiesChanged as the
// agent gets it from systemd, for the Unit interface (whose properties sit
// 4 bytes off their copy's alignment) and the Service interface.
func BenchmarkParsePropertiesChanged(b *testing.B) {
	props := map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant("active"), "SubState": dbus.MakeVariant("running"),
		"StateChangeTimestamp": dbus.MakeVariant(uint64(1718000000123456)), "StateChangeTimestampMonotonic": dbus.MakeVariant(uint64(123456789)),
		"InactiveExitTimestamp": dbus.MakeVariant(uint64(1718000000123456)), "InactiveExitTimestampMonotonic": dbus.MakeVariant(uint64(123456789)),
		"ActiveEnterTimestamp": dbus.MakeVariant(uint64(1718000000123456)), "ActiveEnterTimestampMonotonic": dbus.MakeVariant(uint64(123456789)),
		"ActiveExitTimestamp": dbus.MakeVariant(uint64(0)), "ActiveExitTimestampMonotonic": dbus.MakeVariant(uint64(0)),
		"InactiveEnterTimestamp": dbus.MakeVariant(uint64(0)), "InactiveEnterTimestampMonotonic": dbus.MakeVariant(uint64(0)),
		"Job": dbus.MakeVariant(struct {
			ID   uint32
			Path dbus.ObjectPath
		}{0, "/"}),
		"ConditionResult": dbus.MakeVariant(true), "AssertResult": dbus.MakeVariant(true),
		"ConditionTimestamp": dbus.MakeVariant(uint64(1718000000123456)), "ConditionTimestampMonotonic": dbus.MakeVariant(uint64(123456789)),
		"AssertTimestamp": dbus.MakeVariant(uint64(1718000000123456)), "AssertTimestampMonotonic": dbus.MakeVariant(uint64(123456789)),
		"InvocationID": dbus.MakeVariant(bytes.Repeat([]byte{7}, 16)), "Markers": dbus.MakeVariant([]string{}),
	}
	for _, iface := range []string{UnitInterface, "org.freedesktop.systemd1.Service"} {
		b.Run(iface[len("org.freedesktop.systemd1."):], func(b *testing.B) {
			msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
				dbus.FieldPath:      dbus.MakeVariant(UnitPath("sb-oneshot.service")),
				dbus.FieldInterface: dbus.MakeVariant(PropertiesIface),
				dbus.FieldMember:    dbus.MakeVariant("PropertiesChanged"),
				dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf("", map[string]dbus.Variant{}, []string{})),
			}, Body: []any{iface, props, []string{}}}
			var buf bytes.Buffer
			if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
				b.Fatal(err)
			}
			binary.LittleEndian.PutUint32(buf.Bytes()[8:], 1) // godbus leaves the serial to the connection
			var m wire.Message
			b.ReportAllocs()
			for b.Loop() {
				if err := wire.Parse(buf.Bytes(), &m); err != nil {
					b.Fatal(err)
				}
				if e, ok := parseRaw(&m); !ok || e.ev == nil {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
