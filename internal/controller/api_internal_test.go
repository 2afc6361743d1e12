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
		if got := encodeNodeList(nodes); !bytes.Equal(got, want) {
			t.Errorf("%v:\n got %x\nwant %x", nodes, got, want)
		}
	}
}
