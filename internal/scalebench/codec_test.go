// SPDX-License-Identifier: Apache-2.0

package scalebench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/testbus"
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

// bigReply serves one method returning a fixed string.
type bigReply struct{ s string }

func (b bigReply) Get() (string, *dbus.Error) { return b.s, nil }

// BenchmarkBusRelay measures what the message bus alone takes to carry a
// reply of ListNodes's size with 1000 nodes (70 kB) and of a small one:
// a godbus server returns a string (encoded with one copy) and the wire
// client times the round trip. The difference to ListNodes through the
// wire client is the controller's share.
func BenchmarkBusRelay(b *testing.B) {
	dir := b.TempDir()
	bus, err := testbus.StartDaemon(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Stop()
	for _, size := range []int{100, 70 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			srv, err := dbus.Connect(bus.Address)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			name := fmt.Sprintf("org.test.Big%d", size)
			if _, err := srv.RequestName(name, dbus.NameFlagDoNotQueue); err != nil {
				b.Fatal(err)
			}
			if err := srv.Export(bigReply{strings.Repeat("x", size)}, "/big", "org.test.Big"); err != nil {
				b.Fatal(err)
			}
			wc, err := dialWireClient(bus.Address)
			if err != nil {
				b.Fatal(err)
			}
			defer wc.Close()
			for b.Loop() {
				if _, err := wc.call(name, "/big", "org.test.Big", "Get"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
