// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// TestCloseReportsDownOnce: on shutdown every node reports offline and the
// controller reports down exactly once, never degraded on the way.
func TestCloseReportsDownOnce(t *testing.T) {
	c := startCluster(t, "a", "b", "c")
	for _, n := range []string{"a", "b", "c"} {
		if _, err := c.agent(n); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var ctrlSeen, nodeSeen []string
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	sub, err := ctrl.OnPropertiesChanged(ctx, func(p *bluechi.ControllerPropertiesChanged) {
		if v, ok := p.Status(); ok {
			mu.Lock()
			ctrlSeen = append(ctrlSeen, v)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, n := range []string{"a", "b", "c"} {
		s, err := c.node(n).OnPropertiesChanged(ctx, func(p *bluechi.NodePropertiesChanged) {
			if v, ok := p.Status(); ok {
				mu.Lock()
				nodeSeen = append(nodeSeen, n+"="+v)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	// Status signals of the registrations may still reach the new matches
	// (dbus-daemon orders messages per connection only), so only what
	// follows the last "up" and the offline reports are the shutdown's.
	c.ctrl.Close()
	offline := func() []string {
		var out []string
		for _, s := range nodeSeen {
			if strings.HasSuffix(s, "=offline") {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, "down and three nodes offline", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(ctrlSeen, "down") && len(offline()) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	last := -1 // the last "up", from a registration
	for i, st := range ctrlSeen {
		if st == "up" {
			last = i
		}
	}
	shutdown := ctrlSeen[last+1:]
	if !slices.Equal(shutdown, []string{"down"}) {
		t.Errorf("controller Status signals %v: after the last up, want exactly [down]", ctrlSeen)
	}
	if got := offline(); !slices.Equal(got, []string{"a=offline", "b=offline", "c=offline"}) {
		t.Errorf("node offline signals %v", got)
	}
}

// TestRegisterOnDroppedConnection: a Register whose connection drops while
// it is being handled must not leave the node online on a dead connection.
func TestRegisterOnDroppedConnection(t *testing.T) {
	c := startCluster(t, "a")
	for i := 0; i < 200; i++ {
		p := dialPeerAgent(t, c.addr, nil)
		cl := daemonapi.NewInternalControllerWireClient(p.Conn, bluechi.ControllerBusName, string(daemonapi.InternalControllerPath))
		if err := cl.SendRegister("a"); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	// A real agent can register: no dead connection holds the node.
	waitFor(t, "a real agent registers", func() bool {
		_, err := c.agent("a")
		if err != nil {
			t.Log(err)
		}
		return err == nil
	})
}

// lateAgent sends JobDone right behind its reply to StartUnit.
type lateAgent struct {
	daemonapi.UnimplementedInternalAgentServer
	conn *wireconn.Conn
}

func (f *lateAgent) StartUnit(ctx context.Context, name, mode string, id uint32) error {
	go daemonapi.EmitInternalAgentJobDoneWire(f.conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentJobDoneSignal{ID: id, Result: "done"})
	return nil
}

// TestJobNewBeforeJobRemoved: JobNew is never emitted after the job's
// JobRemoved, however fast the agent finishes the job.
func TestJobNewBeforeJobRemoved(t *testing.T) {
	c := startCluster(t, "a")
	ctx := context.Background()
	registerAgent(t, c, "a", func(conn *wireconn.Conn) daemonapi.InternalAgentServer { return &lateAgent{conn: conn} })
	var mu sync.Mutex
	newSeen, removed := map[uint32]bool{}, map[uint32]bool{}
	bad := 0
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	s1, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) {
		mu.Lock()
		removed[s.ID] = true
		if !newSeen[s.ID] {
			bad++
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := ctrl.OnJobNew(ctx, func(s *bluechi.ControllerJobNewSignal) {
		mu.Lock()
		newSeen[s.ID] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	const n = 500
	for i := 0; i < n; i++ {
		if _, err := c.node("a").StartUnit(ctx, "x.service", "replace"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all JobRemoved", func() bool { mu.Lock(); defer mu.Unlock(); return len(removed) == n })
	mu.Lock()
	defer mu.Unlock()
	if bad > 0 {
		t.Fatalf("%d of %d jobs had JobRemoved before JobNew", bad, n)
	}
}

// registerAgent connects a fake agent served by the object newAgent makes
// for its connection and registers it as name.
func registerAgent(t *testing.T, c *cluster, name string, newAgent func(*wireconn.Conn) daemonapi.InternalAgentServer) {
	t.Helper()
	c.dialAgent(name, func(p *peerAgent) error {
		_, err := daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, newAgent(p.Conn), daemonapi.InternalAgentProperties{})
		return err
	})
}

// quietAgent accepts jobs and never finishes them.
type quietAgent struct {
	daemonapi.UnimplementedInternalAgentServer
}

func (quietAgent) StartUnit(ctx context.Context, name, mode string, id uint32) error { return nil }

// TestJobNewWithoutReply: JobNew waits on the bus connection to leave with
// the call's reply; a caller that wants no reply still gets JobNew at once.
func TestJobNewWithoutReply(t *testing.T) {
	c := startCluster(t, "a")
	ctx := context.Background()
	registerAgent(t, c, "a", func(*wireconn.Conn) daemonapi.InternalAgentServer { return quietAgent{} })
	got := make(chan uint32, 1)
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	sub, err := ctrl.OnJobNew(ctx, func(s *bluechi.ControllerJobNewSignal) { got <- s.ID })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	call := c.client.Object(bluechi.NodeBusName, bluechi.NodePath("a")).Go(bluechi.NodeInterface+".StartUnit", dbus.FlagNoReplyExpected, nil, "x.service", "replace")
	if call.Err != nil {
		t.Fatal(call.Err)
	}
	// JobNew is held to leave with the reply: with no reply to send, the
	// call's end must write it (it would otherwise wait for whatever the
	// bus connection writes next).
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no JobNew for a StartUnit that expects no reply")
	}
}

// stuckAgent never answers GetUnitProperties: the call waits until the
// connection ends.
type stuckAgent struct {
	daemonapi.UnimplementedInternalAgentServer
	called chan struct{}
}

func (a *stuckAgent) GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error) {
	close(a.called)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestShutdownCancelsRequests: a Node call still waiting for its agent
// when the controller shuts down fails with Failed "Request cancelled"
// (behaviours.md §9).
func TestShutdownCancelsRequests(t *testing.T) {
	c := startCluster(t, "a")
	a := &stuckAgent{called: make(chan struct{})}
	c.dialAgent("a", func(p *peerAgent) error {
		_, err := daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, a, daemonapi.InternalAgentProperties{})
		return err
	})
	errc := make(chan error, 1)
	go func() {
		_, err := c.node("a").GetUnitProperties(context.Background(), "x.service", "")
		errc <- err
	}()
	<-a.called
	c.ctrl.Close()
	err := <-errc
	if dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != "Request cancelled" {
		t.Fatalf("pending call ended with %v, want Failed \"Request cancelled\"", err)
	}
}

// TestListNodesWithInvalidNodeName: a hand-built configuration with a node
// name that is not valid UTF-8 (configuration loading refuses one) does
// not make ListNodes write an invalid string, after which the bus would
// drop the controller: the node is left out and the controller stays on
// the bus.
func TestListNodesWithInvalidNodeName(t *testing.T) {
	c := startClusterConfig(t, &config.Controller{Nodes: []config.Node{{Name: "good"}, {Name: "\xff\xfebad"}}})
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	ctx := context.Background()
	for range 2 {
		nodes, err := ctrl.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || nodes[0].Name != "good" {
			t.Fatalf("ListNodes = %+v, want only good", nodes)
		}
	}
	if p, err := ctrl.GetNode(ctx, "good"); err != nil || p != bluechi.NodePath("good") {
		t.Fatalf("GetNode after ListNodes = %q, %v", p, err)
	}
}
