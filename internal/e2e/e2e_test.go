// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

func activeState(t *testing.T, c *cluster, node, unit string) string {
	t.Helper()
	v, err := c.node(node).GetUnitProperty(context.Background(), unit, "org.freedesktop.systemd1.Unit", "ActiveState")
	if err != nil {
		t.Fatalf("ActiveState of %s on %s: %v", unit, node, err)
	}
	s, _ := v.Value().(string)
	return s
}

// TestLifecycle drives units on two real systemd nodes through the
// controller: start/stop/restart with their JobRemoved results, a failing
// unit, an unknown unit, a unit that exists on one node only, and several
// other Node methods.
func TestLifecycle(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	c.startAgent("node-a")
	c.startAgent("node-b")
	c.waitStatus("node-a", "online")
	c.waitStatus("node-b", "online")
	ctx := context.Background()
	// The node reports online a moment before the controller recounts.
	c.waitFor("controller up", func() bool { s, _ := c.controller().GetStatus(ctx); return s == "up" })
	// Both daemons log their final configuration at DEBUG, flags applied.
	for log, line := range map[string]string{"controller": "configuration: AllowedNodeNames=node-a,node-b\n",
		"agent-node-a": "configuration: NodeName=node-a\n"} {
		if !logContains(c, log, line) {
			t.Errorf("%s log: no configuration line %q", log, line)
		}
	}
	jobs := c.jobs()
	a, b := c.node("node-a"), c.node("node-b")

	job, err := a.StartUnit(ctx, sandbox.SimpleServiceName, "replace")
	if err != nil {
		t.Fatal(err)
	}
	if r := jobs.result(job); r != "done" {
		t.Fatalf("start: %s", r)
	}
	if s := activeState(t, c, "node-a", sandbox.SimpleServiceName); s != "active" {
		t.Fatalf("after start: %s", s)
	}
	if s := activeState(t, c, "node-b", sandbox.SimpleServiceName); s != "inactive" {
		t.Fatalf("other node: %s", s)
	}
	job, err = a.RestartUnit(ctx, sandbox.SimpleServiceName, "replace")
	if err != nil || jobs.result(job) != "done" {
		t.Fatalf("restart: %v", err)
	}
	job, err = a.StopUnit(ctx, sandbox.SimpleServiceName, "replace")
	if err != nil || jobs.result(job) != "done" {
		t.Fatalf("stop: %v", err)
	}
	job, err = b.StartUnit(ctx, sandbox.FailingServiceName, "replace")
	if err != nil {
		t.Fatal(err)
	}
	if r := jobs.result(job); r != "failed" {
		t.Fatalf("failing unit: %s", r)
	}
	if _, err := a.StartUnit(ctx, "nope.service", "replace"); dbusrt.ErrorName(err) != "org.freedesktop.systemd1.NoSuchUnit" {
		t.Fatalf("unknown unit: %v", err)
	}
	// The job mode goes to systemd unchanged (api.md §2): systemd, not the
	// controller, refuses one it does not know, and its message says so.
	if _, err := a.StartUnit(ctx, sandbox.SimpleServiceName, "no-such-mode"); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs || !strings.Contains(err.Error(), "no-such-mode") {
		t.Fatalf("unknown job mode: %v", err)
	}
	// A unit on one node only.
	if err := c.nodes["node-b"].WriteUnit("only-b.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartUnit(ctx, "only-b.service", "replace"); dbusrt.ErrorName(err) != "org.freedesktop.systemd1.NoSuchUnit" {
		t.Fatalf("only-b on node-a: %v", err)
	}
	job, err = b.StartUnit(ctx, "only-b.service", "replace")
	if err != nil || jobs.result(job) != "done" {
		t.Fatalf("only-b on node-b: %v", err)
	}

	units, err := c.controller().ListUnits(ctx)
	if err != nil || len(units["node-a"]) == 0 || len(units["node-b"]) == 0 {
		t.Fatalf("ListUnits: %d/%d, %v", len(units["node-a"]), len(units["node-b"]), err)
	}
	files, err := a.ListUnitFiles(ctx)
	found := false
	for _, f := range files {
		found = found || strings.HasSuffix(f.Path, sandbox.SimpleServiceName)
	}
	if err != nil || !found {
		t.Fatalf("ListUnitFiles: %v (found %v)", err, found)
	}
	if st, err := a.GetUnitFileState(ctx, sandbox.SimpleServiceName); err != nil || st != "disabled" {
		t.Fatalf("GetUnitFileState: %q %v", st, err)
	}
	// An empty list is systemd's to answer: no changes (api.md §4).
	if info, changes, err := a.EnableUnitFiles(ctx, []string{}, false, false); err != nil || info || len(changes) != 0 {
		t.Fatalf("EnableUnitFiles of no files: %v %v %v", info, changes, err)
	}
	if changes, err := a.DisableUnitFiles(ctx, []string{}, false); err != nil || len(changes) != 0 {
		t.Fatalf("DisableUnitFiles of no files: %v %v", changes, err)
	}
	if _, changes, err := a.EnableUnitFiles(ctx, []string{sandbox.SimpleServiceName}, false, false); err != nil || len(changes) == 0 {
		t.Fatalf("EnableUnitFiles: %v %v", changes, err)
	}
	if changes, err := a.DisableUnitFiles(ctx, []string{sandbox.SimpleServiceName}, false); err != nil || len(changes) == 0 {
		t.Fatalf("DisableUnitFiles: %v %v", changes, err)
	}
	props, err := a.GetUnitProperties(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Service")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := props["ExecStart"]; !ok || v.Signature().String() != "a(sasbttttuii)" {
		t.Fatalf("ExecStart through the controller: %v", props["ExecStart"])
	}
	// upstream's properties-get: values as systemd has them.
	if props["Type"].Value() != "simple" || props["RemainAfterExit"].Value() != false {
		t.Fatalf("Type %v, RemainAfterExit %v; want simple, false", props["Type"], props["RemainAfterExit"])
	}
	if err := b.ResetFailedUnit(ctx, sandbox.FailingServiceName); err != nil {
		t.Fatal(err)
	}
	if err := b.ResetFailed(ctx); err != nil {
		t.Fatal(err)
	}
	if tgt, err := a.GetDefaultTarget(ctx); err != nil || tgt == "" {
		t.Fatalf("GetDefaultTarget: %q %v", tgt, err)
	}
	if err := a.SetLogLevel(ctx, "INFO"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetLogLevel(ctx, "LOUD"); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("bad level: %v", err)
	}
	if err := a.KillUnit(ctx, sandbox.SimpleServiceName, "all", 99); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("bad signal: %v", err)
	}
	// Freeze/Thaw need the cgroup freezer, which this kind of machine may
	// lack: either it works or systemd's own error comes back unchanged.
	for _, op := range []func(context.Context, string) error{a.FreezeUnit, a.ThawUnit} {
		if err := op(ctx, sandbox.SimpleServiceName); err != nil && !strings.HasPrefix(dbusrt.ErrorName(err), "org.freedesktop.") {
			t.Fatalf("freeze/thaw: %v", err)
		}
	}
	job, err = a.StartUnit(ctx, sandbox.SimpleServiceName, "replace")
	if err != nil || jobs.result(job) != "done" {
		t.Fatalf("start for kill: %v", err)
	}
	if err := a.SetUnitProperties(ctx, sandbox.SimpleServiceName, true, []bluechi.UnitProperty{{Name: "CPUWeight", Value: dbus.MakeVariant(uint64(50))}}); err != nil {
		t.Fatalf("SetUnitProperties: %v", err)
	}
	if v, err := a.GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Service", "CPUWeight"); err != nil || v.Value() != uint64(50) {
		t.Fatalf("CPUWeight after SetUnitProperties: %v %v", v, err)
	}
	// upstream's property-set: a persistent change (runtime false).
	if err := a.SetUnitProperties(ctx, sandbox.SimpleServiceName, false, []bluechi.UnitProperty{{Name: "Description", Value: dbus.MakeVariant("I changed")}}); err != nil {
		t.Fatalf("SetUnitProperties(runtime=false): %v", err)
	}
	if v, err := a.GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Unit", "Description"); err != nil || v.Value() != "I changed" {
		t.Fatalf("Description after SetUnitProperties: %v %v", v, err)
	}
	// Arguments over 1 MiB are refused before they are decoded or passed
	// on (a 20 MB Description made systemd abort); the node stays online.
	huge := []bluechi.UnitProperty{{Name: "Description", Value: dbus.MakeVariant(strings.Repeat("x", 2<<20))}}
	if err := a.SetUnitProperties(ctx, sandbox.SimpleServiceName, true, huge); dbusrt.ErrorName(err) != dbusrt.ErrLimitsExceeded {
		t.Fatalf("SetUnitProperties of 2 MiB: %v, want LimitsExceeded", err)
	}
	if v, err := a.GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Unit", "Description"); err != nil || v.Value() != "I changed" {
		t.Fatalf("Description after a refused SetUnitProperties: %v %v", v, err)
	}
	// who is systemd's to check; its error comes back unchanged.
	if err := a.KillUnit(ctx, sandbox.SimpleServiceName, "nobody", int32(syscall.SIGTERM)); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs {
		t.Fatalf("bad who: %v", err)
	}
	if err := a.KillUnit(ctx, sandbox.SimpleServiceName, "main", int32(syscall.SIGKILL)); err != nil {
		t.Fatalf("KillUnit: %v", err)
	}
	c.waitFor("killed unit inactive or failed", func() bool {
		s := activeState(t, c, "node-a", sandbox.SimpleServiceName)
		return s == "failed" || s == "inactive"
	})
	transient, err := a.StartTransientUnit(ctx, "bc-transient.service", "replace",
		[]bluechi.UnitProperty{{Name: "ExecStart", Value: dbusMakeExec("/bin/sleep", "30")}}, nil)
	if err != nil || !strings.HasPrefix(string(transient), "/org/freedesktop/systemd1/job/") {
		t.Fatalf("StartTransientUnit: %q %v", transient, err)
	}
}

