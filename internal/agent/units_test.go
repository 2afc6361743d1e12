// SPDX-License-Identifier: Apache-2.0

package agent_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/agent"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// fakeSystemd has a fixed unit list and an event stream the test feeds.
// Methods the test does not use are left to the nil embedded interface.
type fakeSystemd struct {
	agent.Systemd
	units  []bluechi.UnitInfo
	events chan systemd.Event
	stops  chan string // names given to StopUnit, if not nil
}

func (f *fakeSystemd) ListUnits(context.Context) ([]bluechi.UnitInfo, error) { return f.units, nil }
func (f *fakeSystemd) Events() <-chan systemd.Event                          { return f.events }

// StartUnit answers with a fixed job path, tracked first as systemd.Client does.
func (f *fakeSystemd) StartUnit(ctx context.Context, name, mode string, track func(dbus.ObjectPath)) (dbus.ObjectPath, error) {
	p := dbus.ObjectPath(systemd.JobPathPrefix + "7")
	track(p)
	return p, nil
}

// StopUnit records the unit name and answers with a fixed job path.
func (f *fakeSystemd) StopUnit(ctx context.Context, name, mode string, track func(dbus.ObjectPath)) (dbus.ObjectPath, error) {
	if f.stops != nil {
		f.stops <- name + " " + mode
	}
	return dbus.ObjectPath(systemd.JobPathPrefix + "8"), nil
}

// ctlConn is the fake controller's end of one agent connection: our own
// connection type, as the real controller has, with the agent's signals
// handed to the watchers added by onSignal.
type ctlConn struct {
	*wireconn.Conn

	mu      sync.Mutex
	signals []func(*wire.Message) // guarded by mu
}

// onSignal calls fn, on the connection's reader, for every signal member
// of iface the agent sends.
func (c *ctlConn) onSignal(iface, member string, fn func(*wire.Message)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signals = append(c.signals, func(m *wire.Message) {
		if m.Interface == iface && m.Member == member {
			fn(m)
		}
	})
}

func (c *ctlConn) signal(_ *wireconn.Conn, m *wire.Message) {
	c.mu.Lock()
	fns := slices.Clone(c.signals)
	c.mu.Unlock()
	for _, fn := range fns {
		fn(m)
	}
}

// agentClient calls the agent's internal Agent object.
func (c *ctlConn) agentClient() *daemonapi.InternalAgentWireClient {
	return daemonapi.NewInternalAgentWireClient(c.Conn, bluechi.AgentBusName, string(daemonapi.InternalAgentPath))
}

// fakeController accepts agent connections and hands out the registered ones.
type fakeController struct {
	registered chan *ctlConn
	onRegister func(*ctlConn) // runs before Register replies, if not nil
}

// ctlHandler serves the internal Controller object on one connection.
type ctlHandler struct {
	daemonapi.UnimplementedInternalControllerServer
	fc   *fakeController
	conn *ctlConn
}

func (h *ctlHandler) Register(ctx context.Context, name string) error {
	h.conn.MarkRegistered()
	if h.fc.onRegister != nil {
		h.fc.onRegister(h.conn)
	}
	h.fc.registered <- h.conn
	return nil
}

func startFakeController(t *testing.T) (string, *fakeController) {
	return startFakeControllerHook(t, nil)
}

// startFakeControllerHook is startFakeController with a hook that sees each
// registering connection before its Register call is answered.
func startFakeControllerHook(t *testing.T, onRegister func(*ctlConn)) (string, *fakeController) {
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fc := &fakeController{registered: make(chan *ctlConn, 4), onRegister: onRegister}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			cc := &ctlConn{}
			srv := dbusrt.NewServer()
			if _, err := daemonapi.ExportInternalControllerOn(srv, daemonapi.InternalControllerPath, &ctlHandler{fc: fc, conn: cc}, daemonapi.InternalControllerProperties{}); err != nil {
				t.Error(err)
				return
			}
			c, err := wireconn.Accept(context.Background(), nc, wireconn.Options{MethodCall: srv.ServeWire, Signal: cc.signal})
			if err != nil {
				continue
			}
			cc.Conn = c
			srv.BindWire(c)
			c.Start()
			t.Cleanup(func() { c.Close() })
		}
	}()
	return "unix:path=" + sock, fc
}

