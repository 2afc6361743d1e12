// SPDX-License-Identifier: Apache-2.0

package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/agent"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// waitFor bounds every wait of these tests.
const waitFor = 10 * time.Second

// proxyHarness runs an agent whose public object is on a private bus,
// against a fake controller that records ProxyNew and ProxyRemoved.
type proxyHarness struct {
	t      *testing.T
	sd     *fakeSystemd
	pub    *bluechi.AgentClient
	fc     *fakeController
	conn   *ctlConn    // the current controller connection
	events chan string // "new NODE UNIT PATH" and "removed NODE UNIT", all connections
	stop   func()      // ends the agent (its SIGTERM path)
}

func startProxyHarness(t *testing.T) *proxyHarness {
	t.Helper()
	return startProxyHarnessWith(t, nil)
}

// startProxyHarnessWith is startProxyHarness with systemd listing units.
func startProxyHarnessWith(t *testing.T, units []bluechi.UnitInfo) *proxyHarness {
	t.Helper()
	h := &proxyHarness{t: t, sd: &fakeSystemd{units: units, events: make(chan systemd.Event, 16), stops: make(chan string, 16)}, events: make(chan string, 32)}
	addr, fc := startFakeControllerHook(t, h.watch)
	h.fc = fc
	bus := testbus.Start(t)
	api := dbusrt.NewServer()
	agentBus, err := busconn.Dial(context.Background(), bus.Address, wireconn.Options{MethodCall: api.ServeWire})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentBus.Close() })
	api.BindWire(agentBus.Wire())
	log, err := logging.New(logging.Options{Target: "stderr", Level: "WARN"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(&config.Agent{NodeName: "n1", ControllerAddress: addr, HeartbeatInterval: 100}, log, h.sd, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentBus.RequestName(context.Background(), bluechi.AgentBusName); err != nil {
		t.Fatal(err)
	}
	cli, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	h.pub = bluechi.NewAgentClient(cli, bluechi.AgentBusName, bluechi.AgentPath)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(h.stop)
	h.conn = h.registered()
	return h
}

// watch subscribes to the proxy signals of a registering connection.
func (h *proxyHarness) watch(conn *ctlConn) {
	conn.onSignal(daemonapi.InternalAgentInterface, daemonapi.InternalAgentSignalProxyNew, func(m *wire.Message) {
		s, err := daemonapi.DecodeInternalAgentProxyNew(m)
		if err != nil {
			h.t.Errorf("ProxyNew: %v", err)
			return
		}
		h.events <- fmt.Sprintf("new %s %s %s", s.NodeName, s.UnitName, s.Proxy)
	})
	conn.onSignal(daemonapi.InternalAgentInterface, daemonapi.InternalAgentSignalProxyRemoved, func(m *wire.Message) {
		s, err := daemonapi.DecodeInternalAgentProxyRemoved(m)
		if err != nil {
			h.t.Errorf("ProxyRemoved: %v", err)
			return
		}
		h.events <- fmt.Sprintf("removed %s %s", s.NodeName, s.UnitName)
	})
}

func (h *proxyHarness) registered() *ctlConn {
	h.t.Helper()
	select {
	case conn := <-h.fc.registered:
		return conn
	case <-time.After(waitFor):
		h.t.Fatal("agent did not register")
		return nil
	}
}

// proxyClient calls an internal Proxy object of the agent on the current
// controller connection.
type proxyClient struct {
	*daemonapi.InternalProxyWireClient
	path string
}

// Path is the object path of the proxy.
func (p *proxyClient) Path() string { return p.path }

func (h *proxyHarness) proxyClient(path string) *proxyClient {
	return &proxyClient{daemonapi.NewInternalProxyWireClient(h.conn.Conn, bluechi.AgentBusName, path), path}
}

// create calls CreateProxy in the background; the answer arrives on the channel.
func (h *proxyHarness) create(service, node, unit string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- h.pub.CreateProxy(context.Background(), service, node, unit) }()
	return ch
}

// newProxy creates a proxy for node n2 and returns its answer channel and
// the internal Proxy object announced by ProxyNew.
func (h *proxyHarness) newProxy(unit string) (<-chan error, *proxyClient) {
	h.t.Helper()
	res := h.create("bluechi-proxy@n2_"+unit, "n2", unit)
	ev := h.next()
	var node, u, path string
	if _, err := fmt.Sscanf(ev, "new %s %s %s", &node, &u, &path); err != nil || node != "n2" || u != unit {
		h.t.Fatalf("got %q, want ProxyNew for n2 %s", ev, unit)
	}
	if !strings.HasPrefix(path, daemonapi.InternalProxyPathPrefix) {
		h.t.Fatalf("proxy path %s", path)
	}
	return res, h.proxyClient(path)
}

// next returns the next proxy signal.
func (h *proxyHarness) next() string {
	h.t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(waitFor):
		h.t.Fatal("no proxy signal")
		return ""
	}
}

