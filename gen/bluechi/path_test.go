// SPDX-License-Identifier: Apache-2.0

package bluechi_test

import (
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
)

func TestNodeNameFromPath(t *testing.T) {
	for _, name := range []string{"laptop", "", "node-1.example", "9lives", "a_b", "ü/x"} {
		got, ok := bluechi.NodeNameFromPath(bluechi.NodePath(name))
		if !ok || got != name {
			t.Errorf("NodeNameFromPath(NodePath(%q)) = %q, %v", name, got, ok)
		}
	}
	for _, p := range []dbus.ObjectPath{"/org/eclipse/bluechi", "/org/eclipse/bluechi/node", "/org/eclipse/bluechi/node/", "/org/eclipse/bluechi/node/a/b", "/org/eclipse/bluechi/job/1"} {
		if got, ok := bluechi.NodeNameFromPath(p); ok {
			t.Errorf("NodeNameFromPath(%q) = %q, true; want false", p, got)
		}
	}
}
