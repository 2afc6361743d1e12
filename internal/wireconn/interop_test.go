// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// godbusEcho is an object godbus exports.
type godbusEcho struct{}

func (godbusEcho) Echo(s string) (string, *dbus.Error) { return "godbus:" + s, nil }

const godbusEchoXML = `<node><interface name="org.example.Test"><method name="Echo"><arg type="s" direction="in"/><arg type="s" direction="out"/></method></interface></node>`

// signalWaiter collects signals received by a Conn.
type signalWaiter struct {
	ch chan string
}

func newSignalWaiter() *signalWaiter { return &signalWaiter{ch: make(chan string, 16)} }

func (w *signalWaiter) handle(_ *Conn, m *wire.Message) {
	r := wire.NewReader(m.Body, m.BigEndian)
	s, _ := r.String()
	w.ch <- m.Member + ":" + s
}

func (w *signalWaiter) wait(t testing.TB, want string) {
	t.Helper()
	for {
		select {
		case got := <-w.ch:
			if got == want {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no signal %q", want)
		}
	}
}

func waitGodbusSignal(t testing.TB, ch <-chan *dbus.Signal, member, want string) {
	t.Helper()
	for {
		select {
		case s := <-ch:
			if strings.HasSuffix(s.Name, "."+member) && len(s.Body) == 1 && s.Body[0] == want {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("godbus got no signal %s(%q)", member, want)
		}
	}
}

// TestDBusDaemon: a Conn as an ordinary client of a real dbus-daemon
// (EXTERNAL): Hello, calls both ways with a godbus client on the same bus,
// signals both ways. The daemon checks every message we send.
func TestDBusDaemon(t *testing.T) {
	noLeaks(t)
	bus := testbus.Start(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	sigs := newSignalWaiter()
	ctx := context.Background()
	c, err := Dial(ctx, bus.Address, Options{Mechanism: transport.MechanismExternal, Signal: sigs.handle})
	if err != nil {
		t.Fatal(err)
	}
	c.Export(testPath, echoIface(&wg))
	c.Start()
	defer func() { c.Close(); <-c.Done() }()
	str := replyString(t)
	unique := str(c.Call(ctx, &Request{Destination: "org.freedesktop.DBus", Path: "/org/freedesktop/DBus", Interface: "org.freedesktop.DBus", Member: "Hello"}))
	if !strings.HasPrefix(unique, ":") {
		t.Fatalf("Hello: %q", unique)
	}
	if _, err := c.Call(ctx, &Request{Destination: "org.freedesktop.DBus", Path: "/org/freedesktop/DBus", Interface: "org.freedesktop.DBus", Member: "AddMatch",
		Signature: "s", Body: strBody("type='signal',interface='org.example.Test'")}); err != nil {
		t.Fatal(err)
	}

	g, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Export(godbusEcho{}, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := g.Object(unique, testPath).CallWithContext(ctx, testIface+".Echo", 0, "via the bus").Store(&got); err != nil || got != "via the bus" {
		t.Fatalf("godbus -> Conn: %q %v", got, err)
	}
	if got := str(c.Call(ctx, &Request{Destination: g.Names()[0], Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody("x")})); got != "godbus:x" {
		t.Fatalf("Conn -> godbus: %q", got)
	}
	if err := g.AddMatchSignal(dbus.WithMatchInterface(testIface)); err != nil {
		t.Fatal(err)
	}
	gch := make(chan *dbus.Signal, 16)
	g.Signal(gch)
	if err := c.Emit(testPath, testIface, "FromConn", "s", strBody("one")); err != nil {
		t.Fatal(err)
	}
	waitGodbusSignal(t, gch, "FromConn", "one")
	if err := g.Emit(testPath, testIface+".FromGodbus", "two"); err != nil {
		t.Fatal(err)
	}
	sigs.wait(t, "FromGodbus:two")
	// A call the daemon must route back as an error: unknown object.
	if err := g.Object(unique, "/nope").CallWithContext(ctx, testIface+".Echo", 0, "x").Err; err == nil ||
		err.(dbus.Error).Name != ErrUnknownObject {
		t.Fatalf("unknown object through the bus: %v", err)
	}
}

// TestGodbusClient: godbus, through its public API only, as the client
// of a Conn served over TCP (godbus's own ANONYMOUS and EXTERNAL
// handshakes, BEGIN after OK): calls both ways, error replies, signals
// both ways, Hello.
func TestGodbusClient(t *testing.T) {
	for name, auth := range map[string]dbus.Auth{
		"ANONYMOUS": dbus.AuthAnonymous(),
		"EXTERNAL":  dbus.AuthExternal(strconv.Itoa(os.Geteuid())),
	} {
		t.Run(name, func(t *testing.T) { runGodbusClient(t, auth) })
	}
}

func runGodbusClient(t *testing.T, auth dbus.Auth) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	l := listen(t)
	sigs := newSignalWaiter()
	srv := acceptOne(t, l, Options{BusShim: true, Sender: "org.eclipse.bluechi", Signal: sigs.handle},
		func(c *Conn) { c.Export(testPath, echoIface(&wg)) })
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	g, err := dbus.NewConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Auth([]dbus.Auth{auth}); err != nil {
		t.Fatal(err)
	}
	if err := g.Hello(); err != nil {
		t.Fatal("Hello:", err)
	}
	if err := g.Export(godbusEcho{}, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	gch := make(chan *dbus.Signal, 16)
	g.Signal(gch)
	c := <-srv
	if c == nil {
		t.Fatal("handshake failed")
	}
	defer func() { c.Close(); <-c.Done() }()
	checkGodbusPeer(t, g, c, gch, sigs)
}

// checkGodbusPeer runs calls and signals both ways between godbus g and
// Conn c on one peer link.
func checkGodbusPeer(t *testing.T, g *dbus.Conn, c *Conn, gch chan *dbus.Signal, sigs *signalWaiter) {
	t.Helper()
	ctx := context.Background()
	var got string
	if err := g.Object("org.eclipse.bluechi", testPath).CallWithContext(ctx, testIface+".Echo", 0, "to conn").Store(&got); err != nil || got != "to conn" {
		t.Fatalf("godbus -> Conn: %q %v", got, err)
	}
	err := g.Object("org.eclipse.bluechi", testPath).CallWithContext(ctx, testIface+".Fail", 0).Err
	if de, ok := err.(dbus.Error); !ok || de.Name != "org.example.Error.Nope" || len(de.Body) != 1 || de.Body[0] != "nope" {
		t.Fatalf("error reply to godbus: %#v (conn: %v)", err, c.Err())
	}
	var id string
	if err := g.Object("org.eclipse.bluechi", "/").CallWithContext(ctx, "org.freedesktop.DBus.Peer.GetMachineId", 0).Store(&id); err != nil || id != machineID() {
		t.Fatalf("GetMachineId: %q %v", id, err)
	}
	var xml string
	if err := g.Object("org.eclipse.bluechi", testPath).CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err != nil || !strings.Contains(xml, testIface) {
		t.Fatalf("Introspect: %v\n%s", err, xml)
	}
	str := replyString(t)
	for i := range 20 {
		want := strings.Repeat("y", i*100)
		if got := str(c.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody(want)})); got != "godbus:"+want {
			t.Fatalf("Conn -> godbus: %q", got)
		}
	}
	if _, err := c.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Missing"}); err == nil {
		t.Fatal("unknown method on godbus answered")
	}
	if err := c.Emit(testPath, testIface, "FromConn", "s", strBody("one")); err != nil {
		t.Fatal(err)
	}
	waitGodbusSignal(t, gch, "FromConn", "one")
	if err := g.Emit(testPath, testIface+".FromGodbus", "two"); err != nil {
		t.Fatal(err)
	}
	sigs.wait(t, "FromGodbus:two")
}

// TestBusctl: busctl, a generic sd-bus tool, talks to a served Conn as
// to a bus (Hello, introspection of the shim and of an object, a call),
// as TestBusctlOnAgentPort does against the controller.
func TestBusctl(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	l := listen(t)
	var conns sync.WaitGroup
	defer conns.Wait()
	conns.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c, err := Accept(context.Background(), nc, Options{BusShim: true, Sender: "org.eclipse.bluechi"})
			if err != nil {
				t.Error(err)
				continue
			}
			c.Export(testPath, echoIface(&wg))
			c.Start()
			conns.Go(func() { <-c.Done() })
		}
	})
	addr := "--address=tcp:host=127.0.0.1,port=" + strings.TrimPrefix(l.Addr().String(), "127.0.0.1:")
	busctl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "busctl", append([]string{addr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("busctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"); strings.TrimSpace(out) != `s ":1.0"` {
		t.Errorf("Hello: %q", out)
	}
	if out := busctl("introspect", "org.freedesktop.DBus", "/org/freedesktop/DBus"); !strings.Contains(out, ".Hello ") {
		t.Errorf("shim introspection:\n%s", out)
	}
	if out := busctl("introspect", "org.eclipse.bluechi", testPath); !strings.Contains(out, ".Echo ") {
		t.Errorf("object introspection:\n%s", out)
	}
	if out := busctl("call", "org.eclipse.bluechi", testPath, testIface, "Echo", "s", "hi"); strings.TrimSpace(out) != `s "hi"` {
		t.Errorf("Echo: %q", out)
	}
	l.Close()
}
