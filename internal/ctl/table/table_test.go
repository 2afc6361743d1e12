// SPDX-License-Identifier: Apache-2.0

package table

import (
	"strings"
	"testing"
	"time"
)

func TestColumns(t *testing.T) {
	var b strings.Builder
	rows := [][]string{{"n1", "a.service", "active", "running"}, {"node-long", "b.socket", "inactive", "dead"}}
	keep := func(r []string) bool { return Match("*.service", r[1]) }
	if err := Columns(&b, []string{"NODE", "ID", "ACTIVE", "SUB"}, rows, keep); err != nil {
		t.Fatal(err)
	}
	want := "NODE      | ID        | ACTIVE   | SUB    \n" +
		"==========================================\n" +
		"n1        | a.service | active   | running\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	Columns(&b, []string{"NODE", "PATH", "IS-ENABLED"}, nil, nil)
	if b.String() != "NODE | PATH | IS-ENABLED\n========================\n" {
		t.Fatalf("empty: %q", b.String())
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"", "", true}, {"", "a", false},
		{"a*c", "abc", true}, {"a*c", "abcd", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*.service", "foo.service", true}, {"*.service", "foo.socket", false},
		{"*target", "graphical.target", true}, {"*target", "foo.service", false},
		{"sb-*.serv?ce", "sb-x.service", true}, {"[ab]", "a", false}, {"[ab]", "[ab]", true},
		{"**a**", "xxaxx", true}, {"*a*b", "aXbXb", true}, {"*a*b", "aXbXc", false},
	} {
		if got := Match(c.p, c.s); got != c.ok {
			t.Errorf("Match(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

func TestNodes(t *testing.T) {
	var b strings.Builder
	rows := []NodeRow{{"node-a", "online", "127.0.0.1", "now"}, {strings.Repeat("x", 35), "offline", "", "never"}}
	Nodes(&b, rows, true)
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[0], ClearScreen+"NODE                          | STATE     | IP                      | LAST SEEN") {
		t.Fatalf("header %q", lines[0])
	}
	if lines[1] != strings.Repeat("=", 90) {
		t.Fatalf("rule %q", lines[1])
	}
	if lines[2] != "node-a                        | online    | 127.0.0.1               | now                         " {
		t.Fatalf("row %q", lines[2])
	}
	if !strings.HasPrefix(lines[3], strings.Repeat("x", 30)+"| offline   | ") {
		t.Fatalf("truncation %q", lines[3])
	}
}

func TestLastSeen(t *testing.T) {
	loc := time.FixedZone("X", 2*3600)
	if s := LastSeen("online", 5, loc); s != "now" {
		t.Fatal(s)
	}
	if s := LastSeen("offline", 0, loc); s != "never" {
		t.Fatal(s)
	}
	if s := LastSeen("offline", 1700000000123456, loc); s != "2023-11-15 00:13:20,123+0200" {
		t.Fatal(s)
	}
}

func TestUnitTable(t *testing.T) {
	units := []string{"a.service", "much-longer-name.service"}
	w := NameWidth(units)
	var b strings.Builder
	UnitHeader(&b, w)
	UnitRow(&b, UnitStatus{ID: "a.service", LoadState: "loaded", ActiveState: "active", SubState: "running", FreezerState: "running", UnitFileState: "disabled"}, w)
	UnitRow(&b, UnitStatus{ID: "much-longer-name.service", LoadState: "loaded", ActiveState: "failed", SubState: "dead", FreezerState: "running"}, w)
	want := "UNIT\t\t\t| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n" +
		strings.Repeat("-", 24+80) + "\n" +
		"a.service\t\t| loaded\t| active\t| running\t| running\t| disabled\t|\n" +
		"much-longer-name.service\t| loaded\t| failed\t| dead\t\t| running\t| (null)\t|\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
	// Unit names that fill whole tab stops.
	b.Reset()
	UnitHeader(&b, 16)
	UnitRow(&b, UnitStatus{ID: "abcdefgh.service"}, 16)
	if !strings.HasPrefix(b.String(), "UNIT\t\t| LOADED") || !strings.Contains(b.String(), "\nabcdefgh.service\t| (null)\t") {
		t.Fatalf("%q", b.String())
	}
	// An id longer than the requested name gets no tabs (upstream's arithmetic).
	b.Reset()
	UnitRow(&b, UnitStatus{ID: "abcdefghij.service", LoadState: "x"}, 16)
	if !strings.HasPrefix(b.String(), "abcdefghij.service| x\t\t") {
		t.Fatalf("%q", b.String())
	}
}
