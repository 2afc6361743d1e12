// SPDX-License-Identifier: Apache-2.0

package sysmode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSystemMode installs the project into three booted nodes and drives
// it as an administrator would. The steps share one cluster and run in
// order; each leaves every node online for the next.
func TestSystemMode(t *testing.T) {
	// Leave a minute of go test's -timeout for the clean-up.
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(15 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-time.Minute))
	defer cancel()
	c := newCluster(t, ctx)

	t.Run("AllOnline", func(t *testing.T) {
		c.t = t
		d := c.waitAllOnline(60 * time.Second)
		t.Logf("all online %v after enable --now", d.Round(time.Millisecond))
		for _, n := range []string{"n2", "n3"} {
			if out, errOut, err := c.nodes[n].Run(ctx, "bluechi-is-online", "agent"); err != nil {
				t.Errorf("bluechi-is-online agent on %s: %v: %s%s", n, err, out, errOut)
			}
		}
	})
	t.Run("BluechictlRoot", func(t *testing.T) {
		c.t = t
		out := c.run(ctx, ctlNode, "bluechictl", "status")
		for _, n := range nodeNames {
			if !lineHas(out, n, "online") {
				t.Errorf("bluechictl status: no line with %s online:\n%s", n, out)
			}
		}
		c.run(ctx, ctlNode, "bluechictl", "start", "n3", "sysmode-simple.service")
		if s := c.prop(ctx, "n3", "sysmode-simple.service", "ActiveState"); s != "active" {
			t.Errorf("after bluechictl start: sysmode-simple on n3 is %q", s)
		}
		out = c.run(ctx, ctlNode, "bluechictl", "list-units", "n3", "--filter", "sysmode-*")
		if !lineHas(out, "sysmode-simple.service", "active") {
			t.Errorf("bluechictl list-units n3: no active sysmode-simple.service:\n%s", out)
		}
		c.run(ctx, ctlNode, "bluechictl", "stop", "n3", "sysmode-simple.service")
		if s := c.prop(ctx, "n3", "sysmode-simple.service", "ActiveState"); s != "inactive" {
			t.Errorf("after bluechictl stop: sysmode-simple on n3 is %q", s)
		}
		// The agent runs without capabilities: systemd does the work of
		// set-property and daemon-reload.
		c.run(ctx, ctlNode, "bluechictl", "set-property", "n3", "sysmode-simple.service", "CPUWeight=50", "--runtime")
		if w := c.prop(ctx, "n3", "sysmode-simple.service", "CPUWeight"); w != "50" {
			t.Errorf("after bluechictl set-property CPUWeight=50: CPUWeight on n3 is %q", w)
		}
		c.run(ctx, ctlNode, "bluechictl", "daemon-reload", "n3")
	})
	t.Run("Unprivileged", func(t *testing.T) {
		c.t = t
		nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
		out, errOut, err := c.nodes[ctlNode].Run(ctx, append(nobody, "bluechictl", "status")...)
		text := out + errOut
		t.Logf("bluechictl status as nobody: %v: %s", err, strings.TrimSpace(text))
		if err == nil {
			t.Errorf("bluechictl status as an unprivileged user succeeded:\n%s", text)
		}
		if !strings.Contains(strings.ToLower(text), "denied") || strings.Contains(text, "matched rules") {
			t.Errorf("bluechictl as an unprivileged user: want a short access-denied message, got:\n%s", text)
		}
		out, errOut, err = c.nodes["n2"].Run(ctx, append(nobody, "bluechi-is-online", "agent")...)
		text = out + errOut
		t.Logf("bluechi-is-online agent as nobody: %v: %s", err, strings.TrimSpace(text))
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() <= 1 || strings.Contains(text, "is offline") ||
			!strings.Contains(strings.ToLower(text), "denied") {
			t.Errorf("bluechi-is-online agent as an unprivileged user: want an access error with its own exit code (not 0 or 1, not \"is offline\"), got %v:\n%s", err, text)
		}
	})
	t.Run("Journald", func(t *testing.T) {
		c.t = t
		c.checkJournal(ctx, ctlNode, "bluechi-controller.service", "bluechi-controller", "node registered", "NODE", "n2")
		c.checkJournal(ctx, "n2", "bluechi-agent.service", "bluechi-agent", "registered with controller", "NODE", "n2")
		// A clean start logs no error; the local agent, which reaches the
		// controller through its socket, not even a warning (the remote
		// agents may warn: they can come up before the controller; the
		// controller warns that the activated socket serves the UDS path,
		// as config.md 3.2 says).
		for _, u := range [][3]string{{ctlNode, "bluechi-controller.service", "3"}, {ctlNode, "bluechi-agent.service", "4"}} {
			for _, e := range c.journal(ctx, u[0], u[1]) {
				if e["_PID"] != "1" && e["PRIORITY"] <= u[2] {
					t.Errorf("%s on %s: a clean start logged at PRIORITY %s: %q", u[1], u[0], e["PRIORITY"], e["MESSAGE"])
				}
			}
		}
	})
	t.Run("AgentReload", func(t *testing.T) {
		c.t = t
		// systemctl reload sends SIGHUP (ExecReload); with UseTLS off
		// there is nothing to reload and the agent stays as it was.
		pid := c.prop(ctx, "n2", "bluechi-agent.service", "MainPID")
		c.run(ctx, "n2", "systemctl", "reload", "bluechi-agent.service")
		waitFor(t, 10*time.Second, "the agent's SIGHUP record on n2", func() (bool, string) {
			return hasRecord(c.journal(ctx, "n2", "bluechi-agent.service"), "SIGHUP: nothing to reload (UseTLS is off)", "PRIORITY", "6"), ""
		})
		if now := c.prop(ctx, "n2", "bluechi-agent.service", "MainPID"); now != pid {
			t.Errorf("agent on n2: MainPID %s after systemctl reload (was %s)", now, pid)
		}
		if s := c.prop(ctx, "n2", "bluechi-agent.service", "ActiveState"); s != "active" {
			t.Errorf("agent on n2 is %q after systemctl reload", s)
		}
		c.waitAllOnline(10 * time.Second)
	})
	t.Run("ControllerReload", func(t *testing.T) {
		c.t = t
		// The same for the controller: no node drops.
		pid := c.prop(ctx, ctlNode, "bluechi-controller.service", "MainPID")
		c.run(ctx, ctlNode, "systemctl", "reload", "bluechi-controller.service")
		waitFor(t, 10*time.Second, "the controller's SIGHUP record", func() (bool, string) {
			return hasRecord(c.journal(ctx, ctlNode, "bluechi-controller.service"), "SIGHUP: nothing to reload (UseTLS is off)", "PRIORITY", "6"), ""
		})
		if now := c.prop(ctx, ctlNode, "bluechi-controller.service", "MainPID"); now != pid {
			t.Errorf("controller: MainPID %s after systemctl reload (was %s)", now, pid)
		}
		if s := c.prop(ctx, ctlNode, "bluechi-controller.service", "ActiveState"); s != "active" {
			t.Errorf("controller is %q after systemctl reload", s)
		}
		c.waitAllOnline(10 * time.Second)
	})
	t.Run("Proxy", func(t *testing.T) {
		c.t = t
		c.run(ctx, ctlNode, "bluechictl", "start", "n2", "sysmode-needs.service")
		for _, u := range [][2]string{{"n2", "sysmode-needs.service"}, {"n2", "bluechi-proxy@n3_sysmode-dep.service"},
			{"n3", "sysmode-dep.service"}, {"n3", "bluechi-dep@sysmode-dep.service"}} {
			waitFor(t, 10*time.Second, u[1]+" active on "+u[0], func() (bool, string) {
				s := c.prop(ctx, u[0], u[1], "ActiveState")
				return s == "active", s
			})
		}
		c.run(ctx, ctlNode, "bluechictl", "stop", "n2", "sysmode-needs.service")
		for _, u := range [][2]string{{"n2", "bluechi-proxy@n3_sysmode-dep.service"}, {"n3", "bluechi-dep@sysmode-dep.service"}} {
			waitFor(t, 10*time.Second, u[1]+" stopped on "+u[0], func() (bool, string) {
				s := c.prop(ctx, u[0], u[1], "ActiveState")
				return s == "inactive", s
			})
		}
		c.run(ctx, "n3", "systemctl", "stop", "sysmode-dep.service")
	})
	t.Run("ProxyRequesterAgentRestart", func(t *testing.T) {
		c.t = t
		c.proxyRequesterAgentRestart(ctx)
	})
	t.Run("ProxyTargetAgentRestart", func(t *testing.T) {
		c.t = t
		c.proxyTargetAgentRestart(ctx)
	})
	t.Run("ProxyStopWhileTargetCut", func(t *testing.T) {
		c.t = t
		c.proxyStopWhileTargetCut(ctx)
	})
	t.Run("LinkDown", func(t *testing.T) {
		c.t = t
		c.partition(ctx, "n3", "link down",
			func() error { return c.nodes["n3"].SetLink(ctx, false) },
			func() error { return c.nodes["n3"].SetLink(ctx, true) }, nil)
		c.checkJournal(ctx, ctlNode, "bluechi-controller.service", "bluechi-controller", "node heartbeat timeout", "NODE", "n3")
	})
	t.Run("PacketDrop", func(t *testing.T) {
		c.t = t
		rules := fmt.Sprintf("table inet sysmode_cut {\n chain in { type filter hook input priority 0; ip saddr %s drop; }\n"+
			" chain out { type filter hook output priority 0; ip daddr %s drop; }\n}\n", ctlIP, ctlIP)
		n2 := c.nodes["n2"]
		c.partition(ctx, "n2", "packet drop",
			func() error {
				cmd, err := n2.Command(ctx, "nft", "-f", "-")
				if err != nil {
					return err
				}
				cmd.Stdin = strings.NewReader(rules)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("nft: %w: %s", err, out)
				}
				return nil
			},
			func() error {
				_, errOut, err := n2.Run(ctx, "nft", "delete", "table", "inet", "sysmode_cut")
				if err != nil {
					return fmt.Errorf("%w: %s", err, errOut)
				}
				return nil
			}, nil)
	})
	t.Run("ControllerRestart", func(t *testing.T) {
		c.t = t
		pid := c.prop(ctx, ctlNode, "bluechi-controller.service", "MainPID")
		c.run(ctx, ctlNode, "systemctl", "restart", "bluechi-controller.service")
		if now := c.prop(ctx, ctlNode, "bluechi-controller.service", "MainPID"); now == pid || now == "0" {
			t.Errorf("controller MainPID %s after restart (was %s)", now, pid)
		}
		t.Logf("all online %v after controller restart", c.waitAllOnline(30*time.Second).Round(time.Millisecond))
	})
	t.Run("NodeReboot", func(t *testing.T) {
		c.t = t
		start := time.Now()
		c.reboot(ctx, "n3")
		d := c.waitAllOnline(30 * time.Second)
		t.Logf("n3 rebooted and all online after %v (%v after boot)", time.Since(start).Round(time.Millisecond), d.Round(time.Millisecond))
	})
	t.Run("SocketActivationAtBoot", func(t *testing.T) {
		c.t = t
		start := time.Now()
		c.reboot(ctx, ctlNode)
		d := c.waitAllOnline(30 * time.Second)
		t.Logf("ctl rebooted and all online after %v (%v after boot)", time.Since(start).Round(time.Millisecond), d.Round(time.Millisecond))
		if s := c.prop(ctx, ctlNode, "bluechi-controller.service", "UnitFileState"); s == "enabled" {
			t.Fatalf("bluechi-controller.service is enabled: the test cannot tell socket activation")
		}
		if s := c.prop(ctx, ctlNode, "bluechi-controller.service", "TriggeredBy"); !strings.Contains(s, "bluechi-controller.socket") {
			t.Errorf("controller TriggeredBy=%q", s)
		}
		if s := c.prop(ctx, ctlNode, "bluechi-controller.socket", "ActiveState"); s != "active" {
			t.Errorf("bluechi-controller.socket is %q", s)
		}
		c.run(ctx, ctlNode, "bluechi-is-online", "system")
	})
	t.Run("DbusRestart", func(t *testing.T) {
		c.t = t
		// The local agent is stopped first: its reconnection through the
		// unix socket would start the controller again by socket
		// activation and hide whether the controller's unit restarts it.
		c.run(ctx, ctlNode, "systemctl", "stop", "bluechi-agent.service")
		pid := c.prop(ctx, ctlNode, "bluechi-controller.service", "MainPID")
		since := time.Now().Add(-time.Second).UTC().Format("2006-01-02 15:04:05")
		c.run(ctx, ctlNode, "systemctl", "restart", "dbus.service")
		start := time.Now()
		waitFor(t, 30*time.Second, "controller back after systemctl restart dbus, n2 and n3 online", func() (bool, string) {
			state := c.prop(ctx, ctlNode, "bluechi-controller.service", "ActiveState")
			now := c.prop(ctx, ctlNode, "bluechi-controller.service", "MainPID")
			s2, _ := c.nodeStatus("n2")
			s3, _ := c.nodeStatus("n3")
			return state == "active" && now != pid && s2 == "online" && s3 == "online",
				fmt.Sprintf("controller %s MainPID %s (was %s), n2 %s, n3 %s", state, now, pid, s2, s3)
		})
		t.Logf("controller back and n2, n3 online %v after systemctl restart dbus", time.Since(start).Round(time.Millisecond))
		// How the controller logged losing the bus: once, through the journal.
		entries := c.journal(ctx, ctlNode, "bluechi-controller.service", "--since", since)
		for _, e := range entries {
			if e["_TRANSPORT"] == "stdout" {
				t.Errorf("controller wrote to stdout/stderr after losing the bus (a record logged twice?): [PRIORITY %s] %s", e["PRIORITY"], e["MESSAGE"])
			}
		}
		if t.Failed() {
			for _, e := range entries {
				t.Logf("controller journal: [%s %s] %s", e["PRIORITY"], e["_TRANSPORT"], e["MESSAGE"])
			}
		}
	})
	t.Run("AllBackAfterDbusRestart", func(t *testing.T) {
		c.t = t
		c.run(ctx, ctlNode, "systemctl", "start", "bluechi-agent.service")
		// The agent on n2 loses its bus too, and must come back.
		c.run(ctx, "n2", "systemctl", "restart", "dbus.service")
		t.Logf("all online %v after the agent's bus restarted on n2", c.waitAllOnline(30*time.Second).Round(time.Millisecond))
	})
}

