// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"testing"

	"github.com/godbus/dbus/v5"
)

// PropString finds string properties among values of every kind, in both
// byte orders once copied, and refuses what is not a string.
func TestPropString(t *testing.T) {
	props := map[string]dbus.Variant{
		"Id":          dbus.MakeVariant("x.service"),
		"ActiveState": dbus.MakeVariant("active"),
		"Nested":      dbus.MakeVariant(map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("no")}),
		"Number":      dbus.MakeVariant(uint64(7)),
		"Pairs":       dbus.MakeVariant([]struct{ A, B string }{{"a", "b"}}),
		"Path":        dbus.MakeVariant(dbus.ObjectPath("/x")),
		"SubState":    dbus.MakeVariant("running"),
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		body := bodyOf(t, godbusSignal(t, order, props))
		r := NewReader(body, order == binary.BigEndian)
		var w Writer
		if err := Copy(&w, &r, "a{sv}"); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]string{"ActiveState": "active", "SubState": "running", "Id": "x.service"} {
			if got, ok := PropString(w.Buf, key); !ok || got != want {
				t.Errorf("%s = %q, %v; want %q", key, got, ok, want)
			}
		}
		for _, key := range []string{"Number", "Path", "Nested", "Missing", ""} {
			if got, ok := PropString(w.Buf, key); ok {
				t.Errorf("%s = %q, want not found", key, got)
			}
		}
	}
	for _, bad := range [][]byte{nil, {1, 0, 0}, {200, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := PropString(bad, "x"); ok {
			t.Errorf("PropString(%v) found something", bad)
		}
	}
}