// agentEvents records the unit, job and metrics signals of one connection.
type agentEvents struct {
	t  *testing.T
	ch chan string
}

func watchAgent(t *testing.T, conn *ctlConn) *agentEvents {
	e := &agentEvents{t: t, ch: make(chan string, 100)}
	on := func(member string, decode func(*wire.Message) (string, error)) {
		conn.onSignal(daemonapi.InternalAgentInterface, member, func(m *wire.Message) {
			s, err := decode(m)
			if err != nil {
				t.Errorf("signal %s: %v", member, err)
				return
			}
			e.ch <- s
		})
	}
	on(daemonapi.InternalAgentSignalUnitNew, func(m *wire.Message) (string, error) {
		s, err := daemonapi.DecodeInternalAgentUnitNew(m)
		return "new " + s.Unit + " " + s.Reason, err
	})
	on(daemonapi.InternalAgentSignalUnitRemoved, func(m *wire.Message) (string, error) {
		s, err := daemonapi.DecodeInternalAgentUnitRemoved(m)
		return "removed " + s.Unit, err
	})
	on(daemonapi.InternalAgentSignalUnitStateChanged, func(m *wire.Message) (string, error) {
		s, err := daemonapi.DecodeInternalAgentUnitStateChanged(m)
		return strings.Join([]string{"state", s.Unit, s.ActiveState, s.SubState, s.Reason}, " "), err
	})
	on(daemonapi.InternalAgentSignalUnitPropertiesChanged, func(m *wire.Message) (string, error) {
		s, err := daemonapi.DecodeInternalAgentUnitPropertiesChanged(m)
		return "props " + s.Unit + " " + s.Interface, err
	})
	on(daemonapi.InternalAgentSignalJobDone, func(m *wire.Message) (string, error) {
		s, err := daemonapi.DecodeInternalAgentJobDone(m)
		return fmt.Sprintf("done %d %s", s.ID, s.Result), err
	})
	conn.onSignal(daemonapi.InternalAgentMetricsInterface, daemonapi.InternalAgentMetricsSignalAgentJobMetrics, func(m *wire.Message) {
		s, err := daemonapi.DecodeInternalAgentMetricsAgentJobMetrics(m)
		if err != nil {
			t.Errorf("signal AgentJobMetrics: %v", err)
			return
		}
		plausible := s.SystemdJobTimeMicros > 0 && s.SystemdJobTimeMicros < 10_000_000
		e.ch <- fmt.Sprintf("metrics %s %s %v", s.Unit, s.Method, plausible)
	})
	return e
}

func (e *agentEvents) expect(want ...string) {
	e.t.Helper()
	var got []string
	for range want {
		select {
		case s := <-e.ch:
			got = append(got, s)
		case <-time.After(10 * time.Second):
			e.t.Fatalf("signals: got %q, want %q", got, want)
		}
	}
	if !slices.Equal(got, want) {
		e.t.Fatalf("signals:\n got %q\nwant %q", got, want)
	}
}

func unitChange(unit, iface string, kv ...string) *systemd.PropertiesChanged {
	var w wire.Writer
	arr := w.BeginArray(8)
	for i := 0; i+1 < len(kv); i += 2 {
		w.Align(8)
		w.String(kv[i])
		w.Signature("s")
		w.String(kv[i+1])
	}
	w.EndArray(arr)
	return &systemd.PropertiesChanged{Path: systemd.UnitPath(unit), Unit: unit, Interface: iface, Props: w.Buf}
}

// runAgent runs an agent on sd (a fake, or a systemd.Client of a sandbox
// node) against a fake controller until the end of the test and returns
// the controller and the agent's registered connection.
func runAgent(t *testing.T, sd agent.Systemd) (*fakeController, *ctlConn) {
	t.Helper()
	return runAgentWith(t, sd, 100)
}

