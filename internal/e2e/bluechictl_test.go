// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/version"
)

// ctlCommands are the commands bluechictl has (upstream's and ours).
var ctlCommands = []string{"help", "version", "list-units", "list-unit-files", "start", "stop", "restart", "reload",
	"freeze", "thaw", "kill", "reset-failed", "enable", "disable", "is-enabled", "daemon-reload", "status", "monitor",
	"metrics", "get-default", "set-default", "set-loglevel", "set-property", "completion"}

// TestCtlCommandLine checks option parsing, usage texts, version and the
// diagnostics of bad input, on a bus without a controller (nothing of it
// needs one).
func TestCtlCommandLine(t *testing.T) {
	bus := testbus.Start(t)
	ctl := func(args ...string) ctlResult { return ctlRunTool(t, bus.Address, "bluechictl", args...) }

	// getopt prefixes its diagnostics with argv[0], the path as invoked.
	ctlPath, onlinePath := filepath.Join(binDir, "bluechictl"), filepath.Join(binDir, "bluechi-is-online")
	h, help := ctl("-h"), ctl("--help")
	if h.code != 0 || h.stdout != help.stdout || h.stderr != "" || !strings.Contains(h.stdout, "Usage") {
		t.Fatalf("-h and --help differ or fail:\n%v\n%v", h, help)
	}
	ctlGolden(t, "bluechictl_help.golden", h.stdout)
	if r := ctl("help"); r.code != 0 || r.stdout != h.stdout {
		t.Errorf("help command: %v", r)
	}
	for _, cmd := range ctlCommands {
		a, b := ctl(cmd, "-h"), ctl("--help", cmd)
		if a.code != 0 || a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "Usage: bluechictl "+cmd) {
			t.Errorf("%s -h / --help %s:\n%v\n%v", cmd, cmd, a, b)
		}
		if !strings.Contains(h.stdout, "\n  "+cmd+" ") {
			t.Errorf("the usage does not list %s", cmd)
		}
	}
	if r := ctl("version"); r.code != 0 || r.stdout != "bluechictl version "+version.Version+"\n" {
		t.Errorf("version: %v", r)
	}
	for _, args := range [][]string{{"-v"}, {"--version"}, {"status", "node-a", "--version"}} {
		if r := ctl(args...); r.code != 0 || r.stdout != "bluechictl version "+version.Version+"\n" || r.stderr != "" {
			t.Errorf("%v: %v", args, r)
		}
	}

	for _, c := range []struct {
		args          []string
		stderr        string
		usageOnStdout bool
		usageOnStderr string
	}{
		{[]string{"-Q"}, ctlPath + ": invalid option -- 'Q'\n", true, ""},
		{[]string{"--QWERTY"}, ctlPath + ": unrecognized option '--QWERTY'\n", true, ""},
		{[]string{"status", "-Q"}, ctlPath + ": invalid option -- 'Q'\n", true, ""},
		{[]string{"list-units", "--filter"}, ctlPath + ": option '--filter' requires an argument\n", true, ""},
		{[]string{}, "No command given\n", true, ""},
		{[]string{"-u"}, "No command given\n", true, ""},
		{[]string{"frobnicate"}, "Method frobnicate not found\n", true, ""},
		{[]string{"start", "node-a"}, "Too few arguments for method start\n", false, "Usage: bluechictl start NODE UNIT"},
		{[]string{"get-default"}, "Too few arguments for method get-default\n", false, "Usage: bluechictl get-default NODE"},
		{[]string{"list-units", "a", "b"}, "Too many arguments for method list-units\n", false, "Usage: bluechictl list-units"},
		{[]string{"monitor", "a", "b", "c"}, "Too many arguments for method monitor\n", false, "Usage: bluechictl monitor"},
		{[]string{"start", "node-a", "x.service", "--force"}, "Unsupported option 'force' for method 'start'\n", false, ""},
		{[]string{"disable", "node-a", "x.service", "--runtime"}, "Unsupported option 'runtime' for method 'disable'\n", false, ""},
		{[]string{"status", "-w", "--filter=x"}, "Unsupported option 'filter' for method 'status'\n", false, ""},
		{[]string{"start", "node-a", "foo"}, "Invalid unit name \"foo\": no unit type suffix\n", false, ""},
		{[]string{"status", "node-a", "a b.service"}, "Invalid unit name \"a b.service\": character ' ' not allowed\n", false, ""},
		{[]string{"kill", "node-a", "x.service", "--signal=99"}, "Value '99' of option --signal is invalid\n", false, ""},
		{[]string{"kill", "node-a", "x.service", "--signal", "TERM"}, "Value 'TERM' of option --signal is invalid\n", false, ""},
		{[]string{"kill", "node-a", "x.service", "--kill-whom=everyone"}, "Value 'everyone' of option --kill-whom is invalid\n", false, ""},
		{[]string{"set-loglevel", "INF"}, "Invalid log level 'INF': expected one of DEBUG, INFO, WARN, ERROR\n", false, ""},
		{[]string{"set-default", "node-a", "x.service"}, "Error: Unit 'x.service' is not a target unit\n", false, ""},
		{[]string{"set-property", "node-a", "x.service", "CPUWeight=lots"}, "Invalid value 'lots' for CPUWeight: expected an integer between 1 and 10000\n", false, ""},
		{[]string{"set-property", "node-a", "x.service", "Frobs=1"}, "Unknown or unsupported property 'Frobs'\n", false, ""},
		{[]string{"metrics", "start"}, "Unknown metrics command: start\n", false, ""},
		{[]string{"list-units", "-o", "xml"}, "Value 'xml' of option --output is invalid\n", false, ""},
	} {
		r := ctl(append([]string{"-u"}, c.args...)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, c.stderr) {
			t.Errorf("bluechictl %v: want exit 1 and stderr %q, got %v", c.args, c.stderr, r)
		}
		if c.usageOnStdout && r.stdout != h.stdout {
			t.Errorf("bluechictl %v: want the usage on stdout, got %q", c.args, r.stdout)
		}
		if !c.usageOnStdout && r.stdout != "" {
			t.Errorf("bluechictl %v: unexpected stdout %q", c.args, r.stdout)
		}
		if got := strings.TrimPrefix(r.stderr, c.stderr); c.usageOnStderr != "" && !strings.HasPrefix(got, c.usageOnStderr) || c.usageOnStderr == "" && got != "" {
			t.Errorf("bluechictl %v: stderr after the error %q, want usage %q", c.args, got, c.usageOnStderr)
		}
	}
	// No controller on this bus; no bus at all without -u.
	if r := ctl("-u", "status"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to list nodes: ") {
		t.Errorf("no controller: %v", r)
	}
	if r := ctl("list-units"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to connect to bus: ") {
		t.Errorf("no system bus: %v", r)
	}

	// bluechi-is-online's command line.
	online := func(args ...string) ctlResult { return ctlRunTool(t, bus.Address, "bluechi-is-online", args...) }
	oh, ohelp := online("-h"), online("--help")
	if oh.code != 0 || oh.stdout != ohelp.stdout || !strings.Contains(oh.stdout, "Usage") {
		t.Errorf("is-online -h/--help:\n%v\n%v", oh, ohelp)
	}
	if r := online("version"); r.code != 0 || r.stdout != "bluechi-is-online version "+version.Version+"\n" {
		t.Errorf("is-online version: %v", r)
	}
	for _, args := range [][]string{{"-v"}, {"--version"}, {"agent", "--version"}} {
		if r := online(args...); r.code != 0 || r.stdout != "bluechi-is-online version "+version.Version+"\n" || r.stderr != "" {
			t.Errorf("is-online %v: %v", args, r)
		}
	}
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"-Q"}, onlinePath + ": invalid option -- 'Q'\n"},
		{[]string{}, "No command given\n"},
		{[]string{"cluster"}, "Method cluster not found\n"},
		{[]string{"node"}, "Too few arguments for method node\n"},
		{[]string{"node", "n", "--switch-timeout=5"}, "Unsupported option 'switch-timeout' for method 'node'\n"},
		{[]string{"agent", "--wait=soon"}, "Failed to parse --wait: Invalid argument\n"},
		{[]string{"agent", "--switch-timeout=x"}, "Failed to parse --switch-timeout: Invalid argument\n"},
		{[]string{"-u", "system"}, "org.eclipse.bluechi is offline\n"},
		{[]string{"-u", "agent", "--wait="}, "org.eclipse.bluechi.Agent is offline\n"},
		{[]string{"-u", "node", "n", "--monitor"}, "org.eclipse.bluechi is offline\n"},
	} {
		r := online(c.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, c.stderr) {
			t.Errorf("bluechi-is-online %v: want exit 1 and %q, got %v", c.args, c.stderr, r)
		}
	}
	start := time.Now()
	if r := online("-u", "system", "--wait=300"); r.code != 1 || time.Since(start) < 300*time.Millisecond {
		t.Errorf("system --wait=300 without controller: %v after %v", r, time.Since(start))
	}
}

