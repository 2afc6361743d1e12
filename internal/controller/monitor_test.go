// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// unitAgent is a fake agent that follows the agent's unit subscription and
// metrics rules (internal-protocol.md §8, §12) on a table of loaded units,
// and records the controller's calls.
type unitAgent struct {
	daemonapi.UnimplementedInternalAgentServer
	conn *peerAgent
	obj  *daemonapi.InternalAgentObject

	mu       sync.Mutex
	calls    []string
	units    map[string][2]string // loaded units: active, sub state
	subs     map[string]bool
	wildcard bool
	metrics  *daemonapi.InternalAgentMetricsObject
}

func newUnitAgent(units map[string][2]string) *unitAgent {
	if units == nil {
		units = map[string][2]string{}
	}
	return &unitAgent{units: units, subs: map[string]bool{}}
}

func (f *unitAgent) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

// Calls returns the recorded controller calls.
func (f *unitAgent) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *unitAgent) Subscribe(ctx context.Context, unit string) error {
	f.record("Subscribe " + unit)
	f.mu.Lock()
	defer f.mu.Unlock()
	if unit == "*" {
		if f.wildcard {
			return dbusrt.NewError(dbusrt.ErrFailed, "Already wildcard subscribed")
		}
		f.wildcard = true
		return f.obj.EmitUnitNew(daemonapi.InternalAgentUnitNewSignal{Unit: "*", Reason: "virtual"})
	}
	if f.subs[unit] {
		return dbusrt.NewError(dbusrt.ErrFailed, "Already subscribed")
	}
	f.subs[unit] = true
	if st, ok := f.units[unit]; ok {
		f.obj.EmitUnitNew(daemonapi.InternalAgentUnitNewSignal{Unit: unit, Reason: "virtual"})
		f.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: unit, ActiveState: st[0], SubState: st[1], Reason: "virtual"})
	}
	return nil
}

func (f *unitAgent) Unsubscribe(ctx context.Context, unit string) error {
	f.record("Unsubscribe " + unit)
	f.mu.Lock()
	defer f.mu.Unlock()
	if unit == "*" {
		f.wildcard = false
	} else {
		delete(f.subs, unit)
	}
	return nil
}

func (f *unitAgent) EnableMetrics(ctx context.Context) error {
	f.record("EnableMetrics")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metrics != nil {
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Metrics already enabled")
	}
	obj, err := daemonapi.ExportInternalAgentMetricsOn(f.conn.srv, daemonapi.InternalAgentMetricsPath, &agentMetrics{}, daemonapi.InternalAgentMetricsProperties{})
	f.metrics = obj
	return err
}

func (f *unitAgent) DisableMetrics(ctx context.Context) error {
	f.record("DisableMetrics")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.metrics == nil {
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Metrics already disabled")
	}
	f.metrics.Unexport()
	f.metrics = nil
	return nil
}

// StartUnit finishes at once, reporting metrics first when they are on.
func (f *unitAgent) StartUnit(ctx context.Context, name, mode string, id uint32) error {
	f.mu.Lock()
	m := f.metrics
	f.mu.Unlock()
	if m != nil {
		m.EmitAgentJobMetrics(daemonapi.InternalAgentMetricsAgentJobMetricsSignal{Unit: name, Method: "StartUnit", SystemdJobTimeMicros: 1500})
	}
	return f.obj.EmitJobDone(daemonapi.InternalAgentJobDoneSignal{ID: id, Result: "done"})
}

// GetUnitProperty answers the two timestamps StartUnitJobMetrics needs.
func (f *unitAgent) GetUnitProperty(ctx context.Context, name, iface, prop string) (dbus.Variant, error) {
	switch prop {
	case "InactiveExitTimestampMonotonic":
		return dbus.MakeVariant(uint64(1_000_000)), nil
	case "ActiveEnterTimestampMonotonic":
		return dbus.MakeVariant(uint64(1_004_000)), nil
	}
	return dbus.Variant{}, dbusrt.NewError(dbusrt.ErrUnknownProperty, "Unknown property")
}

// emit sends a unit signal as the real agent does for an interesting unit.
func (f *unitAgent) stateChanged(unit, active, sub string) {
	f.mu.Lock()
	f.units[unit] = [2]string{active, sub}
	f.mu.Unlock()
	f.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: unit, ActiveState: active, SubState: sub, Reason: "real"})
}

type agentMetrics struct {
	daemonapi.UnimplementedInternalAgentMetricsServer
}

