// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// Upstream tier-0 behaviours (tests-inventory) that had no test here.

// propLog records the values one property takes in PropertiesChanged.
type propLog struct {
	mu   sync.Mutex
	vals []string
}

func (l *propLog) add(pc *dbusrt.PropertiesChanged, name string) {
	if v, ok := pc.Changed[name]; ok {
		l.mu.Lock()
		l.vals = append(l.vals, fmt.Sprint(v.Value()))
		l.mu.Unlock()
	}
}

func (l *propLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.vals)
}

// agentAPI connects to the public org.eclipse.bluechi.Agent of a node.
func (c *cluster) agentAPI(node string) *bluechi.AgentClient {
	c.t.Helper()
	conn, err := c.nodes[node].Connect()
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath)
}

// TestControllerAddressAndStatus: an agent configured only with
// ControllerAddress= in its file connects; one with an unusable address
// keeps retrying while the controller reports down; the controller's
// Status signals go exactly degraded, down, degraded, up as agents come
// and go; the agent's LogTarget is the configured one, its
// DisconnectTimestamp is 0 while online and set, with a Status
// PropertiesChanged to offline, once the controller is gone.
func TestControllerAddressAndStatus(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	ctx := context.Background()
	var status propLog
	sub, err := c.controller().OnPropertiesChanged(ctx, func(pc *bluechi.ControllerPropertiesChanged) { status.add(&pc.PropertiesChanged, "Status") })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	good := fmt.Sprintf("[bluechi-agent]\nControllerAddress=tcp:host=127.0.0.1,port=%d\nLogTarget=stderr-full\nLogLevel=DEBUG\nHeartbeatInterval=300\n", c.port)
	bad := "[bluechi-agent]\nControllerAddress=tcp:host=127.0.0.1,port=1\nLogTarget=stderr\nHeartbeatInterval=300\n"

	bad2 := c.startAgentConf("n2", bad)
	c.waitFor("n2 retrying", func() bool { return strings.Count(readLog(c, "agent-n2"), "cannot connect to controller") >= 3 })
	if bad2.ProcessState != nil {
		t.Fatalf("agent with an unusable address exited: %v", bad2.ProcessState)
	}
	if s, _ := c.controller().GetStatus(ctx); s != "down" {
		t.Fatalf("controller with no node online: %s, want down", s)
	}
	if s, _ := c.node("n2").GetStatus(ctx); s != "offline" {
		t.Fatalf("n2: %s", s)
	}

	c.startAgentConf("n1", good)
	c.waitStatus("n1", "online")
	c.waitFor("degraded", func() bool { s, _ := c.controller().GetStatus(ctx); return s == "degraded" })
	pub := c.agentAPI("n1")
	if v, err := pub.GetLogTarget(ctx); err != nil || v != "stderr-full" {
		t.Errorf("agent LogTarget %q %v, want stderr-full", v, err)
	}
	if v, err := pub.GetDisconnectTimestamp(ctx); err != nil || v != 0 {
		t.Errorf("DisconnectTimestamp while online: %d %v, want 0", v, err)
	}
	stop(c.agents["n1"])
	c.waitFor("down", func() bool { s, _ := c.controller().GetStatus(ctx); return s == "down" })
	c.startAgentConf("n1", good)
	c.waitStatus("n1", "online")
	stop(bad2)
	c.startAgentConf("n2", good)
	c.waitStatus("n2", "online")
	c.waitFor("up", func() bool { s, _ := c.controller().GetStatus(ctx); return s == "up" })
	c.waitFor("four Status signals", func() bool { return len(status.get()) >= 4 })
	if got, want := status.get(), []string{"degraded", "down", "degraded", "up"}; !slices.Equal(got, want) {
		t.Errorf("controller Status signals %q, want %q", got, want)
	}

	// The controller goes: the agent reports it.
	pub = c.agentAPI("n1")
	var agentStatus propLog
	asub, err := pub.OnPropertiesChanged(ctx, func(pc *bluechi.AgentPropertiesChanged) { agentStatus.add(&pc.PropertiesChanged, "Status") })
	if err != nil {
		t.Fatal(err)
	}
	defer asub.Close()
	if v, err := pub.GetDisconnectTimestamp(ctx); err != nil || v != 0 {
		t.Errorf("DisconnectTimestamp while online again: %d %v, want 0", v, err)
	}
	before := uint64(time.Now().UnixMicro())
	stop(c.ctrlCmd)
	c.waitFor("the agent's Status signal offline", func() bool { return slices.Contains(agentStatus.get(), "offline") })
	// The controller, stopping with nodes online, said down exactly once
	// (upstream's monitor-system-status-ctrl-stop). It has exited, so all
	// it said is on the way; a marker signal sent now reaches the same
	// connection behind it, and its subscriptions are served in arrival
	// order: once the marker is in, so is every Status signal.
	marked := make(chan struct{})
	msub, err := dbusrt.Subscribe(ctx, c.client, dbusrt.Match{Interface: "org.example.E2E", Member: "Marker"}, func(*dbus.Signal) { close(marked) })
	if err != nil {
		t.Fatal(err)
	}
	defer msub.Close()
	sender := c.busClient()
	if err := sender.Emit("/org/example/e2e", "org.example.E2E.Marker"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-marked:
	case <-time.After(10 * time.Second):
		t.Fatal("the marker signal did not arrive")
	}
	if got, want := status.get(), []string{"degraded", "down", "degraded", "up", "down"}; !slices.Equal(got, want) {
		t.Errorf("controller Status signals %q, want %q", got, want)
	}
	if v, err := pub.GetDisconnectTimestamp(ctx); err != nil || v < before || v > uint64(time.Now().UnixMicro()) {
		t.Errorf("DisconnectTimestamp after the controller stopped: %d %v, want between %d and now", v, err, before)
	}
}

