// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// activatedCluster prepares a cluster of one node, n1, whose controller
// (configuration conf, "@PORT@" standing for the cluster's TCP port)
// systemd-socket-activate starts on the first
// connection to listen. With inNode the controller runs inside n1, whose
// private /run/bluechi can then hold its unix socket. systemd-socket-activate
// passes on only the variables named with -E, and execs the controller in
// its own process.
func activatedCluster(t *testing.T, listen, conf string, inNode bool) (*cluster, *exec.Cmd) {
	t.Helper()
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate (package systemd) is needed: %v", err)
	}
	c := &cluster{t: t, dir: t.TempDir(), bus: testbus.Start(t), port: freePort(t), nodes: map[string]*sandbox.Node{}, agents: map[string]*exec.Cmd{}}
	n := sandbox.StartT(t, sandbox.Options{Name: "n1", Units: sandbox.DemoUnits()})
	c.nodes["n1"] = n
	file := filepath.Join(c.dir, "controller.conf")
	conf = strings.ReplaceAll(conf, "@PORT@", fmt.Sprint(c.port))
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if listen == "" {
		listen = fmt.Sprintf("127.0.0.1:%d", c.port)
	}
	argv := []string{activate, "-l", listen, "-E", "DBUS_SESSION_BUS_ADDRESS=" + c.bus.Address,
		filepath.Join(binDir, "bluechi-controller"), "-u", "-c", file}
	cmd := exec.Command(argv[0], argv[1:]...)
	if inNode {
		cmd = n.Command(context.Background(), argv...)
	}
	log := c.logFile("controller")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(cmd) })
	client, _, err := dbusrt.ConnectBus(c.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c.client = client
	return c, cmd
}

// TestSocketActivation: a controller started by systemd-socket-activate,
// with its own TCP and unix listeners switched off, serves the socket it
// was passed: the agent's first connection starts it, and the agent
// registers over that socket.
func TestSocketActivation(t *testing.T) {
	c, _ := activatedCluster(t, "", "[bluechi-controller]\nAllowedNodeNames=n1\nUseTCP=false\nUseUDS=false\nLogTarget=stderr\nLogLevel=DEBUG\n", false)
	c.startAgent("n1") // its connection starts the controller
	c.waitStatus("n1", "online")
}

// TestSocketActivationUnixPath: systemd passes the controller the unix
// socket at the path the controller's own UDS listener would bind. The
// controller serves the passed socket, leaves the path alone (it says so
// at INFO, not WARN: that is the usual set-up), and does not remove the socket file when it
// stops: it belongs to the socket unit, which must go on working.
func TestSocketActivationUnixPath(t *testing.T) {
	c, cmd := activatedCluster(t, config.DefaultUnixSocketPath,
		"[bluechi-controller]\nAllowedNodeNames=n1\nUseTCP=false\nUseUDS=true\nLogTarget=stderr\nLogLevel=DEBUG\n", true)
	c.startAgent("n1", "-a", "unix:path="+config.DefaultUnixSocketPath) // its connection starts the controller
	c.waitStatus("n1", "online")
	if !logContains(c, "controller", "INFO\t: unix socket path served by the socket-activated listener") {
		t.Errorf("no note about the passed socket's path")
	}
	stop(cmd)
	if out, err := c.nodes["n1"].Exec(context.Background(), "test", "-S", config.DefaultUnixSocketPath); err != nil {
		t.Fatalf("the socket file is gone after the controller stopped: %v %s", err, out)
	}
}

// TestSocketActivationListenerErrors follows config.md §3.2. With the
// controller's own TCP port passed by systemd, the failed bind of its
// TCP listener is only a warning, and an agent registers through the
// passed socket. A TCP listener that fails on another port (here held by
// someone else) is fatal, socket activation or not.
func TestSocketActivationListenerErrors(t *testing.T) {
	const conf = "[bluechi-controller]\nAllowedNodeNames=n1\nUseTCP=true\nControllerPort=%s\nUseUDS=false\nLogTarget=stderr\nLogLevel=DEBUG\n"
	c, _ := activatedCluster(t, "", fmt.Sprintf(conf, "@PORT@"), false)
	c.startAgent("n1") // its connection starts the controller
	c.waitStatus("n1", "online")
	if !logContains(c, "controller", "TCP listener not opened: the socket-activated listener holds the port") {
		t.Errorf("no warning about the port held by the passed socket")
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	other := fmt.Sprint(taken.Addr().(*net.TCPAddr).Port)
	c2, cmd := activatedCluster(t, "", fmt.Sprintf(conf, other), false)
	// A connection starts the controller, once systemd-socket-activate listens.
	c2.waitFor("systemd-socket-activate to listen", func() bool {
		nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c2.port))
		if err == nil {
			nc.Close()
		}
		return err == nil
	})
	if code := waitExit(t, cmd, "the controller whose TCP port another process holds"); code != 1 {
		t.Errorf("controller whose TCP port another process holds: exit %d, want 1", code)
	}
	if !logContains(c2, "controller", "address already in use") {
		t.Errorf("the controller's log does not say why:\n%s", readLog(c2, "controller"))
	}
}