// answer waits for a CreateProxy answer.
func (h *proxyHarness) answer(res <-chan error) error {
	h.t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(waitFor):
		h.t.Fatal("CreateProxy not answered")
		return nil
	}
}

// pending fails the test if CreateProxy was answered already.
func (h *proxyHarness) pending(res <-chan error) {
	h.t.Helper()
	select {
	case err := <-res:
		h.t.Fatalf("CreateProxy answered early: %v", err)
	default:
	}
}

// noStop fails the test if a unit was stopped.
func (h *proxyHarness) noStop() {
	h.t.Helper()
	select {
	case s := <-h.sd.stops:
		h.t.Fatalf("unexpected StopUnit %s", s)
	default:
	}
}

func call(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantError(t *testing.T, err error, name string) {
	t.Helper()
	if dbusrt.ErrorName(err) != name {
		t.Fatalf("got %v, want %s", err, name)
	}
}

// TestProxyCreateAndRemove: CreateProxy stays pending through virtual and
// informational events, succeeds on "active"; a duplicate triple is
// refused; RemoveProxy emits ProxyRemoved without stopping the unit and is
// idempotent.
func TestProxyCreateAndRemove(t *testing.T) {
	h := startProxyHarness(t)
	ctx := context.Background()
	res, px := h.newProxy("a.service")
	wantError(t, h.pub.CreateProxy(ctx, "bluechi-proxy@n2_a.service", "n2", "a.service"), dbusrt.ErrAddressInUse)
	call(t, px.TargetNew(ctx, "virtual"))
	call(t, px.TargetStateChanged(ctx, "inactive", "dead", "virtual"))
	call(t, px.TargetStateChanged(ctx, "failed", "failed", "virtual"))
	call(t, px.TargetRemoved(ctx, "virtual"))
	call(t, px.TargetStateChanged(ctx, "activating", "start", "real"))
	h.pending(res)
	call(t, px.TargetStateChanged(ctx, "active", "running", "real"))
	call(t, h.answer(res))

	// Bad arguments.
	wantError(t, h.pub.CreateProxy(ctx, "", "n2", "a.service"), dbusrt.ErrInvalidArgs)
	wantError(t, h.pub.CreateProxy(ctx, "x.service", "", "a.service"), dbusrt.ErrInvalidArgs)
	wantError(t, h.pub.CreateProxy(ctx, "x.service", "n2", "bad"), dbusrt.ErrInvalidArgs)

	call(t, h.pub.RemoveProxy(ctx, "bluechi-proxy@n2_a.service", "n2", "a.service"))
	if ev := h.next(); ev != "removed n2 a.service" {
		t.Fatalf("got %q, want ProxyRemoved", ev)
	}
	call(t, h.pub.RemoveProxy(ctx, "bluechi-proxy@n2_a.service", "n2", "a.service"))
	// The object is gone: the controller's calls fail.
	if err := px.TargetStateChanged(ctx, "inactive", "dead", "real"); err == nil {
		t.Fatal("removed proxy object still answers")
	}
	h.noStop()

	// A removed triple may be created again, with a new path.
	res2, px2 := h.newProxy("a.service")
	if px2.Path() == px.Path() {
		t.Fatalf("path %s reused", px.Path())
	}
	// RemoveProxy of a pending proxy fails its CreateProxy.
	call(t, h.pub.RemoveProxy(ctx, "bluechi-proxy@n2_a.service", "n2", "a.service"))
	err := h.answer(res2)
	if dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != "Proxy service stopped" {
		t.Fatalf("pending CreateProxy after RemoveProxy: %v", err)
	}
	if ev := h.next(); ev != "removed n2 a.service" {
		t.Fatalf("got %q, want ProxyRemoved", ev)
	}
}

// TestProxyActivationFailed: real failures while pending answer
// ActivationFailed and remove the proxy; the unit is not stopped.
func TestProxyActivationFailed(t *testing.T) {
	h := startProxyHarness(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		fail func(*proxyClient) error
		msg  string
	}{
		{"failed", func(px *proxyClient) error {
			return px.TargetStateChanged(ctx, "failed", "failed", "real")
		}, ""},
		{"inactive", func(px *proxyClient) error {
			return px.TargetStateChanged(ctx, "inactive", "dead", "real")
		}, ""},
		{"removed", func(px *proxyClient) error { return px.TargetRemoved(ctx, "real") }, ""},
		{"error", func(px *proxyClient) error { return px.Error(ctx, "No such node") }, "No such node"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			unit := c.name + ".service"
			res, px := h.newProxy(unit)
			call(t, px.TargetStateChanged(ctx, "inactive", "dead", "virtual"))
			call(t, c.fail(px))
			err := h.answer(res)
			wantError(t, err, bluechi.ErrorNameActivationFailed)
			if c.msg != "" && dbusrt.ErrorMessage(err) != c.msg {
				t.Fatalf("message %q, want %q", dbusrt.ErrorMessage(err), c.msg)
			}
			if ev := h.next(); ev != "removed n2 "+unit {
				t.Fatalf("got %q, want ProxyRemoved", ev)
			}
			h.noStop()
		})
	}
}

