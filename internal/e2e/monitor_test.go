// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// monEvents records the monitor signals one bus client receives, as text:
// "new NODE UNIT REASON", "removed NODE UNIT REASON",
// "state NODE UNIT ACTIVE SUB REASON", "props NODE UNIT IFACE" and
// "peer-removed REASON".
type monEvents struct {
	t    *testing.T
	mu   sync.Mutex
	list []string
	ch   chan struct{}
}

// watchMonitor records the monitor signals of path that conn receives.
func watchMonitor(t *testing.T, conn *dbus.Conn, path dbus.ObjectPath) *monEvents {
	e := &monEvents{t: t, ch: make(chan struct{}, 1)}
	m := bluechi.NewMonitorClient(conn, bluechi.ControllerBusName, path)
	ctx := context.Background()
	add := func(s *dbusrt.Subscription, err error) {
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	add(m.OnUnitNew(ctx, func(s *bluechi.MonitorUnitNewSignal) { e.add("new", s.Node, s.Unit, s.Reason) }))
	add(m.OnUnitRemoved(ctx, func(s *bluechi.MonitorUnitRemovedSignal) { e.add("removed", s.Node, s.Unit, s.Reason) }))
	add(m.OnUnitStateChanged(ctx, func(s *bluechi.MonitorUnitStateChangedSignal) {
		e.add("state", s.Node, s.Unit, s.ActiveState, s.SubState, s.Reason)
	}))
	add(m.OnUnitPropertiesChanged(ctx, func(s *bluechi.MonitorUnitPropertiesChangedSignal) {
		e.add("props", s.Node, s.Unit, s.Interface)
	}))
	add(m.OnPeerRemoved(ctx, func(s *bluechi.MonitorPeerRemovedSignal) { e.add("peer-removed", s.Reason) }))
	return e
}

func (e *monEvents) add(fields ...string) {
	e.mu.Lock()
	e.list = append(e.list, strings.Join(fields, " "))
	e.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	default:
	}
}