// partition cuts node off (cut), checks that the controller and the node's
// agent both report offline within cutLimit, heals and waits until all
// are online again. during, when not nil, runs while the node is cut off
// (after both sides noticed). partition returns the time all nodes were
// online again.
func (c *cluster) partition(ctx context.Context, node, how string, cut, heal func() error, during func()) time.Time {
	t := c.t
	c.waitAllOnline(30 * time.Second)
	start := time.Now()
	if err := cut(); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = heal()
		}
	}()
	var ctlSaw, agentSaw time.Duration
	for (ctlSaw == 0 || agentSaw == 0) && time.Since(start) < 3*cutLimit {
		if ctlSaw == 0 {
			if s, err := c.nodeStatus(node); err == nil && s == "offline" {
				ctlSaw = time.Since(start)
			}
		}
		if agentSaw == 0 {
			if s, err := c.agentStatus(node); err == nil && s == "offline" {
				agentSaw = time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s of %s: controller saw it offline after %v, its agent after %v", how, node, ctlSaw.Round(time.Millisecond), agentSaw.Round(time.Millisecond))
	if ctlSaw == 0 || ctlSaw > cutLimit {
		t.Errorf("%s of %s: controller saw it offline after %v, want <= %v (0: not within %v)", how, node, ctlSaw, cutLimit, 3*cutLimit)
	}
	if agentSaw == 0 || agentSaw > cutLimit {
		t.Errorf("%s of %s: its agent saw the controller gone after %v, want <= %v (0: not within %v)", how, node, agentSaw, cutLimit, 3*cutLimit)
	}
	if during != nil {
		during()
	}
	start = time.Now()
	if err := heal(); err != nil {
		t.Fatal(err)
	}
	healed = true
	t.Logf("%s of %s healed: all online after %v", how, node, c.waitAllOnline(30*time.Second).Round(time.Millisecond))
	return time.Now()
}

// journal reads a unit's journal in a node as JSON entries.
func (c *cluster) journal(ctx context.Context, node, unit string, extra ...string) []map[string]string {
	t := c.t
	t.Helper()
	out := c.run(ctx, node, append([]string{"journalctl", "--no-pager", "-o", "json", "-u", unit}, extra...)...)
	var entries []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		raw := map[string]any{}
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("journalctl -o json: %v: %s", err, line)
		}
		e := map[string]string{}
		for k, v := range raw {
			if s, ok := v.(string); ok {
				e[k] = s
			}
		}
		entries = append(entries, e)
	}
	return entries
}

