// SPDX-License-Identifier: Apache-2.0

// Package cluster starts a whole BlueChi cluster on one machine: a private
// dbus-daemon for the public API, N sandboxed nodes each with a real
// `systemd --user`, the controller inside the first node (so its unix socket
// lives in that node's private /run/bluechi), the first node's agent over
// that unix socket and every other agent over TCP. The local sandbox tool,
// the integration tests and the benchmarks all use it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busnames"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/testcerts"
)

// BinDirEnv names an environment variable the tests and benchmarks that run
// the daemons read: when set, they run the prebuilt binaries in that folder
// (make build's bin/, or another revision's, for before/after comparisons)
// instead of building this tree's.
const BinDirEnv = "BLUECHI_BIN_DIR"

// PrebuiltBinDir returns the folder BinDirEnv names, or "" when it is unset.
func PrebuiltBinDir() string { return os.Getenv(BinDirEnv) }

// Options describe a cluster.
type Options struct {
	// BinDir holds bluechi-controller and bluechi-agent.
	BinDir string
	// Dir receives configuration and logs; empty: a new temporary folder.
	Dir string
	// Names of the nodes; the first one hosts the controller.
	Names []string
	// Units are installed on every node (default: sandbox.DemoUnits()).
	Units map[string]string
	// ControllerConf and AgentConf are extra lines for the main sections.
	ControllerConf string
	AgentConf      string
	// Port is the controller's TCP port; 0 picks a free one.
	Port int
	// TLS runs the agent link over mutual TLS: Start makes a CA and
	// certificates for the controller and every node in Dir/tls and
	// writes UseTLS=yes into the configurations (see certs.go). The
	// manager node's agent stays on the plain unix socket.
	TLS bool
}

// Cluster is a running cluster.
type Cluster struct {
	Dir        string
	BusAddress string // the controller's bus (a private dbus-daemon)
	Port       int
	Nodes      []*sandbox.Node
	opts       Options
	bus        *testbus.Bus
	mu         sync.Mutex
	controller *exec.Cmd
	agents     map[string]*exec.Cmd
	ownDir     bool
	// Certs is the TLS material when Options.TLS is set.
	Certs *testcerts.Set
}

// DefaultNames returns node names node1..nodeN.
func DefaultNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%d", i+1)
	}
	return out
}

// Start starts the bus, the nodes, the controller and every agent, and waits
// until all nodes are online.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if len(opts.Names) == 0 {
		return nil, errors.New("cluster: no nodes")
	}
	if opts.Units == nil {
		opts.Units = sandbox.DemoUnits()
	}
	c := &Cluster{opts: opts, Dir: opts.Dir, agents: map[string]*exec.Cmd{}}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "bluechi-cluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.Port = opts.Port; c.Port == 0 {
		if c.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if opts.TLS {
		if c.Certs, err = MakeCerts(c.Dir, opts.Names); err != nil {
			return nil, err
		}
	}
	if c.bus, err = testbus.StartDaemon(c.Dir); err != nil {
		return nil, err
	}
	c.BusAddress = c.bus.Address
	type result struct {
		i   int
		n   *sandbox.Node
		err error
	}
	results := make(chan result, len(opts.Names))
	for i, name := range opts.Names {
		go func() {
			n, err := sandbox.Start(ctx, sandbox.Options{Name: name, Units: opts.Units})
			if err == nil {
				err = n.WaitReady(ctx)
			}
			results <- result{i, n, err}
		}()
	}
	c.Nodes = make([]*sandbox.Node, len(opts.Names))
	var errs []error
	for range opts.Names {
		r := <-results
		c.Nodes[r.i] = r.n
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", opts.Names[r.i], r.err))
		}
	}
	if err = errors.Join(errs...); err != nil {
		return nil, err
	}
	if err = c.StartController(ctx); err != nil {
		return nil, err
	}
	for _, name := range opts.Names {
		if _, err = c.StartAgent(name); err != nil {
			return nil, err
		}
	}
	return c, c.WaitOnline(ctx, opts.Names...)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Node returns the sandbox of a node by name.
func (c *Cluster) Node(name string) *sandbox.Node {
	for _, n := range c.Nodes {
		if n != nil && n.Name == name {
			return n
		}
	}
	return nil
}

// Manager is the node that hosts the controller.
func (c *Cluster) Manager() *sandbox.Node { return c.Nodes[0] }

// LogPath returns the log file of a process of the cluster.
func (c *Cluster) LogPath(name string) string { return filepath.Join(c.Dir, name+".log") }