// TestNodeComesAndGoes kills an agent, restarts it, and restarts the
// controller: the node goes offline and comes back each time.
func TestNodeComesAndGoes(t *testing.T) {
	c := newCluster(t, "n1", "n2")
	agent := c.startAgent("n1")
	c.startAgent("n2")
	c.waitStatus("n1", "online")
	c.waitStatus("n2", "online")
	ctx := context.Background()

	// The node's Status change is signalled (upstream's
	// monitor-node-disconnect), not only readable.
	var nodeStatus propLog
	sub, err := c.node("n1").OnPropertiesChanged(ctx, func(pc *bluechi.NodePropertiesChanged) { nodeStatus.add(&pc.PropertiesChanged, "Status") })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	agent.Process.Signal(syscall.SIGKILL)
	agent.Wait()
	c.waitFor("the node's Status signal offline", func() bool { return slices.Equal(nodeStatus.get(), []string{"offline"}) })
	c.waitStatus("n1", "offline")
	c.waitFor("controller degraded after agent kill", func() bool { s, _ := c.controller().GetStatus(ctx); return s == "degraded" })
	if _, err := c.node("n1").ListUnits(ctx); dbusrt.ErrorName(err) != bluechi.ErrorNameOffline {
		t.Fatalf("offline node: %v", err)
	}
	// Back with a configuration and -H/-p that point elsewhere: -a wins
	// over both (and -i sets the heartbeat interval the file leaves out).
	c.startAgentWith("n1", "[bluechi-agent]\nControllerHost=192.0.2.1\nControllerPort=1\nLogTarget=stderr\nLogLevel=DEBUG\n",
		"-H", "192.0.2.1", "-p", "1", "-a", fmt.Sprintf("tcp:host=127.0.0.1,port=%d", c.port), "-i", "700")
	c.waitStatus("n1", "online")
	if !logContains(c, "agent-n1", "configuration: HeartbeatInterval=700\n") {
		t.Errorf("-i 700 not in the agent's configuration")
	}
	// -n, -H and -p win over a file that names another node, host and
	// port (upstream's bluechi-agent-cmd-options).
	stop(c.agents["n1"])
	c.waitStatus("n1", "offline")
	c.startAgentConf("n1", "[bluechi-agent]\nNodeName=wrong\nControllerHost=192.0.2.1\nControllerPort=1\nLogTarget=stderr\nLogLevel=DEBUG\n",
		"-H", "127.0.0.1", "-p", fmt.Sprint(c.port))
	c.waitStatus("n1", "online")

	// Duplicate and unknown node names are refused (from a spare machine:
	// each agent needs its own bus for org.eclipse.bluechi.Agent).
	spare := sandbox.StartT(t, sandbox.Options{Name: "spare"})
	for _, name := range []string{"n2", "stranger"} {
		cmd := spare.Command(ctx, binDir+"/bluechi-agent", "-u", "-n", name, "-H", "127.0.0.1", "-p", itoa(c.port))
		log := c.logFile("agent-spare-" + name)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"n2": "node already connected", "stranger": "unexpected node name"}[name]
		c.waitFor("refusal of "+name, func() bool { return logContains(c, "controller", want) })
		stop(cmd)
	}
	// A refused name leaves no trace in the node list (upstream's
	// bluechi-anonymous-node).
	nodes, err := c.controller().ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"n1", "n2"}) {
		t.Errorf("ListNodes after refusals: %q, want n1, n2", names)
	}
	if s, _ := c.node("n2").GetStatus(ctx); s != "online" {
		t.Fatalf("n2 after duplicate attempt: %s", s)
	}

	// The controller restarts; every agent comes back by itself. Its
	// file now names another port, and -p wins over it (upstream's
	// bluechi-change-port-with-p-cmd-option).
	stop(c.ctrlCmd)
	file := filepath.Join(c.dir, "controller.conf")
	conf, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wrong, port := freePort(t), fmt.Sprintf("ControllerPort=%d", c.port)
	if !strings.Contains(string(conf), port) {
		t.Fatalf("controller.conf has no %s:\n%s", port, conf)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(conf), port, fmt.Sprintf("ControllerPort=%d", wrong), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.startController("-p", fmt.Sprint(c.port))
	c.waitStatus("n1", "online")
	c.waitStatus("n2", "online")
	if nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", wrong)); err == nil {
		nc.Close()
		t.Errorf("the controller listens on the file's port %d as well", wrong)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

// dbusMakeExec builds an ExecStart value (signature a(sasb)) for a transient unit.
func dbusMakeExec(argv ...string) dbus.Variant {
	type execCommand struct {
		Path          string
		Argv          []string
		IgnoreFailure bool
	}
	return dbus.MakeVariant([]execCommand{{Path: argv[0], Argv: argv}})
}

func logContains(c *cluster, name, text string) bool {
	data, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	return strings.Contains(string(data), text)
}

// TestSilentPeers freezes an agent and then the controller (SIGSTOP keeps
// their sockets open, as a pulled cable does): with the default heartbeat
// settings each side notices within about 3 s.
func TestSilentPeers(t *testing.T) {
	c := newClusterWith(t, "", "s1")
	agent := c.startAgentWith("s1", "[bluechi-agent]\nLogTarget=stderr\nLogLevel=DEBUG\n")
	c.waitStatus("s1", "online")

	agent.Process.Signal(syscall.SIGSTOP)
	start := time.Now()
	c.waitStatus("s1", "offline")
	t.Logf("frozen agent detected after %v", time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("frozen agent detected after %v, want about 3 s", d)
	}
	agent.Process.Signal(syscall.SIGCONT)
	c.waitStatus("s1", "online")

	// The agent notices a frozen controller through its public Status.
	nodeBus, err := c.nodes["s1"].Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nodeBus.Close()
	pub := bluechi.NewAgentClient(nodeBus, bluechi.AgentBusName, bluechi.AgentPath)
	c.ctrlCmd.Process.Signal(syscall.SIGSTOP)
	defer c.ctrlCmd.Process.Signal(syscall.SIGCONT)
	start = time.Now()
	c.waitFor("agent offline", func() bool {
		s, err := pub.GetStatus(context.Background())
		return err == nil && s == "offline"
	})
	t.Logf("frozen controller detected after %v", time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("frozen controller detected after %v, want about 3 s", d)
	}
	c.ctrlCmd.Process.Signal(syscall.SIGCONT)
	c.waitStatus("s1", "online")
}

// TestHeartbeatThresholds follows upstream's bluechi-heartbeat-node-
// disconnected and -agent-disconnected: an agent that sends no heartbeats
// is dropped by the controller, and a controller that sends none is
// dropped by an agent with a ControllerHeartbeatThreshold, each no sooner
// than the threshold after the last sign of life it recorded.
func TestHeartbeatThresholds(t *testing.T) {
	// Long enough that reading the last-seen time right after
	// registration always comes before the drop, on a loaded machine too.
	const threshold = 3000 * time.Millisecond
	ctx := context.Background()
	t.Run("node", func(t *testing.T) {
		c := newClusterWith(t, "HeartbeatInterval=200\nNodeHeartbeatThreshold=3000\n", "h1")
		var status propLog
		sub, err := c.node("h1").OnPropertiesChanged(ctx, func(pc *bluechi.NodePropertiesChanged) { status.add(&pc.PropertiesChanged, "Status") })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		c.startAgentWith("h1", "[bluechi-agent]\nLogTarget=stderr\nHeartbeatInterval=0\n")
		c.waitStatus("h1", "online")
		// Without heartbeats it stays the registration's time (read now:
		// the agent registers again after the drop).
		last, err := c.node("h1").GetLastSeenTimestamp(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.waitFor("h1 dropped", func() bool { return slices.Contains(status.get(), "offline") })
		dropped := time.Now()
		if silent := dropped.Sub(time.UnixMicro(int64(last))); silent < threshold {
			t.Errorf("node dropped %v after it was last seen, before the threshold %v", silent, threshold)
		}
	})
	t.Run("controller", func(t *testing.T) {
		c := newClusterWith(t, "HeartbeatInterval=0\n", "h1")
		c.startAgentWith("h1", "[bluechi-agent]\nLogTarget=stderr\nHeartbeatInterval=200\nControllerHeartbeatThreshold=3000\n")
		c.waitStatus("h1", "online")
		last, err := c.agentAPI("h1").GetLastSeenTimestamp(ctx) // the registration's: the controller sends no heartbeats
		if err != nil {
			t.Fatal(err)
		}
		c.waitFor("the agent to drop a silent controller", func() bool { return logContains(c, "agent-h1", "controller heartbeat timeout") })
		dropped := time.Now()
		if silent := dropped.Sub(time.UnixMicro(int64(last))); silent < threshold {
			t.Errorf("controller dropped %v after it was last seen, before the threshold %v", silent, threshold)
		}
	})
}

// TestAgentExitsOnSystemdReexec: a user manager's daemon-reexec closes the
// agent's private connection to it; the agent says so and exits with
// status 1 (its unit's Restart=on-failure starts it again), and the node
// goes offline instead of silently losing systemd's events.
func TestAgentExitsOnSystemdReexec(t *testing.T) {
	c := newCluster(t, "n1")
	agent := c.startAgent("n1")
	c.waitStatus("n1", "online")
	if out, err := c.nodes["n1"].Exec(context.Background(), "systemctl", "--user", "daemon-reexec"); err != nil {
		t.Fatalf("daemon-reexec: %v: %s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("agent ended with %v, want exit status 1", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent still running after systemd's daemon-reexec")
	}
	if !logContains(c, "agent-n1", "lost the connection to systemd") {
		t.Error("agent did not log why it exited")
	}
	c.waitStatus("n1", "offline")
}

// TestBusctlOnAgentPort: generic D-Bus tools talk to the controller's
// agent port as to a bus: busctl sends Hello (answered ":1.0"),
// introspects the shim's /org/freedesktop/DBus and the registration
// object.
func TestBusctlOnAgentPort(t *testing.T) {
	c := newCluster(t, "n1")
	address := fmt.Sprintf("--address=tcp:host=127.0.0.1,port=%d", c.port)
	busctl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "busctl", append([]string{address}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("busctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"); strings.TrimSpace(out) != `s ":1.0"` {
		t.Errorf("Hello: %q", out)
	}
	if out := busctl("introspect", "org.freedesktop.DBus", "/org/freedesktop/DBus"); !strings.Contains(out, ".Hello ") {
		t.Errorf("introspection of the bus shim lacks Hello:\n%s", out)
	}
	if out := busctl("introspect", bluechi.ControllerBusName, string(daemonapi.InternalControllerPath)); !strings.Contains(out, ".Register ") {
		t.Errorf("introspection of the registration object lacks Register:\n%s", out)
	}
}

// TestReadinessAndNodeProperties: both daemons tell systemd they are
// ready (sd_notify READY=1), and a node's PeerIp and LastSeenTimestamp
// follow its agent: the agent's address while online, heartbeats moving
// the timestamp on, no address once offline. The controller reports its
// log target.
func TestReadinessAndNodeProperties(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	if err := passCredentials(notify); err != nil {
		t.Fatal(err)
	}
	// Every process started from here on inherits it (the nodes' systemd
	// and the bus report too): messages are told apart by sender.
	t.Setenv("NOTIFY_SOCKET", sock)
	c := newCluster(t, "n1")
	waitReady(t, notify, c.ctrlCmd.Process.Pid, "controller")
	agent := c.startAgent("n1")
	waitReady(t, notify, agent.Process.Pid, "agent")
	c.waitStatus("n1", "online")

	ctx := context.Background()
	node := c.node("n1")
	if ip, err := node.GetPeerIP(ctx); err != nil || ip != "127.0.0.1" {
		t.Errorf("PeerIp online: %q %v", ip, err)
	}
	first, err := node.GetLastSeenTimestamp(ctx)
	if err != nil || first == 0 {
		t.Fatalf("LastSeenTimestamp: %d %v", first, err)
	}
	c.waitFor("a heartbeat moving LastSeenTimestamp on", func() bool {
		ts, err := node.GetLastSeenTimestamp(ctx)
		return err == nil && ts > first
	})
	if target, err := c.controller().GetLogTarget(ctx); err != nil || target != "stderr" {
		t.Errorf("controller LogTarget: %q %v", target, err)
	}
	agent.Process.Kill()
	agent.Wait()
	c.waitStatus("n1", "offline")
	if ip, err := node.GetPeerIP(ctx); err != nil || ip != "" {
		t.Errorf("PeerIp offline: %q %v", ip, err)
	}
}

// passCredentials makes the socket receive each sender's credentials.
func passCredentials(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// waitReady reads notifications until process pid sent READY=1.
func waitReady(t *testing.T, notify *net.UnixConn, pid int, who string) {
	t.Helper()
	notify.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf, oob := make([]byte, 4096), make([]byte, 1024)
	for {
		n, oobn, _, _, err := notify.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatalf("%s never sent READY=1: %v", who, err)
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			continue
		}
		cred, err := syscall.ParseUnixCredentials(&msgs[0])
		if err == nil && int(cred.Pid) == pid && strings.Contains(string(buf[:n]), "READY=1") {
			return
		}
	}
}
