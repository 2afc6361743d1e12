// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
)

// listNodesReply is a ListNodes reply with n offline nodes, as godbus
// sends it.
func listNodesReply(n int) *dbus.Message {
	nodes := make([]bluechi.NodeInfo, n)
	for i := range nodes {
		name := fmt.Sprintf("sim%d", i+1)
		nodes[i] = bluechi.NodeInfo{Name: name, Path: bluechi.NodePath(name), Status: "offline"}
	}
	return &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)),
		dbus.FieldDestination: dbus.MakeVariant(":1.1"),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(nodes)),
	}, Body: []any{nodes}}
}

// BenchmarkGodbusListNodes1000 measures what godbus alone costs for the
// ListNodes reply with 1000 nodes, the floor under the API's latency while
// both ends use godbus: encoding (the controller), decoding and storing
// into []NodeInfo (a generated client).
func BenchmarkGodbusListNodes1000(b *testing.B) {
	m := listNodesReply(1000)
	var buf bytes.Buffer
	if err := m.EncodeTo(&buf, binary.LittleEndian); err != nil {
		b.Fatal(err)
	}
	frame := buf.Bytes()
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			if err := m.EncodeTo(&out, binary.LittleEndian); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+store", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			got, err := dbus.DecodeMessage(bytes.NewReader(frame))
			if err != nil {
				b.Fatal(err)
			}
			var nodes []bluechi.NodeInfo
			if err := dbus.Store(got.Body, &nodes); err != nil || len(nodes) != 1000 {
				b.Fatal(len(nodes), err)
			}
		}
	})
}
