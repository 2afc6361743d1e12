// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// TestNoGoroutineGrowthOnReconnect registers and drops an agent 200 times
// against an in-process controller: its goroutine count returns to where
// it was.
func TestNoGoroutineGrowthOnReconnect(t *testing.T) {
	bus := testbus.Start(t)
	api := dbusrt.NewServer()
	server, err := busconn.Dial(context.Background(), bus.Address, wireconn.Options{MethodCall: api.ServeWire})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	api.BindWire(server.Wire())
	log, err := logging.New(logging.Options{Level: "ERROR", Target: "stderr"})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := controller.New(&config.Controller{Nodes: []config.Node{{Name: "n1"}}}, api, server, log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "c.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctrl.Serve(ctx, l); close(done) }()
	defer func() { ctrl.Close(); cancel(); <-done }()
	addr := "unix:path=" + l.Addr().String()
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := server.RequestName(context.Background(), bluechi.ControllerBusName); err != nil {
		t.Fatal(err)
	}

	cycle := func() {
		srv := dbusrt.NewServer()
		conn, err := dbusrt.DialPeer(addr, srv.ConnOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		srv.Bind(conn)
		if _, err := daemonapi.ExportInternalAgent(conn, daemonapi.InternalAgentPath, daemonapi.UnimplementedInternalAgentServer{}, daemonapi.InternalAgentProperties{}); err != nil {
			t.Fatal(err)
		}
		if err := daemonapi.NewInternalControllerClient(conn, bluechi.ControllerBusName, daemonapi.InternalControllerPath).Register(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		node := bluechi.NewNodeClient(client, bluechi.NodeBusName, bluechi.NodePath("n1"))
		for deadline := time.Now().Add(10 * time.Second); ; {
			if s, _ := node.GetStatus(ctx); s == "offline" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("node did not go offline")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := 0; i < 10; i++ {
		cycle()
	}
	before := settledGoroutines(0)
	for i := 0; i < 200; i++ {
		cycle()
	}
	after := settledGoroutines(before)
	t.Logf("goroutines: %d before, %d after 200 reconnects", before, after)
	if after > before+2 {
		t.Fatalf("goroutines grew from %d to %d over 200 reconnects", before, after)
	}
}

// settledGoroutines waits (up to 5 s) for the goroutine count to reach
// target, or to stop changing when target is 0, and returns it.
func settledGoroutines(target int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (target > 0 && m <= target) || (target == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}
