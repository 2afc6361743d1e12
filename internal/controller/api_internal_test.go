// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"bytes"
	"testing"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// TestNodeListEncoding: the raw ListNodes reply is byte for byte what
// godbus's codec makes of the same list.
func TestNodeListEncoding(t *testing.T) {
	for _, nodes := range [][]bluechi.NodeInfo{
		{},
		{{Name: "n1", Path: bluechi.NodePath("n1"), Status: "online", PeerIP: "10.0.0.1"}},
		{{Name: "a", Path: bluechi.NodePath("a"), Status: "offline"}, {Name: "bb-c", Path: bluechi.NodePath("bb-c"), Status: "online", PeerIP: "::1"}},
	} {
		want, err := dbusrt.EncodeBody(sigListNodes, nodes)
		if err != nil {
			t.Fatal(err)
		}
		if got, skipped := encodeNodeList(nodes); !bytes.Equal(got, want) || skipped != 0 {
			t.Errorf("%v: skipped %d\n got %x\nwant %x", nodes, skipped, got, want)
		}
	}
}

// TestNodeListEncodingSkipsInvalidStrings: a node whose name is not a
// valid D-Bus string (invalid UTF-8, NUL) is left out of the raw reply
// rather than written, which would make the bus drop the controller.
func TestNodeListEncodingSkipsInvalidStrings(t *testing.T) {
	good := bluechi.NodeInfo{Name: "good", Path: bluechi.NodePath("good"), Status: "offline"}
	nodes := []bluechi.NodeInfo{
		{Name: "\xff\xfebad", Path: bluechi.NodePath("\xff\xfebad"), Status: "offline"},
		good,
		{Name: "nul\x00", Path: bluechi.NodePath("nul\x00"), Status: "offline"},
	}
	want, err := dbusrt.EncodeBody(sigListNodes, []bluechi.NodeInfo{good})
	if err != nil {
		t.Fatal(err)
	}
	if got, skipped := encodeNodeList(nodes); !bytes.Equal(got, want) || skipped != 2 {
		t.Errorf("skipped %d, want 2\n got %x\nwant %x", skipped, got, want)
	}
}