// connect registers f as node name over a new peer connection.
func (c *cluster) connect(name string, f *unitAgent) (*peerAgent, error) {
	var err error
	p := dialPeerAgent(c.t, c.addr, func(p *peerAgent) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.conn, f.subs, f.wildcard, f.metrics = p, map[string]bool{}, false, nil
		f.obj, err = daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, f, daemonapi.InternalAgentProperties{})
		return err
	})
	return p, p.register(name)
}

// recorder collects the monitor signals one bus client receives, as text.
type recorder struct {
	t  *testing.T
	ch chan string
}

func newRecorder(t *testing.T, conn *dbus.Conn, path dbus.ObjectPath) *recorder {
	r := &recorder{t: t, ch: make(chan string, 1000)}
	m := bluechi.NewMonitorClient(conn, bluechi.ControllerBusName, path)
	ctx := context.Background()
	var subs []*dbusrt.Subscription
	add := func(s *dbusrt.Subscription, err error) {
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	add(m.OnUnitNew(ctx, func(s *bluechi.MonitorUnitNewSignal) { r.ch <- fmt.Sprintf("new %s %s %s", s.Node, s.Unit, s.Reason) }))
	add(m.OnUnitRemoved(ctx, func(s *bluechi.MonitorUnitRemovedSignal) {
		r.ch <- fmt.Sprintf("removed %s %s %s", s.Node, s.Unit, s.Reason)
	}))
	add(m.OnUnitStateChanged(ctx, func(s *bluechi.MonitorUnitStateChangedSignal) {
		r.ch <- fmt.Sprintf("state %s %s %s %s %s", s.Node, s.Unit, s.ActiveState, s.SubState, s.Reason)
	}))
	add(m.OnUnitPropertiesChanged(ctx, func(s *bluechi.MonitorUnitPropertiesChangedSignal) {
		keys := make([]string, 0, len(s.Props))
		for k := range s.Props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		r.ch <- fmt.Sprintf("props %s %s %s %s", s.Node, s.Unit, s.Interface, strings.Join(keys, ","))
	}))
	add(m.OnPeerRemoved(ctx, func(s *bluechi.MonitorPeerRemovedSignal) { r.ch <- "peer-removed " + s.Reason }))
	t.Cleanup(func() {
		for _, s := range subs {
			s.Close()
		}
	})
	return r
}

// watchStatus sends the Status changes of node and of the controller to
// ch, as "node-status S" and "controller-status S". A connection's
// subscriptions are served in arrival order, so they interleave with a
// recorder's signals on the same connection as the bus delivered them.
func watchStatus(t *testing.T, conn *dbus.Conn, node string, ch chan<- string) []*dbusrt.Subscription {
	t.Helper()
	ctx := context.Background()
	n := bluechi.NewNodeClient(conn, bluechi.ControllerBusName, bluechi.NodePath(node))
	ns, err := n.OnPropertiesChanged(ctx, func(p *bluechi.NodePropertiesChanged) {
		if st, ok := p.Status(); ok {
			ch <- "node-status " + st
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctl := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
	cs, err := ctl.OnPropertiesChanged(ctx, func(p *bluechi.ControllerPropertiesChanged) {
		if st, ok := p.Status(); ok {
			ch <- "controller-status " + st
		}
	})
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	return []*dbusrt.Subscription{ns, cs}
}

// expect reads the next len(want) signals and compares them in order.
func (r *recorder) expect(want ...string) {
	r.t.Helper()
	var got []string
	for range want {
		select {
		case s := <-r.ch:
			got = append(got, s)
		case <-time.After(10 * time.Second):
			r.t.Fatalf("signals: got %q, want %q", got, want)
		}
	}
	if !slices.Equal(got, want) {
		r.t.Fatalf("signals:\n got %q\nwant %q", got, want)
	}
}

// expectSet is expect for signals whose relative order is free.
func (r *recorder) expectSet(want ...string) {
	r.t.Helper()
	var got []string
	for range want {
		select {
		case s := <-r.ch:
			got = append(got, s)
		case <-time.After(10 * time.Second):
			r.t.Fatalf("signals: got %q, want %q in any order", got, want)
		}
	}
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		r.t.Fatalf("signals:\n got %q\nwant %q in any order", got, want)
	}
}

// none checks that nothing else has arrived.
func (r *recorder) none() {
	r.t.Helper()
	select {
	case s := <-r.ch:
		r.t.Fatalf("unexpected signal %q", s)
	default:
	}
}

func (c *cluster) controllerClient() *bluechi.ControllerClient {
	return bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
}

func (c *cluster) monitor(conn *dbus.Conn) *bluechi.MonitorClient {
	c.t.Helper()
	path, err := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath).CreateMonitor(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return bluechi.NewMonitorClient(conn, bluechi.ControllerBusName, path)
}

func waitCalls(t *testing.T, f *unitAgent, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("agent calls %q", want), func() bool { return slices.Equal(f.Calls(), want) })
}

// TestMonitorVirtualEvents follows behaviours.md §4.4: agent subscriptions
// counted across monitors, virtual events on subscribe (V1-V3), on
// disconnect (V4) and on registration (V5), and real events once per
// matching subscription.
func TestMonitorVirtualEvents(t *testing.T) {
	c := startCluster(t, "n1", "n2")
	ctx := context.Background()
	a1 := newUnitAgent(map[string][2]string{"a.service": {"active", "running"}})
	conn1, err := c.connect("n1", a1)
	if err != nil {
		t.Fatal(err)
	}
	mon := c.monitor(c.client)
	rec := newRecorder(t, c.client, mon.Path())

	// V1: the first interest in a loaded unit: the agent announces it.
	specific, err := mon.Subscribe(ctx, "n1", "a.service")
	if err != nil {
		t.Fatal(err)
	}
	rec.expect("new n1 a.service virtual", "state n1 a.service active running virtual")
	waitCalls(t, a1, "Subscribe a.service")

	// V3: a second monitor on the same unit gets the cached state from
	// the controller; the agent is not asked again, the first monitor
	// hears nothing.
	other, _, err := dbusrt.ConnectBus(c.busAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mon2 := c.monitor(other)
	rec2 := newRecorder(t, other, mon2.Path())
	if _, err := mon2.Subscribe(ctx, "n1", "a.service"); err != nil {
		t.Fatal(err)
	}
	rec2.expect("new n1 a.service virtual", "state n1 a.service active running virtual")

	// V2: the first wildcard on an online node; n2 is offline.
	if _, err := mon.Subscribe(ctx, "*", "*"); err != nil {
		t.Fatal(err)
	}
	rec.expect("new n1 * virtual")
	waitCalls(t, a1, "Subscribe a.service", "Subscribe *")

	// Real events reach every matching subscription: the first monitor
	// twice (unit and wildcard subscription), the second once.
	a1.stateChanged("a.service", "deactivating", "stop")
	rec.expect("state n1 a.service deactivating stop real", "state n1 a.service deactivating stop real")
	rec2.expect("state n1 a.service deactivating stop real")
	a1.obj.EmitUnitPropertiesChanged(daemonapi.InternalAgentUnitPropertiesChangedSignal{Unit: "b.service", Interface: "org.freedesktop.systemd1.Unit",
		Props: map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("active")}})
	rec.expect("props n1 b.service org.freedesktop.systemd1.Unit ActiveState")
	a1.obj.EmitUnitRemoved(daemonapi.InternalAgentUnitRemovedSignal{Unit: "b.service"})
	rec.expect("removed n1 b.service real")
	a1.stateChanged("a.service", "active", "running")
	rec.expect("state n1 a.service active running real", "state n1 a.service active running real")
	rec2.expect("state n1 a.service active running real")

	// V5: n2 registers; the wildcard is replayed to it.
	a2 := newUnitAgent(nil)
	if _, err := c.connect("n2", a2); err != nil {
		t.Fatal(err)
	}
	rec.expect("new n2 * virtual")
	waitCalls(t, a2, "Subscribe *")

	// V4: n1 goes away: virtual inactive/agent-offline, then removed, for
	// every loaded name, to every matching subscription. The second
	// monitor's connection also hears the node's and the controller's
	// Status, in one ordered stream with the monitor's signals: the
	// virtual events come first (internal-protocol.md §10).
	statusSubs := watchStatus(t, other, "n1", rec2.ch)
	conn1.Close()
	rec.expectSet(
		"state n1 * inactive agent-offline virtual", "removed n1 * virtual",
		"state n1 a.service inactive agent-offline virtual", "state n1 a.service inactive agent-offline virtual",
		"removed n1 a.service virtual", "removed n1 a.service virtual")
	rec2.expect("state n1 a.service inactive agent-offline virtual", "removed n1 a.service virtual",
		"node-status offline", "controller-status degraded")
	for _, sub := range statusSubs {
		sub.Close()
	}

	// V5: n1 comes back; the agent gets every name again.
	a1.mu.Lock()
	a1.calls = nil
	a1.mu.Unlock()
	if _, err := c.connect("n1", a1); err != nil {
		t.Fatal(err)
	}
	rec.expectSet("new n1 * virtual",
		"new n1 a.service virtual", "new n1 a.service virtual",
		"state n1 a.service active running virtual", "state n1 a.service active running virtual")
	rec2.expect("new n1 a.service virtual", "state n1 a.service active running virtual")
	waitCalls(t, a1, "Subscribe *", "Subscribe a.service")

	// The agent hears Unsubscribe only when the last interest goes.
	if err := mon.Unsubscribe(ctx, specific); err != nil {
		t.Fatal(err)
	}
	if err := mon2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, a1, "Subscribe *", "Subscribe a.service", "Unsubscribe a.service")
	a1.stateChanged("a.service", "failed", "failed")
	rec.expect("state n1 a.service failed failed real") // through the wildcard only
	rec.none()
	rec2.none()
}

// TestMonitorPeersAndOwner covers AddPeer/RemovePeer, delivery only to the
// owner and peers, Close, and the automatic close when the owner leaves.
func TestMonitorPeersAndOwner(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	a1 := newUnitAgent(map[string][2]string{"a.service": {"active", "running"}})
	if _, err := c.connect("n1", a1); err != nil {
		t.Fatal(err)
	}
	owner, _, err := dbusrt.ConnectBus(c.busAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	peer, _, err := dbusrt.ConnectBus(c.busAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	stranger, _, err := dbusrt.ConnectBus(c.busAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()

	mon := c.monitor(owner)
	recOwner := newRecorder(t, owner, mon.Path())
	recPeer := newRecorder(t, peer, mon.Path())
	recStranger := newRecorder(t, stranger, mon.Path())

	for _, bad := range []string{"", "1.5", ":1", ":1.", ":.5", ":1..2", ":1.a-b", ":1._b", "org.example.Name", ":" + strings.Repeat("a.", 128) + "b"} {
		if _, err := mon.AddPeer(ctx, bad); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
			t.Errorf("AddPeer(%q): %v, want InvalidArgs", bad, err)
		}
	}
	if _, err := mon.AddPeer(ctx, dbusrt.UniqueName(owner)); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Errorf("AddPeer(owner): %v, want InvalidArgs", err)
	}
	if _, err := mon.AddPeer(ctx, ":1.9999"); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Errorf("AddPeer(absent name): %v, want InvalidArgs", err)
	}
	peerID, err := mon.AddPeer(ctx, dbusrt.UniqueName(peer))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mon.AddPeer(ctx, dbusrt.UniqueName(peer)); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Errorf("AddPeer twice: %v, want InvalidArgs", err)
	}
	if err := mon.RemovePeer(ctx, peerID+100, "x"); dbusrt.ErrorName(err) != dbusrt.ErrFailed {
		t.Errorf("RemovePeer(unknown): %v, want Failed", err)
	}

	if _, err := mon.Subscribe(ctx, "n1", "a.service"); err != nil {
		t.Fatal(err)
	}
	both := []string{"new n1 a.service virtual", "state n1 a.service active running virtual"}
	recOwner.expect(both...)
	recPeer.expect(both...)

	// Removing the peer: it gets PeerRemoved and nothing after it.
	if err := mon.RemovePeer(ctx, peerID, "bye"); err != nil {
		t.Fatal(err)
	}
	recPeer.expect("peer-removed bye")
	a1.stateChanged("a.service", "inactive", "dead")
	recOwner.expect("state n1 a.service inactive dead real")

	// The stranger, once added, receives the next event; anything leaked
	// to it before would have arrived first.
	strangerID, err := mon.AddPeer(ctx, dbusrt.UniqueName(stranger))
	if err != nil {
		t.Fatal(err)
	}
	a1.stateChanged("a.service", "active", "running")
	recOwner.expect("state n1 a.service active running real")
	recStranger.expect("state n1 a.service active running real")
	recPeer.none()
	if strangerID <= peerID {
		t.Errorf("peer ids %d then %d", peerID, strangerID)
	}

	// Close: the peer hears "monitor closed", the agent loses interest,
	// the object is gone.
	if err := mon.Close(ctx); err != nil {
		t.Fatal(err)
	}
	recStranger.expect("peer-removed monitor closed")
	waitCalls(t, a1, "Subscribe a.service", "Unsubscribe a.service")
	if err := mon.Close(ctx); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Errorf("Close twice: %v", err)
	}
	if _, err := mon.Subscribe(ctx, "n1", "a.service"); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Errorf("Subscribe after Close: %v", err)
	}

	// An owner that leaves the bus takes its monitor with it.
	mon = c.monitor(owner)
	recPeer = newRecorder(t, peer, mon.Path())
	if _, err := mon.AddPeer(ctx, dbusrt.UniqueName(peer)); err != nil {
		t.Fatal(err)
	}
	if _, err := mon.Subscribe(ctx, "*", "*"); err != nil {
		t.Fatal(err)
	}
	recPeer.expect("new n1 * virtual")
	owner.Close()
	recPeer.expect("peer-removed monitor closed")
	waitCalls(t, a1, "Subscribe a.service", "Unsubscribe a.service", "Subscribe *", "Unsubscribe *")
	probe := bluechi.NewMonitorClient(c.client, bluechi.ControllerBusName, mon.Path())
	if _, err := probe.Subscribe(ctx, "n1", "x.service"); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Errorf("monitor of a departed owner: %v", err)
	}
	recOwner.none()
	recStranger.none()
}

