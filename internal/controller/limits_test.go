// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// rawPeer connects to the controller's socket and authenticates (SASL
// EXTERNAL), sending nothing more.
func (c *cluster) rawPeer(t *testing.T) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", strings.TrimPrefix(c.addr, "unix:path="))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := transport.ClientHandshake(bufio.NewReader(nc), nc, transport.MechanismExternal, strconv.Itoa(os.Geteuid())); err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Time{})
	return nc
}

// waitClosed waits at most limit for the controller to close nc (reading
// and dropping whatever it sends) and returns how long that took.
func waitClosed(t *testing.T, nc net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	nc.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 4096)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return time.Since(start)
		}
		t.Fatalf("connection not closed within %v: %v", limit, err)
	}
}

func registerCall(name string) []byte {
	var w wire.Writer
	w.String(name)
	return wire.AppendCall(nil, 1, bluechi.ControllerBusName, string(daemonapi.InternalControllerPath),
		daemonapi.InternalControllerInterface, daemonapi.InternalControllerMethodRegister, "s", w.Buf)
}

// TestUnregisteredLimits: before Register, a message that stalls half-way
// for longer than the stall timeout, one announced bigger than 64 kB and a
// connection that does not register within RegistrationTimeout are all
// closed; a registered agent is not affected and the node can register
// afterwards.
func TestUnregisteredLimits(t *testing.T) {
	old := controller.UnregisteredLimits
	controller.UnregisteredLimits.StallTimeout = 300 * time.Millisecond
	t.Cleanup(func() { controller.UnregisteredLimits = old })
	c := startClusterConfig(t, &config.Controller{RegistrationTimeout: 1500, Nodes: []config.Node{{Name: "n1"}, {Name: "n2"}}})
	if _, err := c.agent("n2"); err != nil {
		t.Fatal(err)
	}

	t.Run("stalled message", func(t *testing.T) {
		nc := c.rawPeer(t)
		msg := registerCall("n1")
		if _, err := nc.Write(msg[:len(msg)-3]); err != nil {
			t.Fatal(err)
		}
		d := waitClosed(t, nc, 5*time.Second)
		if d < 250*time.Millisecond || d > 1400*time.Millisecond {
			t.Errorf("stalled connection closed after %v, want the stall timeout (300 ms)", d)
		}
	})
	t.Run("oversized message", func(t *testing.T) {
		nc := c.rawPeer(t)
		hdr := []byte{'l', wire.TypeMethodCall, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}
		hdr[4], hdr[5], hdr[6] = 0, 0, 0x20 // body of 2 MiB
		if _, err := nc.Write(hdr); err != nil {
			t.Fatal(err)
		}
		if d := waitClosed(t, nc, 5*time.Second); d > 250*time.Millisecond {
			t.Errorf("connection announcing 2 MiB closed after %v, want at once", d)
		}
	})
	t.Run("registration timeout", func(t *testing.T) {
		nc := c.rawPeer(t)
		d := waitClosed(t, nc, 5*time.Second)
		if d < 1200*time.Millisecond || d > 3*time.Second {
			t.Errorf("silent connection closed after %v, want RegistrationTimeout (1.5 s)", d)
		}
	})
	t.Run("registered agents unaffected", func(t *testing.T) {
		if _, err := c.agent("n1"); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"n1", "n2"} {
			if s, err := c.node(n).GetStatus(context.Background()); err != nil || s != "online" {
				t.Fatalf("node %s: %q, %v", n, s, err)
			}
		}
	})
}

// TestRegisteredPeerHasNoStallTimeout: once registered, a connection may
// take its time with a message (the limits are lifted by MarkRegistered).
func TestRegisteredPeerHasNoStallTimeout(t *testing.T) {
	old := controller.UnregisteredLimits
	controller.UnregisteredLimits.StallTimeout = 200 * time.Millisecond
	t.Cleanup(func() { controller.UnregisteredLimits = old })
	c := startClusterConfig(t, &config.Controller{RegistrationTimeout: 800, Nodes: []config.Node{{Name: "n1"}}})
	nc := c.rawPeer(t)
	if _, err := nc.Write(registerCall("n1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 online", func() bool {
		s, _ := c.node("n1").GetStatus(context.Background())
		return s == "online"
	})
	hb := wire.AppendSignal(nil, 2, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentInterface, daemonapi.InternalAgentSignalHeartbeat, "", "", nil)
	if _, err := nc.Write(hb[:5]); err != nil {
		t.Fatal(err)
	}
	// Past both the stall timeout and RegistrationTimeout: still open.
	nc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := nc.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("registered connection closed: %v", err)
		}
	}
	if _, err := nc.Write(hb[5:]); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.node("n1").GetStatus(context.Background()); s != "online" {
		t.Fatalf("n1 %s after a slow message", s)
	}
}

// TestBusClientFlood: bus clients that pipeline thousands of calls that
// hold the call queue (CreateMonitor asks the bus to watch its owner) get
// answers or LimitsExceeded (from the controller, or from the bus, which
// bounds the calls one client has pending); the controller's bus
// connection, shared by every client, stays up. 20 clients are needed to
// get past the bus's own limit per client.
func TestBusClientFlood(t *testing.T) {
	c := startCluster(t, "n1")
	var calls []*dbus.Call
	for range 20 {
		conn, _, err := dbusrt.ConnectBus(c.busAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		obj := conn.Object(bluechi.ControllerBusName, bluechi.ControllerPath)
		for range 250 {
			calls = append(calls, obj.Go(bluechi.ControllerInterface+"."+bluechi.ControllerMethodCreateMonitor, 0, make(chan *dbus.Call, 1)))
		}
	}
	refused := 0
	for _, call := range calls {
		<-call.Done
		switch name := dbusrt.ErrorName(call.Err); {
		case call.Err == nil:
		case name == dbusrt.ErrLimitsExceeded:
			refused++
		default:
			t.Fatalf("a flooded call: %v", call.Err)
		}
	}
	t.Logf("%d of %d calls refused", refused, len(calls))
	if _, err := bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath).GetNode(context.Background(), "n1"); err != nil {
		t.Fatalf("the controller after the flood: %v", err)
	}
}
