// SPDX-License-Identifier: Apache-2.0

// Command clientmod uses the generated BlueChi client from a module of its
// own, as a state manager would: it may import gen/bluechi and godbus but
// nothing internal. The e2e suite builds it offline and runs it against a
// real cluster (internal/e2e TestClientModule).
//
// It lists the nodes, starts -unit on -node and waits for its JobRemoved,
// then reports "watching" and waits until -victim goes offline (the test
// kills its agent), and calls StartUnit on the offline node, which must fail
// with org.eclipse.bluechi.Offline. Each step prints one line; any failure
// exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/gen/bluechi"
)

// statusWatch keeps a subscription in a struct, as a long-lived consumer
// does.
type statusWatch struct {
	sub     *bluechi.Subscription
	offline chan struct{}
}

func watchOffline(ctx context.Context, node *bluechi.NodeClient) (*statusWatch, error) {
	w := &statusWatch{offline: make(chan struct{}, 1)}
	sub, err := node.OnPropertiesChanged(ctx, func(p *bluechi.NodePropertiesChanged) {
		if s, ok := p.Status(); ok && s == "offline" {
			select {
			case w.offline <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	w.sub = sub
	return w, nil
}

func main() {
	bus := flag.String("bus", "", "D-Bus address of the controller's bus (default: the system bus)")
	nodeName := flag.String("node", "", "node to start the unit on")
	unit := flag.String("unit", "", "unit to start")
	victim := flag.String("victim", "", "node whose agent the caller kills")
	flag.Parse()
	if err := run(*bus, *nodeName, *unit, *victim); err != nil {
		fmt.Fprintln(os.Stderr, "clientmod:", err)
		os.Exit(1)
	}
}

func run(bus, nodeName, unit, victim string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conn *dbus.Conn
	var err error
	if bus == "" {
		conn, err = dbus.ConnectSystemBus()
	} else {
		conn, err = dbus.Connect(bus)
	}
	if err != nil {
		return err
	}
	defer conn.Close()

	ctrl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	nodes, err := ctrl.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var list []string
	for _, n := range nodes {
		list = append(list, n.Name+"="+n.Status)
	}
	sort.Strings(list)
	fmt.Println("nodes", strings.Join(list, ","))

	removed := make(chan *bluechi.ControllerJobRemovedSignal, 64)
	jobSub, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) {
		select {
		case removed <- s:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe JobRemoved: %w", err)
	}
	defer jobSub.Close()
	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(nodeName))
	job, err := node.StartUnit(ctx, unit, "replace")
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", unit, nodeName, err)
	}
	for done := false; !done; {
		select {
		case s := <-removed:
			if s.Job == job {
				fmt.Println("job", s.Node, s.Unit, s.Result)
				done = true
			}
		case <-ctx.Done():
			return fmt.Errorf("no JobRemoved for %s: %w", job, ctx.Err())
		}
	}

	other := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(victim))
	w, err := watchOffline(ctx, other)
	if err != nil {
		return fmt.Errorf("watch %s: %w", victim, err)
	}
	defer w.sub.Close()
	fmt.Println("watching", victim)
	select {
	case <-w.offline:
		fmt.Println("offline", victim)
	case <-ctx.Done():
		return fmt.Errorf("%s never went offline: %w", victim, ctx.Err())
	}

	_, err = other.StartUnit(ctx, unit, "replace")
	var e *bluechi.Error
	switch {
	case err == nil:
		return fmt.Errorf("StartUnit on offline %s succeeded", victim)
	case !errors.Is(err, bluechi.ErrOffline) || !errors.As(err, &e):
		return fmt.Errorf("StartUnit on offline %s: %v, want %s", victim, err, bluechi.ErrorNameOffline)
	}
	fmt.Println("error", e.Name)
	return nil
}
