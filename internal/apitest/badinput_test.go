// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"context"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

type panickingJob struct {
	daemonapi.UnimplementedJobServer
}

func (panickingJob) Cancel(context.Context) error { panic("boom") }

// TestBadInput proves that malformed calls get proper D-Bus error names and
// never take the server down.
func TestBadInput(t *testing.T) {
	bus := testbus.Start(t)
	server, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if err := dbusrt.RequestName(server, testName); err != nil {
		t.Fatal(err)
	}
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	nodePath := bluechi.NodePath("node-1")
	if _, err := daemonapi.ExportNode(server, nodePath, daemonapi.UnimplementedNodeServer{}, bluechi.NodeProperties{Name: "node-1", Status: "offline"}); err != nil {
		t.Fatal(err)
	}
	job, err := daemonapi.ExportJob(server, bluechi.JobPath(1), panickingJob{}, bluechi.JobProperties{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	node := client.Object(testName, nodePath)
	call := func(obj dbus.BusObject, method string, args ...any) error {
		return obj.Call(method, 0, args...).Err
	}
	cases := []struct {
		name   string
		err    error
		wantEr string
	}{
		{"wrong argument types", call(node, bluechi.NodeInterface+".StartUnit", uint32(1), "replace"), dbusrt.ErrInvalidArgs},
		{"too few arguments", call(node, bluechi.NodeInterface+".StartUnit", "a.service"), dbusrt.ErrInvalidArgs},
		{"too many arguments", call(node, bluechi.NodeInterface+".ListUnits", "x"), dbusrt.ErrInvalidArgs},
		{"unimplemented method", call(node, bluechi.NodeInterface+".ListUnits"), dbusrt.ErrUnknownMethod},
		{"unknown method", call(node, bluechi.NodeInterface+".Frobnicate"), dbusrt.ErrUnknownMethod},
		{"unknown interface", call(node, "org.example.Nope.Frobnicate"), dbusrt.ErrUnknownInterface},
		{"set read-only property", call(node, dbusrt.PropertiesInterface+".Set", bluechi.NodeInterface, "Status", dbus.MakeVariant("online")), dbusrt.ErrPropertyReadOnly},
		{"get unknown property", call(node, dbusrt.PropertiesInterface+".Get", bluechi.NodeInterface, "Nope"), dbusrt.ErrUnknownProperty},
		{"get property of unknown interface", call(node, dbusrt.PropertiesInterface+".Get", "org.example.Nope", "Status"), dbusrt.ErrUnknownInterface},
		{"properties with wrong types", call(node, dbusrt.PropertiesInterface+".Get", uint32(1), "Status"), dbusrt.ErrInvalidArgs},
		{"unknown path, method", call(client.Object(testName, "/org/eclipse/bluechi/node/nope"), bluechi.NodeInterface+".ListUnits"), dbusrt.ErrUnknownObject},
		{"unknown path, introspect", call(client.Object(testName, "/org/eclipse/bluechi/node/nope"), dbusrt.IntrospectableInterface+".Introspect"), dbusrt.ErrUnknownObject},
		{"unknown path, property", call(client.Object(testName, "/nope"), dbusrt.PropertiesInterface+".Get", bluechi.NodeInterface, "Status"), dbusrt.ErrUnknownObject},
		{"intermediate path, method", call(client.Object(testName, "/org/eclipse/bluechi/node"), bluechi.NodeInterface+".ListUnits"), dbusrt.ErrUnknownObject},
		{"handler panic", call(client.Object(testName, bluechi.JobPath(1)), bluechi.JobInterface+".Cancel"), dbusrt.ErrFailed},
	}
	for _, c := range cases {
		if got := dbusrt.ErrorName(c.err); got != c.wantEr {
			t.Errorf("%s: error %q (%v), want %s", c.name, got, c.err, c.wantEr)
		}
	}

	// The server is still serving after all that.
	if v, err := bluechi.NewNodeClient(client, testName, nodePath).GetName(context.Background()); err != nil || v != "node-1" {
		t.Fatalf("after bad input: Name = %q, %v", v, err)
	}
	// Intermediate paths introspect with their children.
	var x string
	if err := client.Object(testName, "/org/eclipse/bluechi/node").Call(dbusrt.IntrospectableInterface+".Introspect", 0).Store(&x); err != nil {
		t.Fatal(err)
	}
	n := parseIntrospection(t, "intermediate", []byte(x))
	if len(n.Nodes) != 1 || n.Nodes[0].Name != "node_2d1" {
		t.Errorf("intermediate children = %+v, want node_2d1", n.Nodes)
	}
	// An unexported object answers UnknownObject.
	job.Unexport()
	err = call(client.Object(testName, bluechi.JobPath(1)), dbusrt.PropertiesInterface+".GetAll", bluechi.JobInterface)
	if dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Errorf("after Unexport: %v, want UnknownObject", err)
	}
}

func TestEscapeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"laptop": "laptop", "node-foo": "node_2dfoo", "node_1": "node_5f1", "1st": "_31st", "a.b": "a_2eb", "": "_", "ü": "_c3_bc",
	} {
		if got := dbusrt.EscapeLabel(in); got != want {
			t.Errorf("EscapeLabel(%q) = %q, want %q", in, got, want)
		}
		if back := dbusrt.UnescapeLabel(want); back != in {
			t.Errorf("UnescapeLabel(%q) = %q, want %q", want, back, in)
		}
	}
}