// TestMonitorBadInput checks that refused calls name the spec's errors and
// leave the monitor as it was.
func TestMonitorBadInput(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	a1 := newUnitAgent(nil)
	if _, err := c.connect("n1", a1); err != nil {
		t.Fatal(err)
	}
	mon := c.monitor(c.client)
	rec := newRecorder(t, c.client, mon.Path())
	id, err := mon.Subscribe(ctx, "n1", "a.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "a", "*.service", "a*", "a b.service", "foo.nope", "**"} {
		if _, err := mon.Subscribe(ctx, "n1", u); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
			t.Errorf("Subscribe(n1, %q): %v, want InvalidArgs", u, err)
		}
		if _, err := mon.SubscribeList(ctx, "*", []string{"b.service", u}); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
			t.Errorf("SubscribeList(*, [b.service %q]): %v, want InvalidArgs", u, err)
		}
	}
	if _, err := mon.SubscribeList(ctx, "n1", nil); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Errorf("SubscribeList without units: %v", err)
	}
	if _, err := mon.SubscribeList(ctx, "n1", slices.Repeat([]string{"b.service"}, 1025)); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Errorf("SubscribeList with 1025 units: %v", err)
	}
	err = mon.Unsubscribe(ctx, id+1000)
	if dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != fmt.Sprintf("Subscription '%d' not found", id+1000) {
		t.Errorf("Unsubscribe(unknown): %v", err)
	}
	// Unknown nodes are accepted; such subscriptions never fire.
	ghost, err := mon.Subscribe(ctx, "nowhere", "a.service")
	if err != nil {
		t.Fatal(err)
	}
	if ghost == id {
		t.Fatalf("duplicate subscription id %d", id)
	}
	waitCalls(t, a1, "Subscribe a.service")
	a1.stateChanged("a.service", "active", "running")
	rec.expect("state n1 a.service active running real")
	if err := mon.Unsubscribe(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	if err := mon.Unsubscribe(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, a1, "Subscribe a.service", "Unsubscribe a.service")
	if err := mon.Unsubscribe(ctx, id); dbusrt.ErrorName(err) != dbusrt.ErrFailed {
		t.Errorf("Unsubscribe twice: %v", err)
	}
	rec.none()
}