// checkJournal checks the journal of a daemon: every record came in
// natively (not through stdout), with its SYSLOG_IDENTIFIER, no DEBUG at
// the default level INFO, source locations free of build paths, and a
// record whose MESSAGE starts with msg and carries field=value.
func (c *cluster) checkJournal(ctx context.Context, node, unit, ident, msg, field, value string) {
	t := c.t
	t.Helper()
	entries := c.journal(ctx, node, unit)
	found := false
	buildPaths := 0
	for _, e := range entries {
		if e["_PID"] == "1" || e["_COMM"] == "systemd" {
			continue // systemd's own lines about the unit
		}
		switch {
		case e["_TRANSPORT"] != "journal":
			t.Errorf("%s on %s: record through %s, not the native journal: %q", unit, node, e["_TRANSPORT"], e["MESSAGE"])
		case e["SYSLOG_IDENTIFIER"] != ident:
			t.Errorf("%s on %s: SYSLOG_IDENTIFIER %q, want %q: %q", unit, node, e["SYSLOG_IDENTIFIER"], ident, e["MESSAGE"])
		case e["PRIORITY"] == "7":
			t.Errorf("%s on %s: DEBUG record at the default level INFO: %q", unit, node, e["MESSAGE"])
		case strings.HasPrefix(e["CODE_FILE"], "/"):
			buildPaths++
			if buildPaths == 1 {
				t.Errorf("%s on %s: CODE_FILE is a build path %q (build with -trimpath)", unit, node, e["CODE_FILE"])
			}
		}
		if strings.HasPrefix(e["MESSAGE"], msg) && e[field] == value {
			found = true
			want := "6"
			if strings.Contains(msg, "timeout") {
				want = "4"
			}
			if e["PRIORITY"] != want {
				t.Errorf("%s on %s: %q has PRIORITY %s, want %s", unit, node, e["MESSAGE"], e["PRIORITY"], want)
			}
		}
	}
	if buildPaths > 1 {
		t.Errorf("%s on %s: %d records with a build path in CODE_FILE", unit, node, buildPaths)
	}
	if !found {
		t.Errorf("%s on %s: no record %q with %s=%s among %d", unit, node, msg, field, value, len(entries))
	}
}

// lineHas reports whether a line of out contains every word.
func lineHas(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