// runAgentWith is runAgent with the agent's HeartbeatInterval in ms.
func runAgentWith(t *testing.T, sd agent.Systemd, heartbeat int64) (*fakeController, *ctlConn) {
	t.Helper()
	addr, fc := startFakeController(t)
	log, err := logging.New(logging.Options{Target: "stderr", Level: "WARN"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Agent{NodeName: "n1", ControllerAddress: addr, HeartbeatInterval: heartbeat}
	a, err := agent.New(cfg, log, sd, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case conn := <-fc.registered:
		return fc, conn
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not register")
		return nil, nil
	}
}

// TestUnitEventsBeforeJobDone: real unit events wait in the connection's
// queue for a little while (unitEventWindow), but a job event takes them
// along at once and in order.
func TestUnitEventsBeforeJobDone(t *testing.T) {
	sd := &fakeSystemd{events: make(chan systemd.Event, 16)}
	_, conn := runAgent(t, sd)
	ctx := context.Background()
	ev := watchAgent(t, conn)
	c := conn.agentClient()
	if err := c.Subscribe(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new * virtual")
	if err := c.StartUnit(ctx, "x.service", "replace", 43); err != nil {
		t.Fatal(err)
	}
	sd.events <- &systemd.UnitNew{ID: "x.service", Path: systemd.UnitPath("x.service")}
	sd.events <- unitChange("x.service", systemd.UnitInterface, "ActiveState", "active", "SubState", "exited")
	sd.events <- &systemd.JobRemoved{ID: 7, Job: systemd.JobPathPrefix + "7", Unit: "x.service", Result: "done"}
	ev.expect("new x.service real", "state x.service active exited real", "props x.service org.freedesktop.systemd1.Unit", "done 43 done")
	// Alone, unit events still leave by themselves.
	sd.events <- unitChange("x.service", systemd.UnitInterface, "ActiveState", "inactive", "SubState", "dead")
	ev.expect("state x.service inactive dead real", "props x.service org.freedesktop.systemd1.Unit")
}

// TestVirtualEventsWithoutReply: a Subscribe sent with NO_REPLY_EXPECTED
// (as the controller sends them) gets its virtual events at once, not with
// the next message: this agent sends no heartbeats and systemd is quiet.
func TestVirtualEventsWithoutReply(t *testing.T) {
	sd := &fakeSystemd{
		units:  []bluechi.UnitInfo{{Name: "a.service", ActiveState: "active", SubState: "running"}},
		events: make(chan systemd.Event, 16),
	}
	_, conn := runAgentWith(t, sd, 0)
	ev := watchAgent(t, conn)
	c := conn.agentClient()
	if err := c.SendSubscribe("a.service"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new a.service virtual", "state a.service active running virtual")
	if err := c.SendSubscribe("*"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new * virtual")
}

// TestUnknownActiveState: an active state outside api.md §2's list (here
// systemd 256's "refreshing") is reported as "invalid"; the sub state is
// passed on.
func TestUnknownActiveState(t *testing.T) {
	sd := &fakeSystemd{
		units:  []bluechi.UnitInfo{{Name: "a.service", ActiveState: "refreshing", SubState: "refresh"}},
		events: make(chan systemd.Event, 16),
	}
	_, conn := runAgent(t, sd)
	ev := watchAgent(t, conn)
	c := conn.agentClient()
	if err := c.Subscribe(context.Background(), "a.service"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new a.service virtual", "state a.service invalid refresh virtual")
	sd.events <- unitChange("a.service", systemd.UnitInterface, "ActiveState", "active", "SubState", "running")
	sd.events <- unitChange("a.service", systemd.UnitInterface, "ActiveState", "refreshing", "SubState", "refresh")
	ev.expect("state a.service active running real", "props a.service org.freedesktop.systemd1.Unit",
		"state a.service invalid refresh real", "props a.service org.freedesktop.systemd1.Unit")
}

// TestUnitSubscriptions checks the agent's side of internal-protocol.md §8
// and §12: virtual events on Subscribe, real events from systemd's signals
// for interesting units only, the errors of duplicate calls, metrics before
// JobDone, and subscriptions and metrics reset by a new connection.
func TestUnitSubscriptions(t *testing.T) {
	sd := &fakeSystemd{
		units:  []bluechi.UnitInfo{{Name: "a.service", ActiveState: "active", SubState: "running"}},
		events: make(chan systemd.Event, 16),
	}
	fc, conn := runAgent(t, sd)
	ctx := context.Background()
	ev := watchAgent(t, conn)
	c := conn.agentClient()
	failed := func(err error, msg string) {
		t.Helper()
		if dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != msg {
			t.Fatalf("got %v, want Failed %q", err, msg)
		}
	}

	// A loaded unit is announced at once; a second Subscribe fails.
	if err := c.Subscribe(ctx, "a.service"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new a.service virtual", "state a.service active running virtual")
	failed(c.Subscribe(ctx, "a.service"), "Already subscribed")

	// A unit that is not loaded yet: real events once systemd loads it.
	if err := c.Subscribe(ctx, "b.service"); err != nil {
		t.Fatal(err)
	}
	sd.events <- &systemd.UnitNew{ID: "c.service", Path: systemd.UnitPath("c.service")} // not interesting
	sd.events <- unitChange("c.service", systemd.UnitInterface, "ActiveState", "active", "SubState", "running")
	sd.events <- &systemd.UnitNew{ID: "b.service", Path: systemd.UnitPath("b.service")}
	sd.events <- unitChange("b.service", systemd.UnitInterface, "ActiveState", "activating", "SubState", "start")
	sd.events <- unitChange("b.service", systemd.UnitInterface, "ActiveState", "activating", "SubState", "start")
	sd.events <- unitChange("b.service", "org.freedesktop.systemd1.Service", "Result", "success")
	sd.events <- unitChange("nowhere.service", systemd.UnitInterface, "ActiveState", "active") // unknown unit
	sd.events <- &systemd.UnitRemoved{ID: "b.service", Path: systemd.UnitPath("b.service")}
	ev.expect("new b.service real",
		"state b.service activating start real", "props b.service org.freedesktop.systemd1.Unit",
		"props b.service org.freedesktop.systemd1.Unit", // same state: properties only
		"props b.service org.freedesktop.systemd1.Service",
		"removed b.service")

	// The wildcard: a virtual "*", then every unit.
	if err := c.Subscribe(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new * virtual")
	failed(c.Subscribe(ctx, "*"), "Already wildcard subscribed")
	sd.events <- unitChange("c.service", systemd.UnitInterface, "ActiveState", "deactivating", "SubState", "stop")
	ev.expect("state c.service deactivating stop real", "props c.service org.freedesktop.systemd1.Unit")
	if err := c.Unsubscribe(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	failed(c.Unsubscribe(ctx, "*"), "No wildcard subscription active")
	failed(c.Unsubscribe(ctx, "zzz.service"), "Not subscribed")

	// Metrics: timing before JobDone; double switches are InvalidArgs.
	if err := c.EnableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.EnableMetrics(ctx); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("EnableMetrics twice: %v", err)
	}
	if err := c.StartUnit(ctx, "x.service", "replace", 42); err != nil {
		t.Fatal(err)
	}
	sd.events <- &systemd.JobRemoved{ID: 7, Job: systemd.JobPathPrefix + "7", Unit: "x.service", Result: "done"}
	ev.expect("metrics x.service StartUnit true", "done 42 done")
	if err := c.DisableMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DisableMetrics(ctx); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("DisableMetrics twice: %v", err)
	}
	if err := c.EnableMetrics(ctx); err != nil {
		t.Fatal(err)
	}

	// A new connection starts clean: Subscribe gives virtual events again
	// and metrics can be switched on again.
	conn.Close()
	select {
	case conn = <-fc.registered:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not register again")
	}
	ev = watchAgent(t, conn)
	c = conn.agentClient()
	if err := c.Subscribe(ctx, "a.service"); err != nil {
		t.Fatal(err)
	}
	ev.expect("new a.service virtual", "state a.service active running virtual")
	if err := c.EnableMetrics(ctx); err != nil {
		t.Fatalf("EnableMetrics on a new connection: %v", err)
	}
}
