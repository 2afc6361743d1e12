// SPDX-License-Identifier: Apache-2.0

// The examples need a running BlueChi controller on the system bus, so they
// are compiled but not run (no Output comments).

package bluechi_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/gen/bluechi"
)

// List the configured nodes with their status.
func Example_listNodes() {
	ctx := context.Background()
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	nodes, err := ctrl.ListNodes(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range nodes {
		fmt.Printf("%s\t%s\t%s\n", n.Name, n.Status, n.PeerIP)
	}
}

// Start a unit on a node and wait until its job has ended. Subscribe to
// JobRemoved before the call, so that a job that ends at once is not missed.
func ExampleNodeClient_StartUnit() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	removed := make(chan *bluechi.ControllerJobRemovedSignal, 16)
	sub, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) {
		select {
		case removed <- s: // callbacks must not block
		default:
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("laptop"))
	job, err := node.StartUnit(ctx, "foo.service", "replace")
	if errors.Is(err, bluechi.ErrOffline) {
		log.Fatal("node laptop is offline")
	}
	if err != nil {
		log.Fatal(err)
	}
	for {
		select {
		case s := <-removed:
			if s.Job == job {
				fmt.Println("job ended:", s.Result)
				return
			}
		case <-sub.Done(): // the bus went away
			log.Fatal(sub.Err())
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
}

// Watch the connection status of a node.
func ExampleNodeClient_OnPropertiesChanged() {
	ctx := context.Background()
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("laptop"))
	status := make(chan string, 16)
	sub, err := node.OnPropertiesChanged(ctx, func(p *bluechi.NodePropertiesChanged) {
		if s, ok := p.Status(); ok {
			status <- s
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	// Read the status after subscribing, so no change is missed between.
	s, err := node.GetStatus(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for {
		fmt.Println("laptop is", s)
		s = <-status
	}
}

// Follow the state of one unit on every node through a monitor.
func ExampleMonitorClient_OnUnitStateChanged() {
	ctx := context.Background()
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	path, err := ctrl.CreateMonitor(ctx)
	if err != nil {
		log.Fatal(err)
	}
	mon := bluechi.NewMonitorClient(conn, bluechi.MonitorBusName, path)
	defer mon.Close(ctx)

	sub, err := mon.OnUnitStateChanged(ctx, func(s *bluechi.MonitorUnitStateChangedSignal) {
		fmt.Printf("%s on %s: %s (%s)\n", s.Unit, s.Node, s.ActiveState, s.SubState)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if _, err := mon.Subscribe(ctx, "*", "foo.service"); err != nil {
		log.Fatal(err)
	}
	select {} // until the program ends
}

// Set a unit property, here CPUWeight, until the next reboot.
func ExampleNodeClient_SetUnitProperties() {
	ctx := context.Background()
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("laptop"))
	err = node.SetUnitProperties(ctx, "foo.service", true, []bluechi.UnitProperty{
		{Name: "CPUWeight", Value: dbus.MakeVariant(uint64(50))},
	})
	var e *bluechi.Error
	if errors.As(err, &e) {
		log.Fatalf("refused: %s (%s)", e.Message, e.Name)
	}
	if err != nil {
		log.Fatal(err)
	}
}