// TestProxyTargetStops: after "ready", virtual stops are ignored and a real
// one stops the local proxy unit and removes the proxy.
func TestProxyTargetStops(t *testing.T) {
	h := startProxyHarness(t)
	ctx := context.Background()
	res, px := h.newProxy("a.service")
	call(t, px.TargetStateChanged(ctx, "active", "running", "virtual"))
	call(t, h.answer(res))
	call(t, px.TargetStateChanged(ctx, "inactive", "dead", "virtual"))
	call(t, px.TargetRemoved(ctx, "virtual"))
	h.noStop()
	call(t, px.TargetStateChanged(ctx, "failed", "failed", "real"))
	select {
	case s := <-h.sd.stops:
		if s != "bluechi-proxy@n2_a.service replace" {
			t.Fatalf("StopUnit %s", s)
		}
	case <-time.After(waitFor):
		t.Fatal("proxy unit not stopped")
	}
	if ev := h.next(); ev != "removed n2 a.service" {
		t.Fatalf("got %q, want ProxyRemoved", ev)
	}
}

// TestProxyReconnect: a new controller connection gets the proxy exported
// again and announced again (internal-protocol.md §9.7).
func TestProxyReconnect(t *testing.T) {
	h := startProxyHarness(t)
	ctx := context.Background()
	res, px := h.newProxy("a.service")
	h.conn.Close()
	h.conn = h.registered()
	if ev, want := h.next(), "new n2 a.service "+string(px.Path()); ev != want {
		t.Fatalf("got %q, want %q", ev, want)
	}
	h.pending(res)
	px = h.proxyClient(px.Path())
	call(t, px.TargetStateChanged(ctx, "active", "running", "real"))
	call(t, h.answer(res))
}

// TestProxyShutdown: the agent's SIGTERM path fails pending CreateProxy
// calls and leaves the units of ready proxies alone (the next instance
// restores their proxies), emitting nothing.
func TestProxyShutdown(t *testing.T) {
	h := startProxyHarness(t)
	ctx := context.Background()
	ready, px := h.newProxy("a.service")
	call(t, px.TargetStateChanged(ctx, "active", "running", "real"))
	call(t, h.answer(ready))
	res, _ := h.newProxy("b.service")
	h.stop()
	err := h.answer(res)
	if dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != "Proxy service stopped" {
		t.Fatalf("pending CreateProxy at shutdown: %v", err)
	}
	h.noStop()
	select {
	case ev := <-h.events:
		t.Fatalf("signal at shutdown: %s", ev)
	default:
	}
}