// startControllerIn runs the cluster's controller inside a node (whose
// private /run/bluechi then holds its unix socket) with conf.
func (c *cluster) startControllerIn(node, conf string) {
	c.t.Helper()
	file := filepath.Join(c.dir, "controller-in-node.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	cmd := c.nodes[node].Command(context.Background(), "env", "DBUS_SESSION_BUS_ADDRESS="+c.bus.Address,
		filepath.Join(binDir, "bluechi-controller"), "-u", "-c", file)
	started := func() int { return strings.Count(readLog(c, "controller"), "controller started") }
	n := started()
	log := c.logFile("controller")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.ctrlCmd = cmd
	c.t.Cleanup(func() { stop(cmd) })
	c.waitFor("the controller in "+node, func() bool { return started() > n })
}

// TestUnixSocketOnly: with UseTCP=false nothing listens on the configured
// port and a TCP agent stays offline, while a local agent registers over
// the unix socket (/run/bluechi/bluechi.sock).
func TestUnixSocketOnly(t *testing.T) {
	c := newCluster(t, "local", "remote")
	stop(c.ctrlCmd) // replaced by one in the local node
	c.startControllerIn("local", fmt.Sprintf("[bluechi-controller]\nAllowedNodeNames=local,remote\nControllerPort=%d\nUseTCP=false\nUseUDS=true\nLogTarget=stderr\nLogLevel=DEBUG\n", c.port))
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.port), 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("something listens on port %d with UseTCP=false", c.port)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial the TCP port: %v, want connection refused", err)
	}
	c.startAgent("remote")
	c.waitFor("the TCP agent to retry", func() bool { return strings.Count(readLog(c, "agent-remote"), "connection refused") >= 2 })
	if s, _ := c.node("remote").GetStatus(context.Background()); s != "offline" {
		t.Fatalf("TCP agent with UseTCP=false: %s", s)
	}
	t0 := time.Now()
	c.startAgent("local", "-a", "unix:path="+config.DefaultUnixSocketPath)
	c.waitStatus("local", "online")
	t.Logf("local agent online over the unix socket after %v", time.Since(t0).Round(time.Millisecond))
}

