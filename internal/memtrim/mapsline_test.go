// SPDX-License-Identifier: Apache-2.0

package memtrim

import (
	"slices"
	"testing"
)

func TestMapsLine(t *testing.T) {
	for _, c := range []struct {
		line, path string
		n          int
	}{
		{"00400000-005de000 r-xp 00000000 fe:00 9986711                            /usr/libexec/bluechi-agent", "/usr/libexec/bluechi-agent", 5},
		{"00400000-005de000 r-xp 00000000 fe:00 9986711    /opt/my apps/bluechi agent", "/opt/my apps/bluechi agent", 5},
		{"7f8d8f120000-7f8d8f400000 rw-p 00000000 00:00 0 ", "", 5},
		{"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]", "[vsyscall]", 5},
	} {
		fields, path := mapsLine(c.line)
		if path != c.path || len(fields) != c.n || fields[0] != c.line[:len(fields[0])] {
			t.Errorf("mapsLine(%q) = %q, %q", c.line, fields, path)
		}
	}
	if fields, _ := mapsLine("00400000-005de000 r-xp"); !slices.Equal(fields, []string{"00400000-005de000", "r-xp"}) {
		t.Errorf("short line: %q", fields)
	}
}
