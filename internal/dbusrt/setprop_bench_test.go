// SPDX-License-Identifier: Apache-2.0

package dbusrt

import "testing"

// BenchmarkSetPropertyTimestamp is what a heartbeat costs a node object:
// a uint64 property that changes every time and emits nothing.
func BenchmarkSetPropertyTimestamp(b *testing.B) {
	s := NewServer()
	e, err := s.Export("/n", &Interface{Name: "x.Node", Properties: []Property{
		{Name: "Status", Sig: "s", Emit: EmitFalse},
		{Name: "LastSeen", Sig: "t", Emit: EmitFalse},
	}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var t uint64
	for b.Loop() {
		t++
		if err := e.SetProperty("LastSeen", t); err != nil {
			b.Fatal(err)
		}
	}
}