// all returns a copy of what arrived so far.
func (e *monEvents) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// count returns how many recorded events start with prefix.
func (e *monEvents) count(prefix string) int {
	n := 0
	for _, s := range e.all() {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// wait blocks until an event starting with each prefix has arrived, in
// this order (other events may come in between), and returns the index
// after the last match.
func (e *monEvents) wait(from int, prefixes ...string) int {
	e.t.Helper()
	return e.waitWithin(30*time.Second, from, prefixes...)
}

// waitWithin is wait, failing when the events take longer than d.
func (e *monEvents) waitWithin(d time.Duration, from int, prefixes ...string) int {
	e.t.Helper()
	deadline := time.After(d)
	for {
		list := e.all()
		i, k := from, 0
		for ; i < len(list) && k < len(prefixes); i++ {
			if strings.HasPrefix(list[i], prefixes[k]) {
				k++
			}
		}
		if k == len(prefixes) {
			return i
		}
		select {
		case <-e.ch:
		case <-deadline:
			e.t.Fatalf("timed out waiting for %q (got %d: %q)", prefixes[k:], k, tailList(list[from:], 40))
		}
	}
}

func tailList(l []string, n int) []string {
	if len(l) > n {
		return l[len(l)-n:]
	}
	return l
}

// newMonitor creates a monitor owned by conn.
func newMonitor(t *testing.T, conn *dbus.Conn) *bluechi.MonitorClient {
	t.Helper()
	path, err := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath).CreateMonitor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return bluechi.NewMonitorClient(conn, bluechi.ControllerBusName, path)
}

// busClient opens another client connection on the controller's bus.
func (c *cluster) busClient() *dbus.Conn {
	conn, _, err := dbusrt.ConnectBus(c.bus.Address)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// runJob starts, stops or restarts a unit through the controller and waits for its result.
func (c *cluster) runJob(jobs *jobWaiter, node, kind, unit string) string {
	c.t.Helper()
	ctx := context.Background()
	n := c.node(node)
	var (
		job dbus.ObjectPath
		err error
	)
	switch kind {
	case "start":
		job, err = n.StartUnit(ctx, unit, "replace")
	case "stop":
		job, err = n.StopUnit(ctx, unit, "replace")
	case "restart":
		job, err = n.RestartUnit(ctx, unit, "replace")
	}
	if err != nil {
		c.t.Fatalf("%s %s on %s: %v", kind, unit, node, err)
	}
	return jobs.result(job)
}

// TestMonitorSubscriptions re-creates upstream's monitor tests on two real
// nodes: wildcard, specific and list subscriptions, all four event kinds,
// peers and strangers, Unsubscribe from a signal handler, the monitor of a
// departed owner, and bad input.
func TestMonitorSubscriptions(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	c.startAgent("node-a")
	c.startAgent("node-b")
	c.waitStatus("node-a", "online")
	c.waitStatus("node-b", "online")
	ctx := context.Background()
	jobs := c.jobs()
	simple, oneshot := sandbox.SimpleServiceName, sandbox.OneshotServiceName

	// Three monitors of one owner: signals to one destination keep their
	// order, so the wildcard monitor's events tell when the others must
	// have arrived.
	all := newMonitor(t, c.client)
	allEv := watchMonitor(t, c.client, all.Path())
	one := newMonitor(t, c.client)
	oneEv := watchMonitor(t, c.client, one.Path())
	list := newMonitor(t, c.client)
	listEv := watchMonitor(t, c.client, list.Path())
	if _, err := all.Subscribe(ctx, "*", "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Subscribe(ctx, "node-a", simple); err != nil {
		t.Fatal(err)
	}
	if _, err := list.SubscribeList(ctx, "node-a", []string{simple, oneshot}); err != nil {
		t.Fatal(err)
	}
	allEv.wait(0, "new node-a * virtual")
	allEv.wait(0, "new node-b * virtual")

	// A peer gets everything, a stranger listening on the path nothing.
	peer, stranger := c.busClient(), c.busClient()
	peerEv := watchMonitor(t, peer, one.Path())
	strangerEv := watchMonitor(t, stranger, one.Path())
	if _, err := one.AddPeer(ctx, dbusrt.UniqueName(peer)); err != nil {
		t.Fatal(err)
	}

	for _, node := range []string{"node-a", "node-b"} {
		if r := c.runJob(jobs, node, "start", simple); r != "done" {
			t.Fatalf("start on %s: %s", node, r)
		}
	}
	if r := c.runJob(jobs, "node-a", "start", oneshot); r != "done" {
		t.Fatalf("oneshot: %s", r)
	}
	for _, node := range []string{"node-a", "node-b"} {
		if r := c.runJob(jobs, node, "stop", simple); r != "done" {
			t.Fatalf("stop on %s: %s", node, r)
		}
	}
	// Every kind of event, on both nodes, through the wildcard.
	for _, node := range []string{"node-a", "node-b"} {
		allEv.wait(0, "new "+node+" "+simple+" real", "state "+node+" "+simple+" active running real",
			"props "+node+" "+simple+" org.freedesktop.systemd1.Unit", "state "+node+" "+simple+" inactive dead real",
			"removed "+node+" "+simple+" real")
	}
	allEv.wait(0, "removed node-a "+oneshot+" real")
	oneEv.wait(0, "new node-a "+simple+" real", "state node-a "+simple+" active running real",
		"props node-a "+simple+" org.freedesktop.systemd1.Service", "removed node-a "+simple+" real")
	peerEv.wait(0, "new node-a "+simple+" real", "state node-a "+simple+" active running real",
		"props node-a "+simple+" org.freedesktop.systemd1.Service", "removed node-a "+simple+" real")
	listEv.wait(0, "state node-a "+simple+" active running real", "removed node-a "+oneshot+" real")
	for name, ev := range map[string]*monEvents{"specific": oneEv, "list": listEv} {
		for _, s := range ev.all() {
			if strings.Contains(s, "node-b") || name == "specific" && strings.Contains(s, oneshot) {
				t.Errorf("%s monitor got %q", name, s)
			}
		}
	}

	// Unsubscribe from inside a signal handler, then no more events.
	unsub := newMonitor(t, c.client)
	var unsubErr = make(chan error, 1)
	var id uint32
	s, err := unsub.OnUnitRemoved(ctx, func(*bluechi.MonitorUnitRemovedSignal) {
		select {
		case unsubErr <- unsub.Unsubscribe(ctx, id):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unsubEv := watchMonitor(t, c.client, unsub.Path())
	if id, err = unsub.Subscribe(ctx, "node-a", oneshot); err != nil {
		t.Fatal(err)
	}
	mark := len(allEv.all())
	if r := c.runJob(jobs, "node-a", "start", oneshot); r != "done" {
		t.Fatalf("oneshot: %s", r)
	}
	select {
	case err := <-unsubErr:
		if err != nil {
			t.Fatalf("Unsubscribe from the UnitRemoved handler: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no UnitRemoved for the oneshot")
	}
	// The recorder's own handler may run after the one that unsubscribed:
	// count from the UnitRemoved that triggered the Unsubscribe.
	seen := unsubEv.wait(0, "removed node-a "+oneshot+" real")
	mark = allEv.wait(mark, "removed node-a "+oneshot+" real")
	if r := c.runJob(jobs, "node-a", "start", oneshot); r != "done" {
		t.Fatalf("oneshot: %s", r)
	}
	allEv.wait(mark, "removed node-a "+oneshot+" real")
	if got := unsubEv.all(); len(got) != seen {
		t.Fatalf("events after Unsubscribe: %q", got[seen:])
	}

	// The monitor of an owner that leaves the bus is closed; its peer
	// hears it.
	owner := c.busClient()
	gone := newMonitor(t, owner)
	goneEv := watchMonitor(t, c.client, gone.Path())
	if _, err := gone.Subscribe(ctx, "node-b", "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.AddPeer(ctx, dbusrt.UniqueName(c.client)); err != nil {
		t.Fatal(err)
	}
	owner.Close()
	goneEv.wait(0, "peer-removed monitor closed")
	probe := bluechi.NewMonitorClient(c.client, bluechi.ControllerBusName, gone.Path())
	if _, err := probe.Subscribe(ctx, "node-a", simple); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("monitor of a departed owner: %v", err)
	}

	// Bad input leaves the monitor working.
	if _, err := one.Subscribe(ctx, "node-a", "no such unit"); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("bad unit name: %v", err)
	}
	if _, err := one.Subscribe(ctx, "nowhere", simple); err != nil {
		t.Fatalf("unknown node: %v", err)
	}
	if err := one.Unsubscribe(ctx, 99999); dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != "Subscription '99999' not found" {
		t.Fatalf("unknown subscription: %v", err)
	}
	if _, err := one.AddPeer(ctx, dbusrt.UniqueName(peer)); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("peer added twice: %v", err)
	}
	if _, err := one.AddPeer(ctx, dbusrt.UniqueName(c.client)); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("owner as peer: %v", err)
	}
	// Only the owner may call the monitor's methods: the peer (a listener)
	// and the stranger are refused and the monitor goes on as it was.
	for name, conn := range map[string]*dbus.Conn{"peer": peer, "stranger": stranger} {
		m := bluechi.NewMonitorClient(conn, bluechi.ControllerBusName, one.Path())
		if _, err := m.Subscribe(ctx, "node-b", simple); dbusrt.ErrorName(err) != dbusrt.ErrAccessDenied {
			t.Fatalf("Subscribe by the %s: %v, want AccessDenied", name, err)
		}
		if _, err := m.AddPeer(ctx, dbusrt.UniqueName(stranger)); dbusrt.ErrorName(err) != dbusrt.ErrAccessDenied {
			t.Fatalf("AddPeer by the %s: %v, want AccessDenied", name, err)
		}
		if err := m.Close(ctx); dbusrt.ErrorName(err) != dbusrt.ErrAccessDenied {
			t.Fatalf("Close by the %s: %v, want AccessDenied", name, err)
		}
	}
	// A peer removed with RemovePeer hears PeerRemoved with the reason,
	// and nothing after it (upstream's monitor-listener-removed-as-peer).
	removedPeer := c.busClient()
	removedEv := watchMonitor(t, removedPeer, one.Path())
	removedID, err := one.AddPeer(ctx, dbusrt.UniqueName(removedPeer))
	if err != nil {
		t.Fatal(err)
	}
	if err := one.RemovePeer(ctx, removedID, "bye"); err != nil {
		t.Fatal(err)
	}
	removedEv.wait(0, "peer-removed bye")
	n := oneEv.count("")
	np := peerEv.count("")
	if r := c.runJob(jobs, "node-a", "start", simple); r != "done" {
		t.Fatalf("start: %s", r)
	}
	peerEv.wait(np, "state node-a "+simple+" active running real")
	oneEv.wait(n, "state node-a "+simple+" active running real")
	if err := one.Close(ctx); err != nil {
		t.Fatal(err)
	}
	peerEv.wait(0, "peer-removed monitor closed")
	if got := removedEv.all(); !slices.Equal(got, []string{"peer-removed bye"}) {
		t.Fatalf("a removed peer received %q", got)
	}
	if _, err := one.Subscribe(ctx, "node-a", simple); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("Subscribe on a closed monitor: %v", err)
	}
	if got := strangerEv.all(); len(got) != 0 {
		t.Fatalf("a listener that is no peer received %q", got)
	}
}

// TestMonitorVirtualEventsQuietAgents: the controller sends its Subscribe
// calls to agents without asking for a reply, on a monitor's Subscribe
// and when a node registers. The virtual events they answer with must
// come at once, also from agents that send no heartbeats and whose
// systemd is quiet: they took about 3 s when they waited for the next
// message to carry them, 2 ms when sent at once. The bound (1 s) leaves
// room for a loaded machine.
func TestMonitorVirtualEventsQuietAgents(t *testing.T) {
	c := newClusterWith(t, "NodeHeartbeatThreshold=0\n", "node-a", "node-b")
	quiet := "[bluechi-agent]\nLogTarget=stderr\nHeartbeatInterval=0\n"
	c.startAgentWith("node-a", quiet)
	c.waitStatus("node-a", "online")
	simple := sandbox.SimpleServiceName
	if r := c.runJob(c.jobs(), "node-a", "start", simple); r != "done" {
		t.Fatalf("start %s: %s", simple, r)
	}
	ctx := context.Background()
	mon := newMonitor(t, c.client)
	ev := watchMonitor(t, c.client, mon.Path())
	// A monitor's Subscribe: the unit is loaded and active.
	if _, err := mon.Subscribe(ctx, "node-a", simple); err != nil {
		t.Fatal(err)
	}
	ev.waitWithin(time.Second, 0, "new node-a "+simple+" virtual", "state node-a "+simple+" active running virtual")
	// A node that registers later gets the subscription replayed.
	if _, err := mon.Subscribe(ctx, "node-b", "*"); err != nil {
		t.Fatal(err)
	}
	c.startAgentWith("node-b", quiet)
	c.waitStatus("node-b", "online")
	ev.waitWithin(time.Second, 0, "new node-b * virtual")
}

// TestMonitorReconnects checks the virtual events around connection loss:
// an agent restart, a connection loss without restart (SwitchController),
// and a controller restart, after which a new monitor gets fresh virtual
// events from agents that kept running.
func TestMonitorReconnects(t *testing.T) {
	c := newCluster(t, "n1", "n2", "n3")
	for _, n := range []string{"n1", "n2", "n3"} {
		c.startAgent(n)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		c.waitStatus(n, "online")
	}
	ctx := context.Background()
	jobs := c.jobs()
	simple := sandbox.SimpleServiceName
	if r := c.runJob(jobs, "n1", "start", simple); r != "done" {
		t.Fatalf("start: %s", r)
	}

	mon := newMonitor(t, c.client)
	ev := watchMonitor(t, c.client, mon.Path())
	if _, err := mon.Subscribe(ctx, "*", "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := mon.Subscribe(ctx, "n1", simple); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		ev.wait(0, "new "+n+" * virtual")
	}
	mark := ev.wait(0, "new n1 "+simple+" virtual", "state n1 "+simple+" active running virtual")

	// Agent restart.
	stop(c.agents["n1"])
	c.waitStatus("n1", "offline")
	mark = ev.wait(mark, "state n1 * inactive agent-offline virtual", "removed n1 * virtual")
	c.startAgent("n1")
	c.waitStatus("n1", "online")
	ev.wait(mark, "new n1 * virtual")
	ev.wait(mark, "new n1 "+simple+" virtual", "state n1 "+simple+" active running virtual")

	// Connection loss with the agent process kept: SwitchController to
	// another spelling of the same address.
	nodeBus, err := c.nodes["n2"].Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nodeBus.Close()
	pub := bluechi.NewAgentClient(nodeBus, bluechi.AgentBusName, bluechi.AgentPath)
	mark = len(ev.all())
	var addr propLog
	asub, err := pub.OnPropertiesChanged(ctx, func(pc *bluechi.AgentPropertiesChanged) { addr.add(&pc.PropertiesChanged, "ControllerAddress") })
	if err != nil {
		t.Fatal(err)
	}
	defer asub.Close()
	switched := fmt.Sprintf("tcp:host=localhost,port=%d", c.port)
	if err := pub.SwitchController(ctx, switched); err != nil {
		t.Fatal(err)
	}
	ev.wait(mark, "state n2 * inactive agent-offline virtual", "removed n2 * virtual", "new n2 * virtual")
	// The switch is signalled and reads back (upstream's
	// bluechi-agent-switch-controller).
	c.waitFor("the ControllerAddress signal", func() bool { return slices.Equal(addr.get(), []string{switched}) })
	if v, err := pub.GetControllerAddress(ctx); err != nil || v != switched {
		t.Errorf("ControllerAddress after the switch: %q, %v; want %q", v, err, switched)
	}

	// Controller restart: the monitor is gone; a new one gets virtual
	// events from agents that never restarted.
	stop(c.ctrlCmd)
	c.startController()
	for _, n := range []string{"n1", "n2", "n3"} {
		c.waitStatus(n, "online")
	}
	mon = newMonitor(t, c.client)
	ev = watchMonitor(t, c.client, mon.Path())
	if _, err := mon.SubscribeList(ctx, "*", []string{simple, "*"}); err != nil {
		t.Fatal(err)
	}
	ev.wait(0, "new n1 "+simple+" virtual", "state n1 "+simple+" active running virtual")
	for _, n := range []string{"n1", "n2", "n3"} {
		ev.wait(0, "new "+n+" * virtual")
	}
	// And real events flow again.
	if r := c.runJob(jobs, "n1", "stop", simple); r != "done" {
		t.Fatalf("stop: %s", r)
	}
	ev.wait(0, "state n1 "+simple+" inactive dead real")
}