// TestSocketActivationWithTCP: systemd-socket-activate holds the unix
// socket and starts the controller, which also runs its own TCP listener:
// a local agent over the activated socket and a remote one over TCP are
// online at once.
func TestSocketActivationWithTCP(t *testing.T) {
	c, _ := activatedCluster(t, config.DefaultUnixSocketPath,
		"[bluechi-controller]\nAllowedNodeNames=n1,n2\nUseTCP=true\nControllerPort=@PORT@\nUseUDS=false\nLogTarget=stderr\nLogLevel=DEBUG\n", true)
	c.nodes["n2"] = sandbox.StartT(t, sandbox.Options{Name: "n2", Units: sandbox.DemoUnits()})
	c.startAgent("n1", "-a", "unix:path="+config.DefaultUnixSocketPath) // its connection starts the controller
	c.waitStatus("n1", "online")
	c.startAgent("n2")
	c.waitStatus("n2", "online")
	if s, _ := c.node("n1").GetStatus(context.Background()); s != "online" {
		t.Fatalf("n1 after n2 came: %s", s)
	}
	c.waitFor("controller up", func() bool { s, _ := c.controller().GetStatus(context.Background()); return s == "up" })
}

// TestNodeBehaviours shares one cluster, whose controller sends no
// heartbeats, between upstream behaviours on a node: heartbeats disabled
// on both sides, a monitor across RestartUnit, StartTransientUnit end to
// end, freeze and thaw with the cgroup v2 freezer, and what bluechictl
// start prints when the controller shuts down under it (last: it stops
// the controller).
func TestNodeBehaviours(t *testing.T) {
	c := newClusterOpts(t, "LogLevel=DEBUG\nHeartbeatInterval=0\n", func(o *sandbox.Options) { o.UnifiedCgroups = true }, "n1", "n2")
	ctx := context.Background()
	c.startAgentWith("n1", "[bluechi-agent]\nLogTarget=stderr\nLogLevel=DEBUG\nHeartbeatInterval=0\n")
	c.startAgentWith("n2", "[bluechi-agent]\nLogTarget=stderr\nHeartbeatInterval=100\n")
	c.waitStatus("n1", "online")
	c.waitStatus("n2", "online")
	jobs := c.jobs()

	t.Run("heartbeats-disabled", func(t *testing.T) {
		var n1Status propLog
		sub, err := c.node("n1").OnPropertiesChanged(ctx, func(pc *bluechi.NodePropertiesChanged) { n1Status.add(&pc.PropertiesChanged, "Status") })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		seen, _ := c.node("n1").GetLastSeenTimestamp(ctx)
		pub := c.agentAPI("n1")
		agentSeen, _ := pub.GetLastSeenTimestamp(ctx)
		// n2 beats every 100 ms: 20 of its beats are the clock.
		last, beats := uint64(0), 0
		c.waitFor("20 heartbeats of n2", func() bool {
			if v, _ := c.node("n2").GetLastSeenTimestamp(ctx); v != last {
				last, beats = v, beats+1
			}
			return beats > 20
		})
		if s, _ := c.node("n1").GetStatus(ctx); s != "online" || len(n1Status.get()) != 0 {
			t.Errorf("n1 without heartbeats: %s, Status signals %q", s, n1Status.get())
		}
		if v, _ := c.node("n1").GetLastSeenTimestamp(ctx); v != seen {
			t.Errorf("n1's LastSeenTimestamp moved without heartbeats: %d -> %d", seen, v)
		}
		if v, _ := pub.GetLastSeenTimestamp(ctx); v != agentSeen {
			t.Errorf("the agent's LastSeenTimestamp moved though the controller sends no heartbeats: %d -> %d", agentSeen, v)
		}
	})

	t.Run("monitor-restart", func(t *testing.T) {
		conn := c.busClient()
		mon := newMonitor(t, conn)
		ev := watchMonitor(t, conn, mon.Path())
		if _, err := mon.Subscribe(ctx, "n1", sandbox.SimpleServiceName); err != nil {
			t.Fatal(err)
		}
		if r := c.runJob(jobs, "n1", "start", sandbox.SimpleServiceName); r != "done" {
			t.Fatalf("start: %s", r)
		}
		i := ev.wait(0, "state n1 "+sandbox.SimpleServiceName+" active running real")
		if r := c.runJob(jobs, "n1", "restart", sandbox.SimpleServiceName); r != "done" {
			t.Fatalf("restart: %s", r)
		}
		ev.wait(i, "state n1 "+sandbox.SimpleServiceName+" inactive", "state n1 "+sandbox.SimpleServiceName+" active running real")
	})

	t.Run("start-transient-unit", func(t *testing.T) {
		const unit = "bc-e2e-transient.service"
		conn := c.busClient()
		mon := newMonitor(t, conn)
		ev := watchMonitor(t, conn, mon.Path())
		if _, err := mon.Subscribe(ctx, "n1", unit); err != nil {
			t.Fatal(err)
		}
		marker := "/tmp/bc-e2e-transient-" + fmt.Sprint(time.Now().UnixNano())
		defer os.Remove(marker)
		job, err := c.node("n1").StartTransientUnit(ctx, unit, "replace", []bluechi.UnitProperty{
			{Name: "Description", Value: dbusVariant("e2e transient unit")},
			{Name: "ExecStart", Value: dbusMakeExec("/bin/touch", marker)},
		}, nil)
		// Not a BlueChi job (api.md): systemd's own job path comes back.
		if err != nil || !strings.HasPrefix(string(job), "/org/freedesktop/systemd1/job/") {
			t.Fatalf("StartTransientUnit: %q %v", job, err)
		}
		ev.wait(0, "new n1 "+unit, "removed n1 "+unit)
		if out, err := c.nodes["n1"].Exec(ctx, "test", "-e", marker); err != nil {
			t.Fatalf("the transient unit did not run: %v %s", err, out)
		}
	})

	t.Run("freeze-thaw", func(t *testing.T) {
		if r := c.runJob(jobs, "n2", "start", sandbox.SimpleServiceName); r != "done" {
			t.Fatalf("start: %s", r)
		}
		events := func() string {
			v, err := c.node("n2").GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Service", "ControlGroup")
			if err != nil {
				t.Fatal(err)
			}
			out, _ := c.nodes["n2"].Exec(ctx, "cat", "/sys/fs/cgroup"+fmt.Sprint(v.Value())+"/cgroup.events")
			return string(out)
		}
		freezer := func() string {
			v, _ := c.node("n2").GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Unit", "FreezerState")
			return fmt.Sprint(v.Value())
		}
		if err := c.node("n2").FreezeUnit(ctx, sandbox.SimpleServiceName); err != nil {
			t.Fatalf("this host cannot freeze units: FreezeUnit: %v (systemd needs the cgroup v2 freezer; the nodes run with sandbox.Options.UnifiedCgroups)", err)
		}
		c.waitFor("frozen", func() bool { return freezer() == "frozen" && strings.Contains(events(), "frozen 1") })
		if err := c.node("n2").ThawUnit(ctx, sandbox.SimpleServiceName); err != nil {
			t.Fatalf("ThawUnit: %v", err)
		}
		c.waitFor("thawed", func() bool { return freezer() == "running" && strings.Contains(events(), "frozen 0") })
		// The same through bluechictl (upstream's
		// bluechi-freeze-and-thaw-service), with its messages.
		e := c.in(t)
		if r := e.ctlOK("freeze", "n2", sandbox.SimpleServiceName); r.stdout != "Unit "+sandbox.SimpleServiceName+" freeze operation done\n" {
			t.Errorf("bluechictl freeze: %v", r)
		}
		c.waitFor("frozen by bluechictl", func() bool { return freezer() == "frozen" && strings.Contains(events(), "frozen 1") })
		if r := e.ctlOK("thaw", "n2", sandbox.SimpleServiceName); r.stdout != "Unit "+sandbox.SimpleServiceName+" thaw operation done\n" {
			t.Errorf("bluechictl thaw: %v", r)
		}
		c.waitFor("thawed by bluechictl", func() bool { return freezer() == "running" && strings.Contains(events(), "frozen 0") })
	})

	t.Run("ctl-start-during-shutdown", func(t *testing.T) {
		const unit = "bc-e2e-very-slow.service"
		if err := c.nodes["n1"].WriteUnit(unit, "[Service]\nExecStartPre=/bin/sleep 60\nExecStart=/bin/sleep infinity\n"); err != nil {
			t.Fatal(err)
		}
		if err := c.node("n1").Reload(ctx); err != nil {
			t.Fatal(err)
		}
		p := ctlStartProc(t, ctlToolCmd(c.bus.Address, "bluechictl", "-u", "start", "n1", unit))
		c.waitFor("the unit activating", func() bool { return c.unitState("n1", unit) == "activating" })
		stop(c.ctrlCmd)
		code := p.wait(30 * time.Second)
		if out, want := p.output(), "Unit "+unit+" StartUnit operation result: cancelled due to shutdown\n"; code != 0 || out != want || p.stderr() != "" {
			t.Errorf("bluechictl start when the controller shuts down: exit %d, stdout %q, stderr %q; want exit 0, %q", code, out, p.stderr(), want)
		}
		if s := c.localState("n1", unit); s != "activating" {
			t.Errorf("unit after the controller stopped: %s, want still activating", s)
		}
	})
}

