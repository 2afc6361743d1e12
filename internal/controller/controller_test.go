// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

type testLog struct {
	mu    sync.Mutex
	level string
	l     *slog.Logger
}

func newTestLog() *testLog {
	return &testLog{level: "INFO", l: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}
func (t *testLog) Slog() *slog.Logger { return t.l }
func (t *testLog) SetLevel(l string) error {
	t.mu.Lock()
	t.level = l
	t.mu.Unlock()
	return nil
}
func (t *testLog) Level() string  { t.mu.Lock(); defer t.mu.Unlock(); return t.level }
func (t *testLog) Target() string { return "stderr" }

// fakeAgent answers the controller like an agent whose systemd finishes
// every job at once, sending JobDone before the reply (the race the
// controller must survive).
type fakeAgent struct {
	daemonapi.UnimplementedInternalAgentServer
	conn *wireconn.Conn
}

func (f *fakeAgent) StartUnit(ctx context.Context, name, mode string, id uint32) error {
	if name == "missing.service" {
		return dbusrt.NewError("org.freedesktop.systemd1.NoSuchUnit", "Unit missing.service not found.")
	}
	daemonapi.EmitInternalAgentJobStateChangedWire(f.conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentJobStateChangedSignal{ID: id, State: "running"})
	result := "done"
	if name == "fail.service" {
		result = "failed"
	}
	return daemonapi.EmitInternalAgentJobDoneWire(f.conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentJobDoneSignal{ID: id, Result: result})
}

func (f *fakeAgent) StopUnit(ctx context.Context, name, mode string, id uint32) error {
	return nil // never finishes: the job stays until the node goes away
}

func (f *fakeAgent) ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error) {
	return []bluechi.UnitInfo{{Name: "a.service", ActiveState: "active", Path: "/org/freedesktop/systemd1/unit/a_2eservice", JobPath: "/"}}, nil
}

type cluster struct {
	t       testing.TB
	addr    string
	busAddr string
	client  *dbus.Conn
	ctrl    *controller.Controller
}

func startCluster(t testing.TB, nodes ...string) *cluster {
	return startClusterWith(t, 0, 0, nodes...)
}

func startClusterWith(t testing.TB, heartbeat, threshold int64, nodes ...string) *cluster {
	cfg := &config.Controller{HeartbeatInterval: heartbeat, NodeHeartbeatThreshold: threshold}
	for _, n := range nodes {
		cfg.Nodes = append(cfg.Nodes, config.Node{Name: n})
	}
	return startClusterConfig(t, cfg)
}

// startClusterConfig starts a controller with cfg on a private bus.
func startClusterConfig(t testing.TB, cfg *config.Controller) *cluster {
	bus := testbus.Start(t)
	api := dbusrt.NewServer()
	server, err := busconn.Dial(context.Background(), bus.Address, wireconn.Options{MethodCall: api.ServeWire})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	api.BindWire(server.Wire())
	ctrl, err := controller.New(cfg, api, server, newTestLog())
	if err != nil {
		t.Fatal(err)
	}
	if err := server.RequestName(context.Background(), bluechi.ControllerBusName); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "bluechi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctrl.Serve(ctx, l); close(done) }()
	go ctrl.Heartbeats(ctx)
	t.Cleanup(func() { ctrl.Close(); cancel(); <-done })
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &cluster{t: t, addr: "unix:path=" + sock, busAddr: bus.Address, client: client, ctrl: ctrl}
}

// peerAgent is a fake agent's connection to the controller: our own
// connection type with an object server, as the real agent has, so that
// the controller's calls are served in wire order.
type peerAgent struct {
	*wireconn.Conn
	srv *dbusrt.Server

	mu      sync.Mutex
	signals []func(*wire.Message) // guarded by mu
	dests   map[string]string     // DESTINATION of the last call per path; guarded by mu
}

// destination returns the DESTINATION of the last call on path.
func (p *peerAgent) destination(path string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dests[path]
}