// ctlUnitRows parses the data rows of a bar table into sorted "a|b|c" strings.
func ctlUnitRows(out string) []string {
	var rows []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n")[2:] {
		cells := strings.Split(l, " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, strings.Join(cells, "|"))
	}
	sort.Strings(rows)
	return rows
}

// ctlSortTable sorts the data rows of a normalised table (for goldens of
// lists whose order is systemd's hash order).
func ctlSortTable(table string) string {
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	rows := lines[2:]
	sort.Strings(rows)
	return strings.Join(append(lines[:2], rows...), "\n") + "\n"
}

// systemctlRun runs systemctl --user inside a node and returns stdout and the exit code.
func (e *ctlEnv) systemctlRun(node string, args ...string) (string, int) {
	e.t.Helper()
	cmd := e.c.nodes[node].Command(context.Background(), append([]string{"systemctl", "--user"}, args...)...)
	out, err := cmd.Output()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		e.t.Fatalf("systemctl %v on %s: %v", args, node, err)
	}
	return string(out), code
}

// waitActive polls a unit's ActiveState until it is one of want.
func (e *ctlEnv) waitActive(node, unit string, want ...string) {
	e.t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := e.c.node(node).GetUnitProperty(context.Background(), unit, "org.freedesktop.systemd1.Unit", "ActiveState")
		if err == nil {
			last, _ = v.Value().(string)
			for _, w := range want {
				if last == w {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s on %s: ActiveState %q (%v), want %v", unit, node, last, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unitsDir replaces a node's unit folder in paths by "<units>".
func (c *cluster) unitsDir(s string) string {
	for _, n := range c.nodes {
		s = strings.ReplaceAll(s, n.UnitDir, "<units>")
		s = strings.ReplaceAll(s, n.RuntimeDir, "<runtime>")
	}
	return s
}

// TestCtl drives every bluechictl command against a controller and two real
// systemd nodes, comparing tables with goldens and with systemctl.
func TestCtl(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	agentB := c.startOnline("node-a", "node-b")["node-b"]
	ctx := context.Background()

	t.Run("status-nodes", func(t *testing.T) {
		e := c.in(t)
		r := e.ctlOK("status")
		ctlGolden(t, "status_nodes.golden", ctlNormalizeNodes(r.stdout))
		one := e.ctlOK("status", "node-b")
		if lines := strings.Split(r.stdout, "\n"); one.stdout != lines[0]+"\n"+lines[1]+"\n"+lines[3]+"\n" {
			t.Errorf("status node-b:\n%s", one.stdout)
		}
		if r := e.ctl("status", "nope"); r.code != 1 || r.stderr != "Node nope not found\n" || r.stdout != "" {
			t.Errorf("unknown node: %v", r)
		}
		var nodes []map[string]any
		r = e.ctlOK("status", "-o", "json")
		if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil || len(nodes) != 2 {
			t.Fatalf("status -o json: %v\n%s", err, r.stdout)
		}
		for i, name := range []string{"node-a", "node-b"} {
			n := nodes[i]
			if n["node"] != name || n["state"] != "online" || n["ip"] == "" || n["last_seen"] != "now" || n["last_seen_timestamp"].(float64) <= 0 {
				t.Errorf("status -o json node %d: %v", i, n)
			}
		}
	})

	t.Run("list-units", func(t *testing.T) {
		e := c.in(t)
		e.ctlOK("start", "node-a", sandbox.SimpleServiceName)
		e.ctlOK("start", "node-b", sandbox.SimpleServiceName)
		e.ctlOK("start", "node-b", sandbox.FailingServiceName)
		r := e.ctlOK("list-units", "--filter=sb-*i*.service")
		ctlGolden(t, "list_units.golden", ctlSortTable(ctlBarTable(t, r.stdout)))
		// The filter only hides rows: widths come from every unit.
		all := e.ctlOK("list-units")
		if strings.SplitN(all.stdout, "\n", 2)[0] != strings.SplitN(r.stdout, "\n", 2)[0] {
			t.Errorf("filtered and full header differ:\n%s\n%s", r.stdout, all.stdout)
		}
		// One node, compared with systemctl on that node (polled: units come and go).
		var got, want []string
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := e.ctlOK("list-units", "node-a")
			ctlBarTable(t, r.stdout)
			got = nil
			for _, row := range ctlUnitRows(r.stdout) {
				if !strings.HasPrefix(row, "node-a|") {
					t.Fatalf("row of another node: %s", row)
				}
				got = append(got, strings.TrimPrefix(row, "node-a|"))
			}
			out, _ := e.systemctlRun("node-a", "list-units", "--all", "--plain", "--no-legend")
			want = nil
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(strings.TrimPrefix(l, "●"))
				want = append(want, f[0]+"|"+f[2]+"|"+f[3])
			}
			sort.Strings(want)
			if strings.Join(got, "\n") == strings.Join(want, "\n") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("list-units node-a differs from systemctl:\n%s\n--- systemctl:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		var units []map[string]string
		r = e.ctlOK("list-units", "--filter", "sb-*i*.service", "--output=json")
		if err := json.Unmarshal([]byte(r.stdout), &units); err != nil || len(units) != 3 {
			t.Fatalf("list-units json: %v\n%s", err, r.stdout)
		}
		for _, u := range units {
			if u["node"] == "" || !strings.HasPrefix(u["unit"], "sb-") || u["load_state"] != "loaded" || u["active_state"] == "" || u["sub_state"] == "" || u["description"] == "" {
				t.Errorf("list-units json row %v", u)
			}
		}
		if r := e.ctl("list-units", "nope"); r.code != 1 || r.stderr != "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/nope'. (no node named 'nope')\n" {
			t.Errorf("list-units nope: %v", r)
		}
	})

	t.Run("list-unit-files", func(t *testing.T) {
		e := c.in(t)
		r := e.ctlOK("list-unit-files", "--filter=*/sb-*")
		ctlGolden(t, "list_unit_files.golden", ctlSortTable(c.unitsDir(ctlBarTable(t, r.stdout))))
		r = e.ctlOK("list-unit-files", "node-b")
		var got []string
		for _, row := range ctlUnitRows(r.stdout) {
			f := strings.Split(row, "|")
			got = append(got, path.Base(f[1])+" "+f[2])
		}
		sort.Strings(got)
		out, _ := e.systemctlRun("node-b", "list-unit-files", "--no-legend")
		var want []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			want = append(want, f[0]+" "+f[1])
		}
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("list-unit-files node-b differs from systemctl:\n%s\n--- systemctl:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		var files []map[string]string
		r = e.ctlOK("list-unit-files", "node-a", "-o", "json", "--filter=*/sb-simple.service")
		if err := json.Unmarshal([]byte(r.stdout), &files); err != nil || len(files) != 1 || files[0]["node"] != "node-a" ||
			files[0]["path"] != filepath.Join(c.nodes["node-a"].UnitDir, sandbox.SimpleServiceName) || files[0]["state"] != "disabled" {
			t.Errorf("list-unit-files json: %v %v", err, files)
		}
	})

	t.Run("lifecycle", func(t *testing.T) {
		e := c.in(t)
		for _, c2 := range []struct {
			args []string
			out  string
		}{
			{[]string{"stop", "node-a", sandbox.SimpleServiceName}, "Unit sb-simple.service StopUnit operation result: done\n"},
			{[]string{"start", "node-a", sandbox.SimpleServiceName}, "Unit sb-simple.service StartUnit operation result: done\n"},
			{[]string{"restart", "node-a", sandbox.SimpleServiceName}, "Unit sb-simple.service RestartUnit operation result: done\n"},
			{[]string{"start", "node-a", sandbox.OneshotServiceName}, "Unit sb-oneshot.service StartUnit operation result: done\n"},
			// A failing unit is a result, not an error: exit 0.
			{[]string{"start", "node-a", sandbox.FailingServiceName}, "Unit sb-failing.service StartUnit operation result: failed\n"},
		} {
			if r := e.ctl(c2.args...); r.code != 0 || r.stdout != c2.out || r.stderr != "" {
				t.Errorf("bluechictl %v: %v", c2.args, r)
			}
		}
		e.waitActive("node-a", sandbox.SimpleServiceName, "active")
		for _, c2 := range []struct {
			args   []string
			stderr string
		}{
			{[]string{"start", "node-a", "nope.service"}, "Failed to issue method call: Unit nope.service not found.\n"},
			{[]string{"reload", "node-a", sandbox.OneshotServiceName}, "Failed to issue method call: Job type reload is not applicable for unit sb-oneshot.service.\n"},
			{[]string{"stop", "node-z", sandbox.SimpleServiceName}, "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/node_2dz'. (no node named 'node-z')\n"},
		} {
			if r := e.ctl(c2.args...); r.code != 1 || r.stderr != c2.stderr || r.stdout != "" {
				t.Errorf("bluechictl %v: %v", c2.args, r)
			}
		}
	})

	t.Run("daemon-reload-and-reload", func(t *testing.T) {
		e := c.in(t)
		n := c.nodes["node-a"]
		if err := n.WriteUnit("bc-fixme.service", "[Service]\nType=oneshot\nExecStart=/nonexistent/bin\n"); err != nil {
			t.Fatal(err)
		}
		e.ctlOK("daemon-reload", "node-a")
		if r := e.ctlOK("start", "node-a", "bc-fixme.service"); r.stdout != "Unit bc-fixme.service StartUnit operation result: failed\n" {
			t.Errorf("broken unit: %v", r)
		}
		if err := n.WriteUnit("bc-fixme.service", "[Service]\nType=simple\nExecStart=/bin/sleep infinity\nExecReload=/bin/true\n"); err != nil {
			t.Fatal(err)
		}
		if r := e.ctlOK("daemon-reload", "node-a"); r.stdout != "" || r.stderr != "" {
			t.Errorf("daemon-reload is silent: %v", r)
		}
		if r := e.ctlOK("start", "node-a", "bc-fixme.service"); r.stdout != "Unit bc-fixme.service StartUnit operation result: done\n" {
			t.Errorf("fixed unit: %v", r)
		}
		if r := e.ctlOK("reload", "node-a", "bc-fixme.service"); r.stdout != "Unit bc-fixme.service ReloadUnit operation result: done\n" {
			t.Errorf("reload: %v", r)
		}
		// ExecReload really ran (upstream's bluechi-reload-unit): systemd
		// records its exit.
		if out, _ := n.Exec(context.Background(), "systemctl", "--user", "show", "-P", "ExecReload", "bc-fixme.service"); !strings.Contains(string(out), "code=exited ; status=0") {
			t.Errorf("ExecReload after reload: %s", out)
		}
		if r := e.ctl("daemon-reload", "nope"); r.code != 1 || !strings.Contains(r.stderr, "no node named 'nope'") {
			t.Errorf("daemon-reload nope: %v", r)
		}
	})

	t.Run("progress", func(t *testing.T) {
		e := c.in(t)
		// On a terminal, a job that takes longer than a second shows a
		// one-line indicator that is erased before the result.
		out := ctlOnTerminal(t, c.bus.Address, "-u", "start", "node-a", sandbox.SlowServiceName)
		if !strings.Contains(out, "| StartUnit sb-slow.service on node-a: waiting for job /org/eclipse/bluechi/job/") ||
			!strings.HasSuffix(out, "\r\x1b[KUnit sb-slow.service StartUnit operation result: done\r\n") {
			t.Errorf("terminal output %q", out)
		}
		// Not on a terminal: the plain result only.
		if r := e.ctlOK("restart", "node-a", sandbox.SlowServiceName); r.stdout != "Unit sb-slow.service RestartUnit operation result: done\n" {
			t.Errorf("restart slow: %v", r)
		}
		e.ctlOK("stop", "node-a", sandbox.SlowServiceName)
	})

	t.Run("status-units", func(t *testing.T) {
		e := c.in(t)
		e.waitActive("node-a", sandbox.FailingServiceName, "failed")
		r := e.ctlOK("status", "node-a", sandbox.SimpleServiceName, sandbox.OneshotServiceName, sandbox.FailingServiceName, "nope.service")
		ctlGolden(t, "status_units.golden", r.stdout)
		if r.stderr != "Unit nope.service could not be found.\n" {
			t.Errorf("not-found unit: %q", r.stderr)
		}
		r = e.ctlOK("status", "node-a", "bc-fixme.service")
		ctlGolden(t, "status_units_short.golden", r.stdout)
		var units []map[string]string
		r = e.ctlOK("status", "node-a", sandbox.SimpleServiceName, "nope.service", "-o", "json")
		if err := json.Unmarshal([]byte(r.stdout), &units); err != nil || len(units) != 2 {
			t.Fatalf("status json: %v %s", err, r.stdout)
		}
		if u := units[0]; u["node"] != "node-a" || u["unit"] != sandbox.SimpleServiceName || u["id"] != sandbox.SimpleServiceName ||
			u["active_state"] != "active" || u["sub_state"] != "running" || u["load_state"] != "loaded" || u["unit_file_state"] != "disabled" || u["freezer_state"] != "running" {
			t.Errorf("status json %v", u)
		}
		if units[1]["load_state"] != "not-found" {
			t.Errorf("status json of a missing unit: %v", units[1])
		}
		if r := e.ctl("status", "nope", sandbox.SimpleServiceName); r.code != 1 ||
			r.stderr != "Failed to get status of unit sb-simple.service on node nope - Unknown object '/org/eclipse/bluechi/node/nope'. (no node named 'nope')\n" {
			t.Errorf("status of a unit on an unknown node: %v", r)
		}
	})

	t.Run("freeze-thaw", func(t *testing.T) {
		e := c.in(t)
		// The cgroup freezer needs the unified hierarchy; where systemd
		// refuses, its message must come through.
		r := e.ctl("freeze", "node-a", sandbox.SimpleServiceName)
		if r.code == 1 {
			if r.stderr != "Failed to issue method call: Unit 'sb-simple.service' does not support freezing.\n" {
				t.Fatalf("freeze: %v", r)
			}
			if r := e.ctl("thaw", "node-a", sandbox.SimpleServiceName); r.code != 1 || !strings.Contains(r.stderr, "does not support freezing") {
				t.Errorf("thaw: %v", r)
			}
			return
		}
		if r.code != 0 || r.stdout != "Unit sb-simple.service freeze operation done\n" {
			t.Fatalf("freeze: %v", r)
		}
		if v, _ := c.node("node-a").GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Unit", "FreezerState"); v.Value() != "frozen" {
			t.Errorf("FreezerState %v", v)
		}
		if r := e.ctlOK("thaw", "node-a", sandbox.SimpleServiceName); r.stdout != "Unit sb-simple.service thaw operation done\n" {
			t.Errorf("thaw: %v", r)
		}
	})

	t.Run("kill", func(t *testing.T) {
		e := c.in(t)
		e.ctlOK("start", "node-b", sandbox.SimpleServiceName)
		if r := e.ctl("kill", "node-b", sandbox.SimpleServiceName, "--kill-whom=control"); r.code != 1 ||
			r.stderr != "Failed to issue method call for KillUnit: No control process to kill\n" {
			t.Errorf("kill control: %v", r)
		}
		if r := e.ctlOK("kill", "node-b", sandbox.SimpleServiceName, "--kill-whom=all", "--signal=9"); r.stdout != "" || r.stderr != "" {
			t.Errorf("kill -9 is silent: %v", r)
		}
		e.waitActive("node-b", sandbox.SimpleServiceName, "failed")
		e.ctlOK("start", "node-b", sandbox.SimpleServiceName)
		e.ctlOK("kill", "node-b", sandbox.SimpleServiceName, "--kill-whom", "main")
		e.waitActive("node-b", sandbox.SimpleServiceName, "inactive", "failed")
		if r := e.ctl("kill", "node-b", "nope.service"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to issue method call for KillUnit: ") {
			t.Errorf("kill unknown unit: %v", r)
		}
	})

	t.Run("reset-failed", func(t *testing.T) {
		e := c.in(t)
		if err := c.nodes["node-a"].WriteUnit("bc-fail2.service", sandbox.FailingService); err != nil {
			t.Fatal(err)
		}
		e.ctlOK("daemon-reload", "node-a")
		for _, n := range []string{"node-a", "node-b"} {
			e.ctlOK("start", n, sandbox.FailingServiceName)
			e.waitActive(n, sandbox.FailingServiceName, "failed")
		}
		e.ctlOK("start", "node-a", "bc-fail2.service")
		e.waitActive("node-a", "bc-fail2.service", "failed")
		// Units in order; the first error ends the list.
		r := e.ctl("reset-failed", "node-a", sandbox.FailingServiceName, sandbox.SlowServiceName, "bc-fail2.service")
		if r.code != 1 || r.stdout != "1 sb-failing.service\n2 sb-slow.service\n" || r.stderr != "Failed to issue method call: Unit sb-slow.service not loaded.\n" {
			t.Errorf("reset-failed with an unloaded unit: %v", r)
		}
		e.waitActive("node-a", sandbox.FailingServiceName, "inactive")
		e.waitActive("node-a", "bc-fail2.service", "failed")
		e.ctlOK("start", "node-a", sandbox.FailingServiceName)
		r = e.ctlOK("reset-failed", "node-a", sandbox.FailingServiceName, "bc-fail2.service")
		if r.stdout != "1 sb-failing.service\n2 bc-fail2.service\n" || r.stderr != "" {
			t.Errorf("reset-failed units: %v", r)
		}
		e.waitActive("node-a", sandbox.FailingServiceName, "inactive")
		e.waitActive("node-a", "bc-fail2.service", "inactive")
		e.waitActive("node-b", sandbox.FailingServiceName, "failed")
		e.ctlOK("start", "node-a", sandbox.FailingServiceName)
		e.ctlOK("reset-failed", "node-a")
		e.waitActive("node-a", sandbox.FailingServiceName, "inactive")
		e.waitActive("node-b", sandbox.FailingServiceName, "failed")
		if r := e.ctlOK("reset-failed"); r.stdout != "" || r.stderr != "" {
			t.Errorf("reset-failed: %v", r)
		}
		e.waitActive("node-b", sandbox.FailingServiceName, "inactive")
		if r := e.ctl("reset-failed", "nope"); r.code != 1 || !strings.HasPrefix(r.stderr, "Couldn't reset failed state of all units on node 'nope': Unknown object") {
			t.Errorf("reset-failed nope: %v", r)
		}
	})

	t.Run("enable-disable-is-enabled", func(t *testing.T) {
		e := c.in(t)
		r := e.ctlOK("enable", "node-a", sandbox.OneshotServiceName)
		if got := c.unitsDir(r.stderr); got != "The unit files included enablement information\n"+
			"Created symlink <units>/default.target.wants/sb-oneshot.service -> <units>/sb-oneshot.service\n" {
			t.Errorf("enable: %q", got)
		}
		if out, code := e.systemctlRun("node-a", "is-enabled", sandbox.OneshotServiceName); out != "enabled\n" || code != 0 {
			t.Errorf("systemctl after enable: %q %d", out, code)
		}
		r = e.ctlOK("disable", "node-a", sandbox.OneshotServiceName, "--no-reload")
		if got := c.unitsDir(r.stderr); got != "Removed \"<units>/default.target.wants/sb-oneshot.service\".\n" {
			t.Errorf("disable: %q", got)
		}
		if out, _ := e.systemctlRun("node-a", "is-enabled", sandbox.OneshotServiceName); out != "disabled\n" {
			t.Errorf("systemctl after disable: %q", out)
		}
		r = e.ctlOK("enable", "node-a", sandbox.SimpleServiceName, "--runtime", "--force", "--no-reload")
		if got := c.unitsDir(r.stderr); !strings.Contains(got, "Created symlink <runtime>/systemd/user/default.target.wants/sb-simple.service -> <units>/sb-simple.service") {
			t.Errorf("enable --runtime: %q", got)
		}
		if r := e.ctl("enable", "node-a", "nope.service"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to enable the units on node [node-a] - ") {
			t.Errorf("enable nope: %v", r)
		}
		if r := e.ctl("enable", "node-z", "nope.service"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to enable the units on node [node-z] - Unknown object") {
			t.Errorf("enable on unknown node: %v", r)
		}
		// is-enabled answers like systemctl, output and exit status, for
		// every state present on the node.
		for _, unit := range []string{sandbox.SimpleServiceName, sandbox.OneshotServiceName, sandbox.FailingServiceName,
			"dbus.socket", "default.target", "basic.target"} {
			r := e.ctl("is-enabled", "node-a", unit)
			out, code := e.systemctlRun("node-a", "is-enabled", unit)
			if r.stdout != out || r.code != code {
				t.Errorf("is-enabled %s: bluechictl %q/%d, systemctl %q/%d", unit, r.stdout, r.code, out, code)
			}
		}
		// A unit file that does not exist: bluechictl's own documented
		// answer, exit 1 (systemctl's code there depends on its version:
		// 1 before systemd 253, 4 from then on).
		if r := e.ctl("is-enabled", "node-a", "nope.service"); r.code != 1 || r.stdout != "" ||
			r.stderr != "Failed to issue method call: No such file or directory\n" {
			t.Errorf("is-enabled of a missing unit file: %v", r)
		}
	})

	t.Run("set-property", func(t *testing.T) {
		e := c.in(t)
		r := e.ctlOK("set-property", "node-a", sandbox.SimpleServiceName, "CPUWeight=200", "MemoryMax=64M", "TasksMax=77", "--runtime")
		if r.stdout != "" || r.stderr != "" {
			t.Errorf("set-property is silent: %v", r)
		}
		for prop, want := range map[string]uint64{"CPUWeight": 200, "MemoryMax": 64 << 20, "TasksMax": 77} {
			v, err := c.node("node-a").GetUnitProperty(ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Service", prop)
			if err != nil || v.Value() != want {
				t.Errorf("%s = %v (%v), want %d", prop, v, err, want)
			}
		}
		if r := e.ctl("set-property", "node-a", sandbox.SimpleServiceName, "MemoryMax=lots"); r.code != 1 ||
			r.stderr != "Invalid value 'lots' for MemoryMax: expected a size such as 512M, 1.5G or 4096\n" {
			t.Errorf("bad value: %v", r)
		}
		if r := e.ctl("set-property", "node-z", sandbox.SimpleServiceName, "CPUWeight=5"); r.code != 1 ||
			r.stderr != "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/node_2dz'. (no node named 'node-z')\n" {
			t.Errorf("set-property on an unknown node: %v", r)
		}
	})

	t.Run("default-target", func(t *testing.T) {
		e := c.in(t)
		out, _ := e.systemctlRun("node-b", "get-default")
		if r := e.ctlOK("get-default", "node-b"); r.stdout != out {
			t.Errorf("get-default %q, systemctl %q", r.stdout, out)
		}
		if err := c.nodes["node-b"].WriteUnit("bc-alt.target", "[Unit]\nDescription=alternative default\n"); err != nil {
			t.Fatal(err)
		}
		e.ctlOK("daemon-reload", "node-b")
		r := e.ctlOK("set-default", "node-b", "bc-alt.target")
		if got := c.unitsDir(r.stdout); got != "[(symlink <units>/default.target <units>/bc-alt.target),]\n" {
			t.Errorf("set-default: %q", got)
		}
		if r := e.ctlOK("get-default", "node-b"); r.stdout != "bc-alt.target\n" {
			t.Errorf("get-default after set-default: %v", r)
		}
		if out, _ := e.systemctlRun("node-b", "get-default"); out != "bc-alt.target\n" {
			t.Errorf("systemctl get-default after set-default: %q", out)
		}
		if r := e.ctl("set-default", "node-b", "nope.target"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to issue method call: ") {
			t.Errorf("set-default nope: %v", r)
		}
	})

	t.Run("set-loglevel", func(t *testing.T) {
		e := c.in(t)
		for _, level := range []string{"INFO", "DEBUG"} {
			e.ctlOK("set-loglevel", level)
			if l, err := c.controller().GetLogLevel(ctx); err != nil || l != level {
				t.Errorf("controller LogLevel %q %v, want %s", l, err, level)
			}
			e.ctlOK("set-loglevel", "node-a", level)
			conn, err := c.nodes["node-a"].Connect()
			if err != nil {
				t.Fatal(err)
			}
			l, err := bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath).GetLogLevel(ctx)
			conn.Close()
			if err != nil || l != level {
				t.Errorf("agent LogLevel %q %v, want %s", l, err, level)
			}
		}
		if r := e.ctl("set-loglevel", "node-a", "INF"); r.code != 1 {
			t.Errorf("invalid level: %v", r)
		}
		c.waitStatus("node-a", "online")
	})

	t.Run("completion", func(t *testing.T) {
		e := c.in(t)
		script := filepath.Join(t.TempDir(), "bluechictl.bash")
		if err := os.WriteFile(script, []byte(e.ctlOK("completion", "bash").stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		complete := func(words ...string) string {
			t.Helper()
			prog := fmt.Sprintf("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _bluechictl; echo \"${COMPREPLY[*]}\"",
				script, shellWords(words), len(words)-1)
			cmd := exec.Command("bash", "-c", prog)
			cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "DBUS_SESSION_BUS_ADDRESS="+c.bus.Address, "GORACE=atexit_sleep_ms=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v: %s", err, out)
			}
			got := strings.Fields(string(out))
			sort.Strings(got)
			return strings.Join(got, " ")
		}
		for _, tc := range []struct {
			words []string
			want  string
		}{
			{[]string{"bluechictl", "st"}, "start status stop"},
			{[]string{"bluechictl", "-u", "start", ""}, "node-a node-b"},
			{[]string{"bluechictl", "-u", "start", "node-a", "sb-s"}, "sb-simple.service sb-slow.service"},
			{[]string{"bluechictl", "-u", "enable", "node-a", "sb-simple.service", "sb-o"}, "sb-oneshot.service"},
			{[]string{"bluechictl", "-u", "set-default", "node-b", "bc"}, "bc-alt.target"},
			{[]string{"bluechictl", "kill", "n", "u", "--kill-whom", ""}, "all control main"},
			{[]string{"bluechictl", "metrics", ""}, "disable enable listen"},
			{[]string{"bluechictl", "--wa"}, "--watch"},
			{[]string{"bluechictl", "-u", "set-loglevel", "W"}, "WARN"},
		} {
			if got := complete(tc.words...); got != tc.want {
				t.Errorf("completion of %q: %q, want %q", tc.words, got, tc.want)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		e := c.in(t)
		listen := ctlStartProc(t, ctlToolCmd(c.bus.Address, "bluechictl", "-u", "metrics", "listen"))
		listen.waitContains("Waiting for metrics signals...\n", 0)
		if r := e.ctlOK("metrics", "enable"); r.stdout != "Done\n" {
			t.Errorf("metrics enable: %v", r)
		}
		if r := e.ctl("metrics", "enable"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to issue method call: ") {
			t.Errorf("metrics enable twice: %v", r)
		}
		e.ctlOK("start", "node-b", sandbox.OneshotServiceName)
		e.ctlOK("stop", "node-b", sandbox.SimpleServiceName)
		out := listen.waitFor("metrics lines", func(out string) bool {
			return strings.Contains(out, "[node-b] Agent systemd StartUnit job on sb-oneshot.service net measured time: ") &&
				strings.Contains(out, "[node-b] Agent systemd StopUnit job on sb-simple.service net measured time: ") &&
				strings.Contains(out, "to start unit sb-oneshot.service:\n\tBlueChi job gross measured time: ")
		})
		if !ctlReMetrics.MatchString(out) {
			t.Errorf("metrics output:\n%s", out)
		}
		if r := e.ctlOK("metrics", "disable"); r.stdout != "Done\n" {
			t.Errorf("metrics disable: %v", r)
		}
		if r := e.ctl("metrics", "disable"); r.code != 1 {
			t.Errorf("metrics disable twice: %v", r)
		}
		if code := listen.interrupt(); code != 0 {
			t.Errorf("metrics listen exit %d after SIGINT", code)
		}
	})

	// Last: node-b goes away.
	t.Run("offline", func(t *testing.T) {
		e := c.in(t)
		watch := ctlStartProc(t, ctlToolCmd(c.bus.Address, "bluechictl", "-u", "status", "--watch"))
		first := watch.waitFor("both nodes online", func(out string) bool {
			return strings.Count(out, "| online    |") == 2
		})
		if !strings.HasPrefix(first, "\x1b[2J\x1b[0;0HNODE ") {
			t.Errorf("status -w does not clear the screen first: %q", first)
		}
		stop(agentB)
		out := watch.waitFor("node-b offline", func(out string) bool {
			return strings.Contains(out[len(first):], "\nnode-b                        | offline   |                         | ")
		})
		table := out[strings.LastIndex(out, "\x1b[2J\x1b[0;0H")+len("\x1b[2J\x1b[0;0H"):]
		ctlGolden(t, "status_nodes_offline.golden", ctlNormalizeNodes(table))
		if code := watch.interrupt(); code != 0 {
			t.Errorf("status -w exit %d after SIGINT", code)
		}
		c.waitStatus("node-b", "offline")
		ctlGolden(t, "status_nodes_offline.golden", ctlNormalizeNodes(e.ctlOK("status").stdout))

		if r := e.ctl("start", "node-b", sandbox.SimpleServiceName); r.code != 1 || r.stderr != "Failed to issue method call: Node is offline\n" {
			t.Errorf("start on an offline node: %v", r)
		}
		if r := e.ctl("status", "node-b", sandbox.SimpleServiceName); r.code != 1 ||
			r.stderr != "Failed to get status of unit sb-simple.service on node node-b - Node is offline\n" {
			t.Errorf("status on an offline node: %v", r)
		}
		if r := e.ctl("reset-failed"); r.code != 1 || r.stderr != "Couldn't reset failed state of all units on node 'node-b': Node is offline\n" {
			t.Errorf("reset-failed with an offline node last: %v", r)
		}
		r := e.ctlOK("list-units", "--filter=sb-simple.service")
		if rows := ctlUnitRows(r.stdout); len(rows) != 1 || !strings.HasPrefix(rows[0], "node-a|") {
			t.Errorf("list-units with node-b offline: %v", rows)
		}
		var nodes []map[string]any
		if err := json.Unmarshal([]byte(e.ctlOK("status", "node-b", "--output", "json").stdout), &nodes); err != nil || len(nodes) != 1 ||
			nodes[0]["state"] != "offline" || nodes[0]["ip"] != "" || nodes[0]["last_seen"] == "now" || nodes[0]["last_seen_timestamp"].(float64) <= 0 {
			t.Errorf("status json of an offline node: %v %v", err, nodes)
		}
	})
}

var ctlReMetrics = regexpMust(`\[node-b\] Job /org/eclipse/bluechi/job/\d+ to start unit sb-oneshot.service:\n` +
	`\tBlueChi job gross measured time: \d+\.\dms\n\tUnit net start time \(from properties\): -?\d+\.\dms\n`)

// shellWords quotes words for a bash array literal.
func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// ctlOnTerminal runs bluechictl with stdout on a pseudo-terminal and returns
// what it wrote there.
func ctlOnTerminal(t *testing.T, bus string, args ...string) string {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ctlToolCmd(bus, "bluechictl", args...)
	var errb strings.Builder
	cmd.Stdout, cmd.Stderr = slave, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan string)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		done <- b.String()
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bluechictl %v: %v: %s", args, err, errb.String())
	}
	select {
	case out := <-done:
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output does not end")
		return ""
	}
}

// TestCtlListNodeOrder: list-units and list-unit-files over all nodes
// print the nodes in the controller's order (cli.md §1.3), here the
// configured node-b before node-a, not in name order.
func TestCtlListNodeOrder(t *testing.T) {
	c := newCluster(t, "node-b", "node-a")
	c.startOnline("node-b", "node-a")
	e := c.in(t)
	for _, cmd := range []string{"list-units", "list-unit-files"} {
		r := e.ctlOK(cmd, "--filter=*basic.target") // a unit name, a unit file path
		var nodes []string
		for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")[2:] {
			nodes = append(nodes, strings.TrimSpace(strings.SplitN(l, " | ", 2)[0]))
		}
		if want := []string{"node-b", "node-a"}; !slices.Equal(nodes, want) {
			t.Errorf("%s: nodes %q, want %q:\n%s", cmd, nodes, want, r.stdout)
		}
	}
}