// TestMetrics covers EnableMetrics/DisableMetrics, the Metrics object's
// lifetime, the relayed AgentJobMetrics and StartUnitJobMetrics.
func TestMetrics(t *testing.T) {
	c := startCluster(t, "n1", "n2")
	ctx := context.Background()
	a1 := newUnitAgent(nil)
	if _, err := c.connect("n1", a1); err != nil {
		t.Fatal(err)
	}
	ctrl := c.controllerClient()
	introspect := func() error {
		return c.client.Object(bluechi.ControllerBusName, bluechi.MetricsPath).Call(dbusrt.IntrospectableInterface+".Introspect", 0).Err
	}
	if err := introspect(); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("metrics object while off: %v", err)
	}
	if err := ctrl.DisableMetrics(ctx); dbusrt.ErrorName(err) != dbusrt.ErrInconsistentMessage {
		t.Fatalf("DisableMetrics while off: %v", err)
	}
	if err := ctrl.EnableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.EnableMetrics(ctx); dbusrt.ErrorName(err) != dbusrt.ErrInconsistentMessage {
		t.Fatalf("EnableMetrics twice: %v", err)
	}
	if err := introspect(); err != nil {
		t.Fatalf("metrics object while on: %v", err)
	}
	waitCalls(t, a1, "EnableMetrics")
	a2 := newUnitAgent(nil)
	if _, err := c.connect("n2", a2); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, a2, "EnableMetrics") // replayed at registration

	metrics := bluechi.NewMetricsClient(c.client, bluechi.ControllerBusName, bluechi.MetricsPath)
	starts := make(chan *bluechi.MetricsStartUnitJobMetricsSignal, 4)
	agents := make(chan *bluechi.MetricsAgentJobMetricsSignal, 4)
	s1, err := metrics.OnStartUnitJobMetrics(ctx, func(s *bluechi.MetricsStartUnitJobMetricsSignal) { starts <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := metrics.OnAgentJobMetrics(ctx, func(s *bluechi.MetricsAgentJobMetricsSignal) { agents <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	job, err := c.node("n1").StartUnit(ctx, "a.service", "replace")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-agents:
		if s.NodeName != "n1" || s.Unit != "a.service" || s.Method != "StartUnit" || s.SystemdJobTimeMicros != 1500 {
			t.Fatalf("AgentJobMetrics %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no AgentJobMetrics")
	}
	select {
	case s := <-starts:
		if s.NodeName != "n1" || s.JobID != string(job) || s.Unit != "a.service" || s.UnitStartPropTimeMicros != 4000 ||
			s.JobMeasuredTimeMicros == 0 || s.JobMeasuredTimeMicros > 10_000_000 {
			t.Fatalf("StartUnitJobMetrics %+v for %s", s, job)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no StartUnitJobMetrics")
	}

	if err := ctrl.DisableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := introspect(); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("metrics object after disable: %v", err)
	}
	waitCalls(t, a1, "EnableMetrics", "DisableMetrics")
	waitCalls(t, a2, "EnableMetrics", "DisableMetrics")
	if _, err := c.node("n1").StartUnit(ctx, "a.service", "replace"); err != nil {
		t.Fatal(err)
	}
	// Metrics on again prove nothing of the job above was sent.
	if err := ctrl.EnableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, a1, "EnableMetrics", "DisableMetrics", "EnableMetrics")
	if _, err := c.node("n1").StartUnit(ctx, "b.service", "replace"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-agents:
		if s.Unit != "b.service" {
			t.Fatalf("AgentJobMetrics while off: %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no AgentJobMetrics")
	}
}

// BenchmarkMonitorEventPath measures the controller's per-event cost: a
// fake agent sends UnitStateChanged over its peer connection, the
// controller turns each into a unicast monitor signal, a bus client
// receives them. ns/op is wall time per event through the whole pipeline.
func BenchmarkMonitorEventPath(b *testing.B) {
	states := [][2]string{{"activating", "start"}, {"active", "running"}}
	benchMonitorPath(b, "a.service",
		func(mon *bluechi.MonitorClient, got func()) (*dbusrt.Subscription, error) {
			return mon.OnUnitStateChanged(context.Background(), func(*bluechi.MonitorUnitStateChangedSignal) { got() })
		},
		func(a *unitAgent, i int) {
			st := states[i%2]
			a.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: "a.service", ActiveState: st[0], SubState: st[1], Reason: "real"})
		})
}

// benchMonitorPath runs b.N events through a fake agent, the controller
// and one monitor subscribed to unit on n1: on subscribes the bus client
// to the monitor signal (calling got for each), emit sends event i.
func benchMonitorPath(b *testing.B, unit string,
	on func(mon *bluechi.MonitorClient, got func()) (*dbusrt.Subscription, error),
	emit func(a *unitAgent, i int)) {
	c := startCluster(b, "n1")
	a1 := newUnitAgent(nil)
	if _, err := c.connect("n1", a1); err != nil {
		b.Fatal(err)
	}
	client, _, err := dbusrt.ConnectBus(c.busAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	path, err := bluechi.NewControllerClient(client, bluechi.ControllerBusName, bluechi.ControllerPath).CreateMonitor(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mon := bluechi.NewMonitorClient(client, bluechi.ControllerBusName, path)
	got := make(chan struct{}, 1<<16)
	sub, err := on(mon, func() { got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if _, err := mon.Subscribe(ctx, "n1", unit); err != nil {
		b.Fatal(err)
	}
	defer reportCPU(b)()
	go func() {
		for i := 0; i < b.N; i++ {
			emit(a1, i)
		}
	}()
	for i := 0; i < b.N; i++ {
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			b.Fatalf("received %d of %d", i, b.N)
		}
	}
}

// reportCPU resets the timer and returns a function that reports the CPU
// time the whole test process (fake agent, controller, bus client) used per
// operation, as "cpu-ns/op".
func reportCPU(b *testing.B) func() {
	var start syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &start)
	b.ResetTimer()
	return func() {
		b.StopTimer()
		var end syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &end)
		used := time.Duration(end.Utime.Nano() + end.Stime.Nano() - start.Utime.Nano() - start.Stime.Nano())
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// unitProps is a typical PropertiesChanged of org.freedesktop.systemd1.Unit
// as systemd sends it (22 values, two of them structs).
func unitProps(active string) map[string]dbus.Variant {
	type job struct {
		ID   uint32
		Path dbus.ObjectPath
	}
	type detail struct{ K, V string }
	p := map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant(active), "SubState": dbus.MakeVariant("running"), "FreezerState": dbus.MakeVariant("running"),
		"Job": dbus.MakeVariant(job{0, "/"}), "InvocationID": dbus.MakeVariant([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
		"ActivationDetails": dbus.MakeVariant([]detail{}), "ConditionResult": dbus.MakeVariant(true), "AssertResult": dbus.MakeVariant(true),
	}
	for _, k := range []string{"InactiveEnter", "InactiveExit", "ActiveEnter", "ActiveExit", "Condition", "Assert", "StateChange"} {
		p[k+"Timestamp"] = dbus.MakeVariant(uint64(1795000000000000))
		p[k+"TimestampMonotonic"] = dbus.MakeVariant(uint64(3140000000))
	}
	return p
}

// BenchmarkMonitorPropsPath is BenchmarkMonitorEventPath with
// UnitPropertiesChanged carrying a typical systemd property set.
func BenchmarkMonitorPropsPath(b *testing.B) {
	props := [2]map[string]dbus.Variant{unitProps("active"), unitProps("activating")}
	benchMonitorPath(b, "*",
		func(mon *bluechi.MonitorClient, got func()) (*dbusrt.Subscription, error) {
			return mon.OnUnitPropertiesChanged(context.Background(), func(*bluechi.MonitorUnitPropertiesChangedSignal) { got() })
		},
		func(a *unitAgent, i int) {
			a.obj.EmitUnitPropertiesChanged(daemonapi.InternalAgentUnitPropertiesChangedSignal{Unit: "a.service", Interface: "org.freedesktop.systemd1.Unit", Props: props[i%2]})
		})
}

// TestMonitorOwnerGoneNoLeak closes many monitors through their owner's
// departure and checks that nothing is left behind: the monitor objects,
// the agent's subscriptions and the goroutines.
func TestMonitorOwnerGoneNoLeak(t *testing.T) {
	c := startCluster(t, "n1")
	a1 := newUnitAgent(nil)
	if _, err := c.connect("n1", a1); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	probe := func(path dbus.ObjectPath) error {
		return c.client.Object(bluechi.ControllerBusName, path).Call(dbusrt.IntrospectableInterface+".Introspect", 0).Err
	}
	// Warm up: one monitor created and closed, so lazily started
	// goroutines (signal routers) exist before the baseline.
	warm := c.monitor(c.client)
	if err := warm.Close(ctx); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	owner, _, err := dbusrt.ConnectBus(c.busAddr)
	if err != nil {
		t.Fatal(err)
	}
	var paths []dbus.ObjectPath
	for i := 0; i < 20; i++ {
		m := c.monitor(owner)
		if _, err := m.Subscribe(ctx, "*", fmt.Sprintf("u%d.service", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := m.SubscribeList(ctx, "n1", []string{"*", "x.service"}); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m.Path())
	}
	waitFor(t, "agent subscriptions", func() bool { return len(a1.Calls()) == 22 })
	owner.Close()
	for _, p := range paths {
		waitFor(t, "monitor "+string(p)+" gone", func() bool { return dbusrt.ErrorName(probe(p)) == dbusrt.ErrUnknownObject })
	}
	waitFor(t, "agent unsubscribed", func() bool {
		a1.mu.Lock()
		defer a1.mu.Unlock()
		return len(a1.subs) == 0 && !a1.wildcard
	})
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base })
}

// TestMonitorMalformedAgentSignals: unit and job signals from an agent with
// the wrong body (bad signature, wrong types, invalid UTF-8) are dropped
// on the fast path; the connection and the monitors go on.
func TestMonitorMalformedAgentSignals(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	a1 := newUnitAgent(nil)
	conn1, err := c.connect("n1", a1)
	if err != nil {
		t.Fatal(err)
	}
	mon := c.monitor(c.client)
	rec := newRecorder(t, c.client, mon.Path())
	if _, err := mon.Subscribe(ctx, "n1", "*"); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, a1, "Subscribe *")
	rec.expect("new n1 * virtual")
	emit := func(member string, args ...any) {
		t.Helper()
		if err := conn1.emitRaw(member, args...); err != nil {
			t.Fatal(err)
		}
	}
	emit(daemonapi.InternalAgentSignalUnitStateChanged, "a.service", "active")               // too few
	emit(daemonapi.InternalAgentSignalUnitStateChanged, "a.service", "active", "running", 7) // wrong type
	emit(daemonapi.InternalAgentSignalUnitNew, "a.service", "\xff\xfe")                      // not UTF-8
	emit(daemonapi.InternalAgentSignalUnitPropertiesChanged, "a.service", "x", "not a{sv}")
	emit(daemonapi.InternalAgentSignalJobDone, "1", "done") // id is a string
	a1.obj.EmitUnitStateChanged(daemonapi.InternalAgentUnitStateChangedSignal{Unit: "b.service", ActiveState: "active", SubState: "running", Reason: "real"})
	rec.expect("state n1 b.service active running real")
	if s, err := c.node("n1").GetStatus(ctx); err != nil || s != "online" {
		t.Fatalf("node after malformed signals: %q, %v", s, err)
	}
}

// TestMonitorOwnerOnly: every Monitor method answers only the monitor's
// owner; an added peer and an unrelated bus client get AccessDenied and
// leave the monitor as it was (subscriptions, peers, open). Introspection
// stays open to every caller.
func TestMonitorOwnerOnly(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	a1 := newUnitAgent(map[string][2]string{"a.service": {"active", "running"}})
	if _, err := c.connect("n1", a1); err != nil {
		t.Fatal(err)
	}
	dial := func() *dbus.Conn {
		conn, _, err := dbusrt.ConnectBus(c.busAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	owner, peer, stranger := dial(), dial(), dial()
	mon := c.monitor(owner)
	recOwner := newRecorder(t, owner, mon.Path())
	recPeer := newRecorder(t, peer, mon.Path())
	peerID, err := mon.AddPeer(ctx, dbusrt.UniqueName(peer))
	if err != nil {
		t.Fatal(err)
	}
	subID, err := mon.Subscribe(ctx, "n1", "a.service")
	if err != nil {
		t.Fatal(err)
	}
	both := []string{"new n1 a.service virtual", "state n1 a.service active running virtual"}
	recOwner.expect(both...)
	recPeer.expect(both...)

	for _, caller := range []struct {
		name string
		conn *dbus.Conn
	}{{"peer", peer}, {"stranger", stranger}} {
		m := bluechi.NewMonitorClient(caller.conn, bluechi.ControllerBusName, mon.Path())
		denied := func(method string, err error) {
			t.Helper()
			if dbusrt.ErrorName(err) != dbusrt.ErrAccessDenied {
				t.Errorf("%s calling %s: %v, want AccessDenied", caller.name, method, err)
			}
		}
		_, err := m.Subscribe(ctx, "n1", "b.service")
		denied("Subscribe", err)
		_, err = m.SubscribeList(ctx, "*", []string{"b.service", "c.service"})
		denied("SubscribeList", err)
		denied("Unsubscribe", m.Unsubscribe(ctx, subID))
		_, err = m.AddPeer(ctx, dbusrt.UniqueName(stranger))
		denied("AddPeer", err)
		denied("RemovePeer", m.RemovePeer(ctx, peerID, "evicted"))
		denied("Close", m.Close(ctx))
		if err := caller.conn.Object(bluechi.ControllerBusName, mon.Path()).Call(dbusrt.IntrospectableInterface+".Introspect", 0).Err; err != nil {
			t.Errorf("%s introspecting the monitor: %v", caller.name, err)
		}
	}

	// Nothing changed: the agent saw only the owner's subscription, the
	// owner and the peer still get the events, the stranger was not added.
	a1.stateChanged("a.service", "inactive", "dead")
	recOwner.expect("state n1 a.service inactive dead real")
	recPeer.expect("state n1 a.service inactive dead real")
	if got := a1.Calls(); !slices.Equal(got, []string{"Subscribe a.service"}) {
		t.Errorf("agent calls after refused calls: %q", got)
	}
	if _, err := mon.AddPeer(ctx, dbusrt.UniqueName(stranger)); err != nil {
		t.Errorf("owner adding the stranger after its refused calls: %v", err)
	}

	// The owner keeps every right.
	if err := mon.Unsubscribe(ctx, subID); err != nil {
		t.Fatal(err)
	}
	if err := mon.RemovePeer(ctx, peerID, "bye"); err != nil {
		t.Fatal(err)
	}
	recPeer.expect("peer-removed bye")
	if err := mon.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, a1, "Subscribe a.service", "Unsubscribe a.service")
	recOwner.none()
	recPeer.none()
}