func (c *Cluster) logFile(name string) (*os.File, error) {
	return os.OpenFile(c.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// StartController runs bluechi-controller inside the manager node, serving
// the API on the cluster bus, TCP on Port and the unix socket
// /run/bluechi/bluechi.sock of the manager node.
func (c *Cluster) StartController(ctx context.Context) error {
	conf := filepath.Join(c.Dir, "controller.conf")
	if err := os.WriteFile(conf, []byte(ControllerConfig(c.opts.Names, c.Port, c.Certs, c.opts.ControllerConf)), 0o644); err != nil {
		return err
	}
	log, err := c.logFile("controller")
	if err != nil {
		return err
	}
	cmd := c.Manager().Command(context.Background(), "env", "DBUS_SESSION_BUS_ADDRESS="+c.BusAddress,
		filepath.Join(c.opts.BinDir, "bluechi-controller"), "-u", "-c", conf)
	cmd.Env = unitEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start controller: %w", err)
	}
	go func() { cmd.Wait(); log.Close() }()
	c.mu.Lock()
	c.controller = cmd
	c.mu.Unlock()
	return c.waitName(ctx, bluechi.ControllerBusName)
}

// unitEnv is the environment the daemons run with: this process's, and
// what the installed units set (GOMAXPROCS=1) unless it is set here.
func unitEnv() []string {
	env := os.Environ()
	if _, ok := os.LookupEnv("GOMAXPROCS"); !ok {
		env = append(env, "GOMAXPROCS=1")
	}
	return env
}

// Controller returns the controller process.
func (c *Cluster) Controller() *exec.Cmd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.controller
}

// StopController ends the controller (SIGTERM, then SIGKILL after 10 s).
func (c *Cluster) StopController() {
	c.mu.Lock()
	cmd := c.controller
	c.controller = nil
	c.mu.Unlock()
	stopProcess(cmd)
}

// StartAgent runs bluechi-agent inside its node: the manager node's agent
// connects over the unix socket, the others over TCP. extra are more flags.
func (c *Cluster) StartAgent(name string, extra ...string) (*exec.Cmd, error) {
	n := c.Node(name)
	if n == nil {
		return nil, fmt.Errorf("no node %q", name)
	}
	conf := filepath.Join(c.Dir, "agent-"+name+".conf")
	certs := c.Certs
	if n == c.Manager() {
		certs = nil // the unix socket stays plain
	}
	if err := os.WriteFile(conf, []byte(AgentConfig(name, certs, c.opts.AgentConf)), 0o644); err != nil {
		return nil, err
	}
	args := []string{filepath.Join(c.opts.BinDir, "bluechi-agent"), "-u", "-n", name, "-c", conf}
	if n == c.Manager() {
		args = append(args, "-a", "unix:path=/run/bluechi/bluechi.sock")
	} else {
		args = append(args, "-H", "127.0.0.1", "-p", fmt.Sprint(c.Port))
	}
	log, err := c.logFile("agent-" + name)
	if err != nil {
		return nil, err
	}
	cmd := n.Command(context.Background(), append(args, extra...)...)
	cmd.Env = unitEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start agent %s: %w", name, err)
	}
	go func() { cmd.Wait(); log.Close() }()
	c.mu.Lock()
	old := c.agents[name]
	c.agents[name] = cmd
	c.mu.Unlock()
	if old != nil {
		stopProcess(old)
	}
	return cmd, nil
}

// Agent returns the agent process of a node.
func (c *Cluster) Agent(name string) *exec.Cmd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.agents[name]
}

// Connect opens a connection to the cluster bus.
func (c *Cluster) Connect() (*dbus.Conn, error) {
	conn, _, err := dbusrt.ConnectBus(c.BusAddress)
	return conn, err
}

// waitName waits until name has an owner on the cluster bus.
func (c *Cluster) waitName(ctx context.Context, name string) error {
	conn, err := c.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	return poll(ctx, 20*time.Second, "controller on the bus", func() bool {
		var has bool
		conn.BusObject().CallWithContext(ctx, busnames.DBusInterface+"."+busnames.DBusMethodNameHasOwner, 0, name).Store(&has)
		return has
	})
}

// WaitOnline waits until the named nodes are online.
func (c *Cluster) WaitOnline(ctx context.Context, names ...string) error {
	conn, err := c.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, name := range names {
		node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(name))
		if err := poll(ctx, 30*time.Second, name+" online", func() bool {
			s, err := node.GetStatus(ctx)
			return err == nil && s == "online"
		}); err != nil {
			return err
		}
	}
	return nil
}

func poll(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
}

// Stop ends every process and node the cluster started and removes its
// folder if it made it.
func (c *Cluster) Stop() {
	c.mu.Lock()
	agents := c.agents
	c.agents = map[string]*exec.Cmd{}
	c.mu.Unlock()
	for _, a := range agents {
		stopProcess(a)
	}
	c.StopController()
	for _, n := range c.Nodes {
		if n != nil {
			n.Stop()
		}
	}
	if c.bus != nil {
		c.bus.Stop()
	}
	if c.ownDir {
		os.RemoveAll(c.Dir)
	}
}

// Tail returns the last bytes of a log of the cluster.
func (c *Cluster) Tail(name string, max int) string {
	f, err := os.Open(c.LogPath(name))
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}
