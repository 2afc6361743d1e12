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

// Benchmarks of one method call and one signal through the generated layer,
// against the same done with plain godbus, on one private bus.
//
//	go test ./internal/apitest -run XXX -bench . -count 5

type benchNode struct {
	daemonapi.UnimplementedNodeServer
}

func (benchNode) GetUnitFileState(_ context.Context, file string) (string, error) {
	return "enabled", nil
}

type rawNode struct{}

func (rawNode) GetUnitFileState(file string) (string, *dbus.Error) { return "enabled", nil }

func benchConns(b *testing.B) (genServer, genClient, rawServer, rawClient *dbus.Conn) {
	bus := testbus.Start(b)
	var err error
	if genServer, _, err = dbusrt.ConnectBus(bus.Address); err != nil {
		b.Fatal(err)
	}
	if genClient, _, err = dbusrt.ConnectBus(bus.Address); err != nil {
		b.Fatal(err)
	}
	raw := func() *dbus.Conn {
		c, err := dbus.Dial(bus.Address)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Auth(nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Hello(); err != nil {
			b.Fatal(err)
		}
		return c
	}
	rawServer, rawClient = raw(), raw()
	b.Cleanup(func() {
		for _, c := range []*dbus.Conn{genServer, genClient, rawServer, rawClient} {
			c.Close()
		}
	})
	return
}

func BenchmarkCall(b *testing.B) {
	gs, gc, rs, rc := benchConns(b)
	path := bluechi.NodePath("bench")
	if _, err := daemonapi.ExportNode(gs, path, benchNode{}, bluechi.NodeProperties{}); err != nil {
		b.Fatal(err)
	}
	if err := rs.Export(rawNode{}, path, bluechi.NodeInterface); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("generated", func(b *testing.B) {
		c := bluechi.NewNodeClient(gc, dbusrt.UniqueName(gs), path)
		b.ReportAllocs()
		for b.Loop() {
			if s, err := c.GetUnitFileState(ctx, "a.service"); err != nil || s != "enabled" {
				b.Fatal(s, err)
			}
		}
	})
	b.Run("godbus", func(b *testing.B) {
		obj := rc.Object(dbusrt.UniqueName(rs), path)
		b.ReportAllocs()
		for b.Loop() {
			var s string
			if err := obj.CallWithContext(ctx, bluechi.NodeInterface+".GetUnitFileState", 0, "a.service").Store(&s); err != nil || s != "enabled" {
				b.Fatal(s, err)
			}
		}
	})
}

func BenchmarkSignal(b *testing.B) {
	gs, gc, rs, rc := benchConns(b)
	ctx := context.Background()
	want := bluechi.ControllerJobRemovedSignal{ID: 1, Job: bluechi.JobPath(1), Node: "n", Unit: "u.service", Result: "done"}
	b.Run("generated", func(b *testing.B) {
		obj, err := daemonapi.ExportController(gs, bluechi.ControllerPath, daemonapi.UnimplementedControllerServer{}, bluechi.ControllerProperties{})
		if err != nil {
			b.Fatal(err)
		}
		defer obj.Unexport()
		got := make(chan struct{}, 1)
		sub, err := bluechi.NewControllerClient(gc, dbusrt.UniqueName(gs), bluechi.ControllerPath).OnJobRemoved(ctx, func(*bluechi.ControllerJobRemovedSignal) { got <- struct{}{} })
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := obj.EmitJobRemoved(want); err != nil {
				b.Fatal(err)
			}
			<-got
		}
	})
	b.Run("godbus", func(b *testing.B) {
		if err := rc.AddMatchSignal(dbus.WithMatchSender(dbusrt.UniqueName(rs)), dbus.WithMatchInterface(bluechi.ControllerInterface), dbus.WithMatchMember("JobRemoved")); err != nil {
			b.Fatal(err)
		}
		ch := make(chan *dbus.Signal, 16)
		rc.Signal(ch)
		b.ReportAllocs()
		for b.Loop() {
			if err := rs.Emit(bluechi.ControllerPath, bluechi.ControllerInterface+".JobRemoved", want.ID, want.Job, want.Node, want.Unit, want.Result); err != nil {
				b.Fatal(err)
			}
			var s bluechi.ControllerJobRemovedSignal
			sig := <-ch
			if err := dbus.Store(sig.Body, &s.ID, &s.Job, &s.Node, &s.Unit, &s.Result); err != nil {
				b.Fatal(err)
			}
		}
	})
}
