// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// upstreamAgentHello is the handshake upstream's C agent sends in one write.
const upstreamAgentHello = "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"

// TestHostilePeers throws garbage handshakes, garbage messages and a call
// flood at the controller, and garbage from a registered node: each bad
// connection is closed by the controller with a log line, every call of
// the flood is answered, the controller keeps serving and the real nodes
// stay (or come back) online.
func TestHostilePeers(t *testing.T) {
	// No heartbeats: a fake node that sends none is dropped for its
	// garbage, not for its silence.
	c := start(t, cluster.Options{Names: cluster.DefaultNames(2), ControllerConf: "HeartbeatInterval=0\n"})
	addr := fmt.Sprintf("127.0.0.1:%d", c.Port)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	for name, payload := range map[string][]byte{
		"garbage handshake":          junk,
		"garbage after auth":         append([]byte(upstreamAgentHello), junk...),
		"huge declared message":      append([]byte(upstreamAgentHello), []byte("l\x01\x00\x01\xff\xff\xff\x7f\x01\x00\x00\x00\xff\xff\xff\x7f")...),
		"endless handshake":          []byte("\x00AUTH " + string(make([]byte, 100000))),
		"wrong endianness and flags": append([]byte(upstreamAgentHello), []byte("X\x09\x09\x09\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00")...),
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		nc.Write(payload)
		// The controller hangs up: reading on sees the end (or a reset, as
		// it left bytes unread), not the deadline.
		if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: connection not closed by the controller: %v", name, err)
		}
		nc.Close()
	}
	// Half a message, then the peer hangs up.
	if nc, err := net.Dial("tcp", addr); err == nil {
		nc.Write(append([]byte(upstreamAgentHello), 'l', 1, 0, 1))
		nc.Close()
	}
	waitLog(t, c, "agent connection failed", 2)                    // the two handshakes
	waitLog(t, c, "agent connection closed.*malformed message", 3) // the three messages

	// A flood of calls over one authenticated connection.
	flood(t, c, addr, 20000)

	// A registered node that turns to garbage is dropped, logged, and its
	// real agent comes back.
	ctx := context.Background()
	conn, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.Agent("node2").Process.Kill() // the cluster waits for it
	waitNode(t, conn, "node2", "offline")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var w wire.Writer
	w.String("node2")
	register := wire.AppendCall(nil, 1, bluechi.ControllerBusName, string(daemonapi.InternalControllerPath),
		daemonapi.InternalControllerInterface, "Register", "s", w.Buf)
	if _, err := nc.Write(append([]byte(upstreamAgentHello), register...)); err != nil {
		t.Fatal(err)
	}
	waitNode(t, conn, "node2", "online")
	malformed := logCount(c, "agent connection closed.*malformed message")
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	nc.Write(junk)
	if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("registered node's garbage: connection not closed by the controller: %v", err)
	}
	waitLog(t, c, "agent connection closed.*malformed message", malformed+1)
	waitNode(t, conn, "node2", "offline")
	if _, err := c.StartAgent("node2"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitOnline(ctx, "node1", "node2"); err != nil {
		t.Fatalf("nodes after hostile peers: %v", err)
	}
	if _, err := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath).ListNodes(ctx); err != nil {
		t.Fatalf("controller after hostile peers: %v", err)
	}
	if c.Controller().ProcessState != nil {
		t.Fatal("controller exited")
	}
}

// waitLog waits until at least n lines of the controller's log match
// pattern.
func waitLog(t *testing.T, c *cluster.Cluster, pattern string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for logCount(c, pattern) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d controller log lines match %q:\n%s", n, pattern, c.Tail("controller", 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logCount counts the lines of the controller's log that match pattern.
func logCount(c *cluster.Cluster, pattern string) int {
	data, _ := os.ReadFile(c.LogPath("controller"))
	return len(regexp.MustCompile("(?m)"+pattern).FindAll(data, -1))
}

// flood sends n Register calls for an unknown node without waiting for
// replies: each is refused, or the controller cuts the connection (a peer
// that has not registered within RegistrationTimeout, or whose calls
// overflow the queue, is closed), and none goes unanswered.
func flood(t *testing.T, c *cluster.Cluster, addr string, n int) {
	srv := dbusrt.NewServer()
	conn, err := dialAgent(addr, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	obj := conn.Object(bluechi.ControllerBusName, daemonapi.InternalControllerPath)
	done := make(chan *dbus.Call, n)
	for i := 0; i < n; i++ {
		obj.Go(daemonapi.InternalControllerInterface+".Register", 0, done, "flood")
	}
	names := map[string]int{}
	timeout := time.After(60 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case call := <-done:
			names[dbusrt.ErrorName(call.Err)]++
		case <-timeout:
			t.Fatalf("flood: %d of %d calls unanswered (%v)", n-i, n, names)
		}
	}
	cut := names[""] // the call failed because the connection was closed
	if names[dbusrt.ErrServiceUnknown]+names[dbusrt.ErrLimitsExceeded]+cut != n || names[dbusrt.ErrServiceUnknown] == 0 {
		t.Fatalf("flood answers: %v", names)
	}
	if cut > 0 {
		waitLog(t, c, "agent connection closed.*(did not register in time|calls waiting to be served)", 1)
	}
}

// TestSwitchController moves an agent to another controller through its
// public SwitchController method.
func TestSwitchController(t *testing.T) {
	c := start(t, cluster.Options{Names: cluster.DefaultNames(2)})
	// A second controller for the same nodes on its own bus and port.
	bus2 := testbus.Start(t)
	port2 := freePortT(t)
	conf := filepath.Join(t.TempDir(), "controller2.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[bluechi-controller]\nAllowedNodeNames=node1,node2\nControllerPort=%d\nUseUDS=false\nLogTarget=stderr\n", port2)), 0o644)
	ctrl2 := exec.Command(filepath.Join(binaries(t), "bluechi-controller"), "-u", "-c", conf)
	ctrl2.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+bus2.Address)
	if err := ctrl2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ctrl2.Process.Kill(); ctrl2.Wait() }()

	nodeBus, err := c.Node("node2").Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nodeBus.Close()
	ctx := context.Background()
	agent := bluechi.NewAgentClient(nodeBus, bluechi.AgentBusName, bluechi.AgentPath)
	addr2 := fmt.Sprintf("tcp:host=127.0.0.1,port=%d", port2)
	if err := agent.SwitchController(ctx, addr2); err != nil {
		t.Fatal(err)
	}
	if err := agent.SwitchController(ctx, addr2); dbusrt.ErrorName(err) != dbusrt.ErrFailed {
		t.Fatalf("switch to the same address: %v", err)
	}
	if a, _ := agent.GetControllerAddress(ctx); a != addr2 {
		t.Fatalf("ControllerAddress %q", a)
	}
	conn2, _, err := dbusrt.ConnectBus(bus2.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	waitNode(t, conn2, "node2", "online")
	conn1, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	waitNode(t, conn1, "node2", "offline")
}

func waitNode(t *testing.T, conn *dbus.Conn, name, status string) {
	t.Helper()
	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(name))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, err := node.GetStatus(context.Background()); err == nil && s == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become %s", name, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePortT(t *testing.T) int {
	p, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dialAgent(addr string, srv *dbusrt.Server) (*dbus.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	conn, err := dbusrt.DialPeer("tcp:host="+host+",port="+port, srv.ConnOptions()...)
	if err != nil {
		return nil, err
	}
	srv.Bind(conn)
	return conn, nil
}