// TestProxyRestore: an agent starting next to active proxy units restores
// their proxies (ready, announced at registration), but not those of
// units that are not active or whose names do not parse; a restored
// proxy goes when its target really stops (the unit is stopped) or when
// its own unit stops without RemoveProxy.
func TestProxyRestore(t *testing.T) {
	units := []bluechi.UnitInfo{
		{Name: "bluechi-proxy@n2_a.service", ActiveState: "active", SubState: "exited"},
		{Name: "bluechi-proxy@n3_b-c.service", ActiveState: "active", SubState: "exited"},
		{Name: "bluechi-proxy@n2_pending.service", ActiveState: "activating", SubState: "start"},
		{Name: "bluechi-proxy@n2_old.service", ActiveState: "failed", SubState: "failed"},
		{Name: "bluechi-proxy@nounderscore.service", ActiveState: "active", SubState: "exited"},
		{Name: "bluechi-proxy@n2_x.socket", ActiveState: "active", SubState: "running"},
		{Name: "other.service", ActiveState: "active", SubState: "running"},
	}
	h := startProxyHarnessWith(t, units)
	ctx := context.Background()
	got := map[string]string{}
	for range 2 {
		var node, unit, path string
		ev := h.next()
		if _, err := fmt.Sscanf(ev, "new %s %s %s", &node, &unit, &path); err != nil {
			t.Fatalf("got %q, want ProxyNew", ev)
		}
		got[node+" "+unit] = path
	}
	if _, ok := got["n2 a.service"]; !ok || len(got) != 2 || got["n3 b-c.service"] == "" {
		t.Fatalf("restored proxies %v", got)
	}
	select {
	case ev := <-h.events:
		t.Fatalf("unexpected %s", ev)
	default:
	}
	// Ready: a duplicate is refused, virtual stops are ignored, a real one
	// stops the unit.
	wantError(t, h.pub.CreateProxy(ctx, "bluechi-proxy@n2_a.service", "n2", "a.service"), dbusrt.ErrAddressInUse)
	px := h.proxyClient(got["n2 a.service"])
	call(t, px.TargetStateChanged(ctx, "inactive", "agent-offline", "virtual"))
	h.noStop()
	call(t, px.TargetStateChanged(ctx, "inactive", "dead", "real"))
	select {
	case s := <-h.sd.stops:
		if s != "bluechi-proxy@n2_a.service replace" {
			t.Fatalf("StopUnit %s", s)
		}
	case <-time.After(waitFor):
		t.Fatal("proxy unit not stopped")
	}
	if ev := h.next(); ev != "removed n2 a.service" {
		t.Fatalf("got %q, want ProxyRemoved", ev)
	}
	// The other one's unit stops by itself (its ExecStop found no agent).
	h.sd.events <- unitChange("bluechi-proxy@n3_b-c.service", systemd.UnitInterface, "ActiveState", "failed", "SubState", "failed")
	if ev := h.next(); ev != "removed n3 b-c.service" {
		t.Fatalf("got %q, want ProxyRemoved", ev)
	}
	h.noStop()
}

// TestDepUnits: StartDep and StopDep drive bluechi-dep@<unit> on a real
// systemd, with the installed template.
func TestDepUnits(t *testing.T) {
	dep, err := os.ReadFile(filepath.Join("..", "..", "install", "systemd", "system", "bluechi-dep@.service"))
	if err != nil {
		t.Fatal(err)
	}
	node := sandbox.StartT(t, sandbox.Options{Name: "dep", Units: map[string]string{
		sandbox.SimpleServiceName: sandbox.SimpleService, "bluechi-dep@.service": string(dep),
	}})
	ctx := context.Background()
	sd, err := systemd.Connect(ctx, systemd.Options{Address: node.BusAddress})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	_, conn := runAgent(t, sd)
	ag := conn.agentClient()
	depUnit := "bluechi-dep@" + sandbox.SimpleServiceName
	state := func(unit, want string) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			v, err := sd.GetUnitProperty(ctx, unit, systemd.UnitInterface, "ActiveState")
			if err == nil && v.Value() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ActiveState %v (%v), want %s", unit, v.Value(), err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	call(t, ag.StartDep(ctx, sandbox.SimpleServiceName))
	state(depUnit, "active")
	state(sandbox.SimpleServiceName, "active")
	call(t, ag.StopDep(ctx, sandbox.SimpleServiceName))
	state(depUnit, "inactive")
	state(sandbox.SimpleServiceName, "active") // the target keeps running

	// BindsTo: the dep unit follows its target down.
	call(t, ag.StartDep(ctx, sandbox.SimpleServiceName))
	state(depUnit, "active")
	if _, err := sd.StopUnit(ctx, sandbox.SimpleServiceName, "replace", nil); err != nil {
		t.Fatal(err)
	}
	state(depUnit, "inactive")

	// Errors are only logged.
	call(t, ag.StartDep(ctx, "no-such-unit.service"))
	call(t, ag.StopDep(ctx, "no-such-unit.service"))
}
