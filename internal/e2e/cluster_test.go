// SPDX-License-Identifier: Apache-2.0

// Package e2e runs whole clusters of the real binaries: a controller on a
// private dbus-daemon and agents on real systemd user managers in sandboxed
// nodes, connected over TCP (and a unix socket).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	localcluster "github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

var binDir string

func TestMain(m *testing.M) {
	// Prebuilt binaries (e.g. another revision's, built without -race)
	// replace the race-enabled build of this tree.
	if binDir = localcluster.PrebuiltBinDir(); binDir != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "bluechi-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-race", "-o", dir+"/", "github.com/bluechi-go/bluechi/cmd/...")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(dir + "-plain") // plainController's
	os.Exit(code)
}

// cluster is one controller with sandboxed nodes.
type cluster struct {
	t       *testing.T
	dir     string
	bus     *testbus.Bus
	port    int
	client  *dbus.Conn
	ctrlCmd *exec.Cmd
	ctrlBin string // the controller binary; "" for the -race one in binDir
	nodes   map[string]*sandbox.Node
	agents  map[string]*exec.Cmd
	mu      sync.Mutex
}

func freePort(t *testing.T) int {
	p, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newCluster starts a controller that allows the given nodes and a
// sandboxed systemd for each; agents are started separately.
func newCluster(t *testing.T, names ...string) *cluster {
	return newClusterWith(t, "LogLevel=DEBUG\n", names...)
}

// newClusterWith is newCluster with extra controller configuration lines.
func newClusterWith(t *testing.T, extra string, names ...string) *cluster {
	return newClusterOpts(t, extra, nil, names...)
}

// newClusterOpts is newClusterWith whose node options opt may change.
func newClusterOpts(t *testing.T, extra string, opt func(*sandbox.Options), names ...string) *cluster {
	return newClusterBin(t, "", extra, opt, names...)
}

// newClusterBin is newClusterOpts running the controller binary bin
// ("" for the one built with -race by TestMain).
func newClusterBin(t *testing.T, bin, extra string, opt func(*sandbox.Options), names ...string) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), bus: testbus.Start(t), port: freePort(t), nodes: map[string]*sandbox.Node{}, agents: map[string]*exec.Cmd{}, ctrlBin: bin}
	var opts []sandbox.Options
	for _, n := range names {
		o := sandbox.Options{Name: n, Units: sandbox.DemoUnits()}
		if opt != nil {
			opt(&o)
		}
		opts = append(opts, o)
	}
	for i, n := range sandbox.StartAllT(t, opts...) {
		c.nodes[names[i]] = n
	}
	conf := fmt.Sprintf("[bluechi-controller]\nAllowedNodeNames=%s\nControllerPort=%d\nUseUDS=false\nLogTarget=stderr\n%s",
		strings.Join(names, ","), c.port, extra)
	if err := os.WriteFile(filepath.Join(c.dir, "controller.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.startController()
	client, _, err := dbusrt.ConnectBus(c.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c.client = client
	return c
}

func (c *cluster) logFile(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		f.Close()
		if c.t.Failed() {
			data, _ := os.ReadFile(f.Name())
			c.t.Logf("--- %s.log ---\n%s", name, tail(string(data), 4000))
		}
	})
	return f
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (c *cluster) startController(extra ...string) {
	bin := c.ctrlBin
	if bin == "" {
		bin = filepath.Join(binDir, "bluechi-controller")
	}
	cmd := exec.Command(bin, append([]string{"-u", "-c", filepath.Join(c.dir, "controller.conf")}, extra...)...)
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+c.bus.Address)
	log := c.logFile("controller")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.ctrlCmd = cmd
	c.t.Cleanup(func() { stop(cmd) })
	c.waitFor("controller on the bus", func() bool {
		conn, _, err := dbusrt.ConnectBus(c.bus.Address)
		if err != nil {
			return false
		}
		defer conn.Close()
		var has bool
		conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, bluechi.ControllerBusName).Store(&has)
		return has
	})
}

func stop(cmd *exec.Cmd) {
	if cmd.Process != nil && cmd.ProcessState == nil {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// waitExit waits up to 30 s for cmd, started by the test, to exit on its
// own and returns its exit code; what names it in the failure.
func waitExit(t *testing.T, cmd *exec.Cmd, what string) int {
	t.Helper()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
		return cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited // so that no other Wait races this one
		t.Fatalf("%s did not exit", what)
		return -1
	}
}

// startAgent runs bluechi-agent inside the node, connecting over TCP.
func (c *cluster) startAgent(name string, extra ...string) *exec.Cmd {
	return c.startAgentWith(name, "[bluechi-agent]\nLogTarget=stderr\nLogLevel=DEBUG\nHeartbeatInterval=500\n", extra...)
}

// startAgentWith runs the agent with the given configuration file content.
func (c *cluster) startAgentWith(name, conf string, extra ...string) *exec.Cmd {
	return c.startAgentConf(name, conf, append([]string{"-H", "127.0.0.1", "-p", fmt.Sprint(c.port)}, extra...)...)
}

// startAgentConf runs the agent with the configuration file content and
// no controller address on its command line but what extra says.
func (c *cluster) startAgentConf(name, conf string, extra ...string) *exec.Cmd {
	n := c.nodes[name]
	file := filepath.Join(c.dir, "agent-"+name+".conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	args := append([]string{filepath.Join(binDir, "bluechi-agent"), "-u", "-n", name, "-c", file}, extra...)
	cmd := n.Command(context.Background(), args...)
	log := c.logFile("agent-" + name)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.agents[name] = cmd
	c.mu.Unlock()
	c.t.Cleanup(func() { stop(cmd) })
	return cmd
}

// startOnline starts the agents of names and waits until all are online;
// it returns their processes by node name.
func (c *cluster) startOnline(names ...string) map[string]*exec.Cmd {
	agents := map[string]*exec.Cmd{}
	for _, n := range names {
		agents[n] = c.startAgent(n)
	}
	for _, n := range names {
		c.waitStatus(n, "online")
	}
	return agents
}

func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) controller() *bluechi.ControllerClient {
	return bluechi.NewControllerClient(c.client, bluechi.ControllerBusName, bluechi.ControllerPath)
}

func (c *cluster) node(name string) *bluechi.NodeClient {
	return bluechi.NewNodeClient(c.client, bluechi.NodeBusName, bluechi.NodePath(name))
}

func (c *cluster) waitStatus(name, status string) {
	c.t.Helper()
	c.waitFor(name+" "+status, func() bool {
		s, err := c.node(name).GetStatus(context.Background())
		return err == nil && s == status
	})
}

// jobWaiter collects JobRemoved signals.
type jobWaiter struct {
	t  *testing.T
	mu sync.Mutex
	by map[dbus.ObjectPath]string
	ch chan struct{}
}

func (c *cluster) jobs() *jobWaiter {
	w := &jobWaiter{t: c.t, by: map[dbus.ObjectPath]string{}, ch: make(chan struct{}, 1)}
	sub, err := c.controller().OnJobRemoved(context.Background(), func(s *bluechi.ControllerJobRemovedSignal) {
		w.mu.Lock()
		w.by[s.Job] = s.Result
		w.mu.Unlock()
		select {
		case w.ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { sub.Close() })
	return w
}

// result waits for the JobRemoved of job.
func (w *jobWaiter) result(job dbus.ObjectPath) string {
	w.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		r, ok := w.by[job]
		w.mu.Unlock()
		if ok {
			return r
		}
		select {
		case <-w.ch:
		case <-deadline:
			w.t.Fatalf("no JobRemoved for %s", job)
		}
	}
}
