// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"encoding/binary"
	"testing"
)

// agentSignal is a typical agent signal: UnitStateChanged with four strings.
func agentSignal(tb testing.TB) []byte {
	return godbusSignal(tb, binary.LittleEndian, "httpd.service", "active", "running", "real")
}

// propsBody returns the body of a UnitPropertiesChanged signal: two strings
// and 22 properties, and the offset of the properties.
func propsBody(tb testing.TB, order binary.ByteOrder) []byte {
	return bodyOf(tb, godbusSignal(tb, order, "httpd.service", "org.freedesktop.systemd1.Service", unitProps()))
}

func BenchmarkParse(b *testing.B) {
	msg := agentSignal(b)
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := Parse(msg, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCopyProps(b *testing.B) {
	for _, c := range []struct {
		name string
		big  bool
		node string
	}{
		{"same-alignment", false, "node12345"}, // checked, then copied as is
		{"realigned", false, "node1"},          // moved by 4
		{"big-endian", true, "node1"},          // converted
	} {
		b.Run(c.name, func(b *testing.B) {
			order := binary.ByteOrder(binary.LittleEndian)
			if c.big {
				order = binary.BigEndian
			}
			body := propsBody(b, order)
			var w Writer
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := NewReader(body, c.big)
				r.String()
				r.String()
				w.Reset()
				w.String(c.node)
				w.String("httpd.service")
				w.String("org.freedesktop.systemd1.Service")
				src, dst := (len(body)-r.Rest()+3)&^3, (len(w.Buf)+3)&^3
				if aligned := (src-dst)&7 == 0 && !c.big; aligned != (c.name == "same-alignment") {
					b.Fatalf("aligned %v", aligned)
				}
				if err := Copy(&w, &r, "a{sv}"); err != nil {
					b.Fatal(err)
				}
				if err := r.Done(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendSignal(b *testing.B) {
	var w Writer
	w.String("node1")
	w.String("httpd.service")
	w.String("active")
	w.String("running")
	w.String("real")
	var frame []byte
	b.ReportAllocs()
	for b.Loop() {
		frame = AppendSignal(frame[:0], 12345, "/org/containers/bluechi/monitor/1", "org.eclipse.bluechi.Monitor",
			"UnitStateChanged", ":1.234", "sssss", w.Buf)
	}
}

// TestAllocs checks the allocation budget: Parse allocates the header
// strings once, Copy and AppendSignal nothing once their buffers are big
// enough.
func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	msg := agentSignal(t)
	var m Message
	if n := testing.AllocsPerRun(100, func() { Parse(msg, &m) }); n != 1 {
		t.Errorf("Parse: %v allocations", n)
	}
	for _, order := range orders {
		body := propsBody(t, order)
		big := order == binary.BigEndian
		for _, node := range []string{"a", "abcde"} {
			var w Writer
			var frame []byte
			run := func() {
				r := NewReader(body, big)
				r.String()
				r.String()
				w.Reset()
				w.String(node)
				if err := Copy(&w, &r, "a{sv}"); err != nil {
					t.Fatal(err)
				}
				frame = AppendSignal(frame[:0], 1, "/a", "b.c", "D", ":1.1", "sa{sv}", w.Buf)
			}
			run()
			// r.String allocates its two results.
			if n := testing.AllocsPerRun(100, run); n != 2 {
				t.Errorf("%v %q: %v allocations, want the 2 of Reader.String", order, node, n)
			}
		}
	}
}