func dbusVariant(v any) dbus.Variant { return dbus.MakeVariant(v) }

// localhostAddress is the controller address an agent resolves
// ControllerHost=localhost to: the resolver's first address (127.0.0.1 or
// ::1, by the host's configuration; the nodes share it).
func localhostAddress(t *testing.T, port int) string {
	t.Helper()
	ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("tcp:host=%s,port=%d", ips[0].Unmap(), port)
}

// TestAgentResolvesControllerHost follows upstream's
// bluechi-agent-resolve-fqdn and config.md §4 step 3: a host name in
// ControllerHost is resolved, the agent's ControllerAddress shows the
// address it resolved to, and a host name that does not resolve is fatal
// at start, with the name in the log. Invalid log settings on the way
// are ignored.
func TestAgentResolvesControllerHost(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	ctx := context.Background()
	c.startAgentConf("n1", fmt.Sprintf("[bluechi-agent]\nControllerHost=localhost\nControllerPort=%d\nLogTarget=stderr\nHeartbeatInterval=300\n", c.port))
	c.waitStatus("n1", "online")
	want := localhostAddress(t, c.port)
	if v, err := c.agentAPI("n1").GetControllerAddress(ctx); err != nil || v != want {
		t.Errorf("ControllerAddress %q, %v; want %q", v, err, want)
	}

	// Invalid log settings are ignored, not fatal (upstream's
	// bluechi-agent-loglevel, -logtarget and -logisquiet).
	stop(c.agents["n1"])
	c.waitStatus("n1", "offline")
	c.startAgentConf("n1", fmt.Sprintf("[bluechi-agent]\nControllerHost=localhost\nControllerPort=%d\nLogLevel=5\nLogTarget=1\nLogIsQuiet=garbage\n", c.port))
	c.waitStatus("n1", "online")

	bad := c.startAgentConf("n2", "[bluechi-agent]\nControllerHost=no-such-host.invalid\nLogTarget=stderr\n")
	if code := waitExit(t, bad, "the agent with an unresolvable ControllerHost"); code != 1 {
		t.Errorf("agent with an unresolvable ControllerHost: exit %d, want 1", code)
	}
	if !logContains(c, "agent-n2", "no-such-host.invalid") {
		t.Errorf("the agent's log does not name the host:\n%s", readLog(c, "agent-n2"))
	}
}