// dialPeerAgent connects to addr and lets export put the fake agent's
// objects on the connection before it reads its first message.
func dialPeerAgent(t testing.TB, addr string, export func(*peerAgent) error) *peerAgent {
	t.Helper()
	p := &peerAgent{srv: dbusrt.NewServer(), dests: map[string]string{}}
	wc, err := wireconn.Dial(context.Background(), addr, wireconn.Options{
		Mechanism: transport.MechanismExternal,
		MethodCall: func(c *wireconn.Conn, m *wire.Message) {
			p.mu.Lock()
			p.dests[m.Path] = m.Destination
			p.mu.Unlock()
			p.srv.ServeWire(c, m)
		},
		Signal: func(_ *wireconn.Conn, m *wire.Message) {
			p.mu.Lock()
			fns := slices.Clone(p.signals)
			p.mu.Unlock()
			for _, fn := range fns {
				fn(m)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	p.Conn = wc
	p.srv.BindWire(wc)
	if export != nil {
		if err := export(p); err != nil {
			t.Fatal(err)
		}
	}
	wc.Start()
	return p
}

// onSignal calls fn for every signal the controller sends, on the reader.
func (p *peerAgent) onSignal(fn func(*wire.Message)) {
	p.mu.Lock()
	p.signals = append(p.signals, fn)
	p.mu.Unlock()
}

// register registers the connection as node name.
func (p *peerAgent) register(name string) error {
	return daemonapi.NewInternalControllerWireClient(p.Conn, bluechi.ControllerBusName, string(daemonapi.InternalControllerPath)).
		Register(context.Background(), name)
}

// emitRaw sends an agent signal of strings and ints, right or wrong (a
// string need not even be UTF-8).
func (p *peerAgent) emitRaw(member string, args ...any) error {
	var w wire.Writer
	var sig []byte
	for _, a := range args {
		switch v := a.(type) {
		case string:
			w.String(v)
			sig = append(sig, 's')
		case int:
			w.Int32(int32(v))
			sig = append(sig, 'i')
		default:
			return fmt.Errorf("emitRaw: argument of type %T", a)
		}
	}
	return p.Emit(string(daemonapi.InternalAgentPath), daemonapi.InternalAgentInterface, member, string(sig), w.Buf)
}

// agent connects a fake agent and registers it as name.
func (c *cluster) agent(name string) (*peerAgent, error) {
	f := &fakeAgent{}
	p := dialPeerAgent(c.t, c.addr, func(p *peerAgent) error {
		f.conn = p.Conn
		_, err := daemonapi.ExportInternalAgentOn(p.srv, daemonapi.InternalAgentPath, f, daemonapi.InternalAgentProperties{})
		return err
	})
	return p, p.register(name)
}

// dialAgent connects a fake agent, lets export put its objects on the
// connection, and registers it as name.
func (c *cluster) dialAgent(name string, export func(*peerAgent) error) *peerAgent {
	c.t.Helper()
	p := dialPeerAgent(c.t, c.addr, export)
	if err := p.register(name); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) node(name string) *bluechi.NodeClient {
	return bluechi.NewNodeClient(c.client, bluechi.NodeBusName, bluechi.NodePath(name))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegistrationAndStatus(t *testing.T) {
	c := startCluster(t, "n1", "node-2")
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	if s, _ := ctrl.GetStatus(ctx); s != "down" {
		t.Fatalf("status %q, want down", s)
	}
	if _, err := c.node("n1").ListUnits(ctx); dbusrt.ErrorName(err) != bluechi.ErrorNameOffline {
		t.Fatalf("offline node: %v, want Offline", err)
	}
	if _, err := c.agent("nope"); dbusrt.ErrorName(err) != dbusrt.ErrServiceUnknown {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := c.agent("n1"); err != nil {
		t.Fatal(err)
	}
	if s, _ := ctrl.GetStatus(ctx); s != "degraded" {
		t.Fatalf("status %q, want degraded", s)
	}
	if _, err := c.agent("n1"); dbusrt.ErrorName(err) != dbusrt.ErrAddressInUse {
		t.Fatalf("duplicate: %v, want AddressInUse", err)
	}
	conn2, err := c.agent("node-2")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := ctrl.GetStatus(ctx); s != "up" {
		t.Fatalf("status %q, want up", s)
	}
	nodes, err := ctrl.ListNodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].Name != "n1" || nodes[1].Status != "online" || nodes[1].Path != "/org/eclipse/bluechi/node/node_2d2" {
		t.Fatalf("ListNodes = %+v, %v", nodes, err)
	}
	units, err := ctrl.ListUnits(ctx)
	if err != nil || len(units) != 2 || units["n1"][0].Name != "a.service" {
		t.Fatalf("ListUnits = %+v, %v", units, err)
	}
	if p, err := ctrl.GetNode(ctx, "node-2"); err != nil || p != bluechi.NodePath("node-2") {
		t.Fatalf("GetNode = %v, %v", p, err)
	}
	if _, err := ctrl.GetNode(ctx, "x"); dbusrt.ErrorName(err) != dbusrt.ErrServiceUnknown {
		t.Fatalf("GetNode unknown: %v", err)
	}
	conn2.Close()
	waitFor(t, "degraded after disconnect", func() bool { s, _ := ctrl.GetStatus(ctx); return s == "degraded" })
	if st, _ := c.node("node-2").GetStatus(ctx); st != "offline" {
		t.Fatalf("node-2 status %q", st)
	}
}

func TestJobs(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	conn, err := c.agent("n1")
	if err != nil {
		t.Fatal(err)
	}
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	removed := make(chan *bluechi.ControllerJobRemovedSignal, 8)
	sub, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) { removed <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	n := c.node("n1")
	for _, tc := range []struct{ unit, result string }{{"ok.service", "done"}, {"fail.service", "failed"}} {
		path, err := n.StartUnit(ctx, tc.unit, "replace")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-removed:
			if r.Job != path || r.Result != tc.result || r.Unit != tc.unit || r.Node != "n1" {
				t.Fatalf("JobRemoved %+v for %s", r, path)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no JobRemoved")
		}
	}
	if _, err := n.StartUnit(ctx, "missing.service", "replace"); dbusrt.ErrorName(err) != "org.freedesktop.systemd1.NoSuchUnit" {
		t.Fatalf("systemd error not forwarded: %v", err)
	}
	// Bad names are refused here; job modes go to systemd unchanged (the
	// e2e lifecycle test sees real systemd refuse an unknown one).
	for _, bad := range [][2]string{{"bad name", "replace"}, {"", "replace"}} {
		if _, err := n.StartUnit(ctx, bad[0], bad[1]); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
			t.Fatalf("StartUnit(%q, %q): %v, want InvalidArgs", bad[0], bad[1], err)
		}
	}
	// Oversize arrays are refused before anything goes to the agent.
	many := func(n int) []bluechi.UnitProperty {
		return slices.Repeat([]bluechi.UnitProperty{{Name: "Description", Value: dbus.MakeVariant("x")}}, n)
	}
	files := slices.Repeat([]string{"a.service"}, 1025)
	for what, err := range map[string]error{
		"EnableUnitFiles":    func() error { _, _, err := n.EnableUnitFiles(ctx, files, false, false); return err }(),
		"DisableUnitFiles":   func() error { _, err := n.DisableUnitFiles(ctx, files, false); return err }(),
		"SetUnitProperties":  n.SetUnitProperties(ctx, "a.service", true, many(1025)),
		"StartTransientUnit": func() error { _, err := n.StartTransientUnit(ctx, "t.service", "replace", many(1025), nil); return err }(),
		"StartTransientUnit aux": func() error {
			_, err := n.StartTransientUnit(ctx, "t.service", "replace", nil, make([]bluechi.AuxUnit, 65))
			return err
		}(),
		"StartTransientUnit aux p": func() error {
			_, err := n.StartTransientUnit(ctx, "t.service", "replace", nil, []bluechi.AuxUnit{{Name: "u.service", Properties: many(1025)}})
			return err
		}(),
	} {
		if dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
			t.Errorf("%s with an oversize array: %v, want InvalidArgs", what, err)
		}
	}
	// A job that never finishes ends when its node disconnects.
	path, err := n.StopUnit(ctx, "slow.service", "replace")
	if err != nil {
		t.Fatal(err)
	}
	job := bluechi.NewJobClient(c.client, bluechi.JobBusName, path)
	if kind, err := job.GetJobType(ctx); err != nil || kind != "stop" {
		t.Fatalf("JobType %q, %v", kind, err)
	}
	conn.Close()
	select {
	case r := <-removed:
		if r.Job != path || r.Result != controller.ResultDisconnected {
			t.Fatalf("JobRemoved %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no JobRemoved after disconnect")
	}
	if _, err := job.GetJobType(ctx); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("job object after removal: %v", err)
	}
}

func TestManyAgentsConcurrently(t *testing.T) {
	var names []string
	for i := 0; i < 20; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	c := startCluster(t, names...)
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		wg.Go(func() {
			if _, err := c.agent(n); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	units, err := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath).ListUnits(context.Background())
	if err != nil || len(units) != len(names) {
		t.Fatalf("ListUnits over %d nodes: %d, %v", len(names), len(units), err)
	}
}

// An agent that closes its connection right after sending something and
// registers again at once (as it does on SwitchController) is accepted: the
// controller notices the old connection is closed even before it has read
// the end of it.
func TestReconnectAtOnce(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		conn, err := c.agent("n1")
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := daemonapi.EmitInternalAgentHeartbeatWire(conn.Conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentHeartbeatSignal{}); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	if _, err := c.agent("n1"); err != nil {
		t.Fatalf("last round: %v", err)
	}
	if st, _ := c.node("n1").GetStatus(ctx); st != "online" {
		t.Fatalf("n1 status %q, want online", st)
	}
}

// What an agent sent right before it closed still counts when it registers
// again at once: its JobDone ends the job with the agent's result, not as
// cancelled by the disconnect.
func TestReconnectKeepsLastMessages(t *testing.T) {
	c := startCluster(t, "n1")
	ctx := context.Background()
	ctrl := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
	results := make(chan string, 16)
	s, err := ctrl.OnJobRemoved(ctx, func(s *bluechi.ControllerJobRemovedSignal) { results <- s.Result })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := c.agent("n1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		job, err := c.node("n1").StopUnit(ctx, "a.service", "replace") // the fake agent never finishes it
		if err != nil {
			t.Fatal(err)
		}
		var id uint32
		if _, err := fmt.Sscanf(string(job), "/org/eclipse/bluechi/job/%d", &id); err != nil {
			t.Fatal(err)
		}
		if err := daemonapi.EmitInternalAgentJobDoneWire(conn.Conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentJobDoneSignal{ID: id, Result: "done"}); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if conn, err = c.agent("n1"); err != nil { // at once
			t.Fatalf("round %d: %v", i, err)
		}
		select {
		case r := <-results:
			if r != "done" {
				t.Fatalf("round %d: JobRemoved result %q, want done", i, r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no JobRemoved")
		}
	}
}

// TestRequiredSelinuxContext: a node with RequiredSelinuxContext refuses a
// peer whose security context is missing or of another SELinux type with
// AccessDenied (after the name check, before the one-connection check) and
// stays offline; other nodes are unaffected.
func TestRequiredSelinuxContext(t *testing.T) {
	// This process is no bluechi_agent_t: without SELinux its unix peers
	// have no label at all, with it another type.
	cfg := &config.Controller{Nodes: []config.Node{
		{Name: "locked", RequiredSelinuxContext: "bluechi_agent_t"},
		{Name: "open"},
	}}
	c := startClusterConfig(t, cfg)
	ctx := context.Background()
	if _, err := c.agent("locked"); dbusrt.ErrorName(err) != dbusrt.ErrAccessDenied {
		t.Fatalf("peer without the required type: %v, want AccessDenied", err)
	}
	if st, _ := c.node("locked").GetStatus(ctx); st != "offline" {
		t.Fatalf("locked node after a refused registration: %s", st)
	}
	if _, err := c.agent("open"); err != nil {
		t.Fatalf("node without a required context: %v", err)
	}
	if _, err := c.agent("nope"); dbusrt.ErrorName(err) != dbusrt.ErrServiceUnknown {
		t.Fatalf("unknown name: %v", err)
	}
}

// TestShutdownState: once the controller is shutting down, calls on a
// node fail with Failed "Request not allowed: node is in shutdown state"
// (api.md §4), whether the node was online or not.
func TestShutdownState(t *testing.T) {
	c := startCluster(t, "n1", "n2")
	if _, err := c.connect("n1", newUnitAgent(nil)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.ctrl.Close()
	for _, name := range []string{"n1", "n2"} {
		_, err := c.node(name).StartUnit(ctx, "a.service", "replace")
		if dbusrt.ErrorName(err) != dbusrt.ErrFailed || dbusrt.ErrorMessage(err) != "Request not allowed: node is in shutdown state" {
			t.Errorf("%s: StartUnit during shutdown: %v", name, err)
		}
	}
}
