package cluster_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// upstreamAgentHello is the handshake upstream's C agent sends in one write.
const upstreamAgentHello = "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"

// TestHostilePeers throws garbage handshakes, garbage messages and a call
// flood at the controller: it keeps serving and the real nodes stay online.
func TestHostilePeers(t *testing.T) {
	c := start(t, cluster.Options{Names: cluster.DefaultNames(2)})
	addr := fmt.Sprintf("127.0.0.1:%d", c.Port)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	for name, payload := range map[string][]byte{
		"garbage handshake":           junk,
		"garbage after auth":          append([]byte(upstreamAgentHello), junk...),
		"huge declared message":       append([]byte(upstreamAgentHello), []byte("l\x01\x00\x01\xff\xff\xff\x7f\x01\x00\x00\x00\xff\xff\xff\x7f")...),
		"endless handshake":           []byte("\x00AUTH " + string(make([]byte, 100000))),
		"half message then hang-up":   append([]byte(upstreamAgentHello), 'l', 1, 0, 1),
		"wrong endianness and flags":  append([]byte(upstreamAgentHello), []byte("X\x09\x09\x09")...),
		"register flood of one agent": nil,
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if payload != nil {
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			nc.Write(payload)
			nc.Close()
			continue
		}
		nc.Close()
	}
	// A flood of calls over one authenticated connection.
	flood(t, addr, 20000)

	conn, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	nodes, err := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath).ListNodes(ctx)
	if err != nil {
		t.Fatalf("controller after hostile peers: %v", err)
	}
	for _, n := range nodes {
		if n.Status != "online" {
			t.Errorf("node %s %s after hostile peers", n.Name, n.Status)
		}
	}
	if c.Controller().ProcessState != nil {
		t.Fatal("controller exited")
	}
}

// flood sends n Register calls for an unknown node without reading replies.
func flood(t *testing.T, addr string, n int) {
	srv := dbusrt.NewServer()
	conn, err := dialAgent(addr, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	obj := conn.Object(bluechi.ControllerBusName, bluechi.InternalControllerPath)
	for i := 0; i < n; i++ {
		obj.Go(bluechi.InternalControllerInterface+".Register", 0, nil, "flood")
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
	conn, err := transport.Dial(context.Background(), "tcp:host="+host+",port="+port, srv.ConnOptions()...)
	if err != nil {
		return nil, err
	}
	srv.Bind(conn)
	return conn, nil
}
