// SPDX-License-Identifier: Apache-2.0

// Package bluechictl implements the bluechictl command: the administrator's
// command line for a BlueChi cluster, built on the generated client proxies.
// Default output, exit codes and option handling follow upstream's tool;
// -u/--user, -o/--output json, set-property, completion and the progress
// indicator are additions that never change the default output.
package bluechictl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/version"
)

// Prog is the program name.
const Prog = "bluechictl"

// CallTimeout bounds every single D-Bus call (the controller itself gives
// up on a node after 30 s).
var CallTimeout = 60 * time.Second

// ProgressDelay is how long a lifecycle command waits quietly before it
// shows the progress indicator on a terminal.
var ProgressDelay = time.Second

var options = []cliopt.Option{
	{Short: 'h', Long: "help"},
	{Short: 'v', Long: "version"},
	{Long: "filter", HasArg: true},
	{Short: 'f', Long: "force"},
	{Long: "runtime"},
	{Long: "no-reload"},
	{Short: 'w', Long: "watch"},
	{Long: "kill-whom", HasArg: true},
	{Long: "signal", HasArg: true},
	{Short: 'u', Long: "user"},
	{Short: 'o', Long: "output", HasArg: true},
}

// optionHelp documents each option for the usage texts.
var optionHelp = map[string]string{
	"help":      "-h, --help              show this help",
	"version":   "-v, --version           show the version",
	"user":      "-u, --user              talk to the controller on the session bus, not the system bus",
	"filter":    "    --filter=GLOB       only rows whose unit name (list-units) or unit file path\n                        (list-unit-files) matches GLOB; only * and ? are special",
	"force":     "-f, --force             replace symlinks that are in the way",
	"runtime":   "    --runtime           only until the next reboot (below /run)",
	"no-reload": "    --no-reload         no daemon-reload of the node afterwards",
	"watch":     "-w, --watch             keep the output up to date until interrupted",
	"kill-whom": "    --kill-whom=WHO     processes to signal: all (default), main or control",
	"signal":    "    --signal=N          signal number, 1 to 31 (default 15, SIGTERM)",
	"output":    "-o, --output=FORMAT     table (default) or json",
}

// command is one bluechictl command.
type command struct {
	name     string
	synopsis string // arguments and options, after the command name
	summary  string // one line for the global usage
	help     string // paragraph for the command usage
	min, max int
	opts     []string
	run      func(a *app) int
}

var commands []*command

func init() {
	commands = []*command{
		{name: "help", summary: "show this help", help: "Show the list of commands and options.", run: runHelp},
		{name: "version", summary: "show the version", help: "Show the version of bluechictl.", run: runVersion},
		{name: "list-units", synopsis: "[NODE] [--filter=GLOB]", max: 1, opts: []string{"filter", "output"},
			summary: "list the loaded units of every node, or of NODE",
			help:    "List the units systemd has loaded on every online node, or on NODE, with their\nactive and sub states.", run: runListUnits},
		{name: "list-unit-files", synopsis: "[NODE] [--filter=GLOB]", max: 1, opts: []string{"filter", "output"},
			summary: "list the unit files of every node, or of NODE",
			help:    "List the unit files of every online node, or of NODE, with their enablement state.", run: runListUnitFiles},
		{name: "start", synopsis: "NODE UNIT", min: 2, max: 2, summary: "start UNIT on NODE and wait for the result",
			help: "Start UNIT on NODE, wait until the job ends and print its result.", run: lifecycle("StartUnit")},
		{name: "stop", synopsis: "NODE UNIT", min: 2, max: 2, summary: "stop UNIT on NODE and wait for the result",
			help: "Stop UNIT on NODE, wait until the job ends and print its result.", run: lifecycle("StopUnit")},
		{name: "restart", synopsis: "NODE UNIT", min: 2, max: 2, summary: "restart UNIT on NODE and wait for the result",
			help: "Restart UNIT on NODE, wait until the job ends and print its result.", run: lifecycle("RestartUnit")},
		{name: "reload", synopsis: "NODE UNIT", min: 2, max: 2, summary: "reload UNIT on NODE and wait for the result",
			help: "Reload the configuration of UNIT on NODE, wait until the job ends and print its result.", run: lifecycle("ReloadUnit")},
		{name: "freeze", synopsis: "NODE UNIT", min: 2, max: 2, summary: "suspend the processes of UNIT on NODE",
			help: "Suspend every process of UNIT on NODE with the cgroup freezer.", run: runFreeze},
		{name: "thaw", synopsis: "NODE UNIT", min: 2, max: 2, summary: "resume the processes of a frozen UNIT",
			help: "Resume the processes of UNIT on NODE after a freeze.", run: runThaw},
		{name: "kill", synopsis: "NODE UNIT [--kill-whom=WHO] [--signal=N]", min: 2, max: 2, opts: []string{"kill-whom", "signal"},
			summary: "send a signal to the processes of UNIT",
			help:    "Send a signal to the processes of UNIT on NODE.", run: runKill},
		{name: "reset-failed", synopsis: "[NODE [UNIT...]]", max: cmdline.Any, summary: "reset the failed state of units",
			help: "Reset the failed state of all units of every node, of all units of NODE, or of\nthe given units of NODE.", run: runResetFailed},
		{name: "enable", synopsis: "NODE FILE... [--force] [--runtime] [--no-reload]", min: 2, max: cmdline.Any,
			opts: []string{"force", "runtime", "no-reload"}, summary: "enable unit files on NODE",
			help: "Enable unit files on NODE, then reload its systemd.", run: runEnable},
		{name: "disable", synopsis: "NODE FILE... [--no-reload]", min: 2, max: cmdline.Any, opts: []string{"no-reload"},
			summary: "disable unit files on NODE", help: "Disable unit files on NODE, then reload its systemd.", run: runDisable},
		{name: "is-enabled", synopsis: "NODE FILE", min: 2, max: 2, summary: "print the enablement state of a unit file",
			help: "Print the enablement state of FILE on NODE; exit 0 when it is enabled,\nenabled-runtime, static, alias, indirect or generated, else 1.", run: runIsEnabled},
		{name: "daemon-reload", synopsis: "NODE", min: 1, max: 1, summary: "reload the systemd configuration of NODE",
			help: "Make systemd on NODE reload its unit files.", run: runDaemonReload},
		{name: "set-property", synopsis: "NODE UNIT PROPERTY=VALUE... [--runtime]", min: 3, max: cmdline.Any, opts: []string{"runtime"},
			summary: "change resource-control properties of UNIT at run time",
			help:    "Set unit properties on NODE as systemctl set-property does, with its value\nsyntax (sizes like 512M, percentages, CPU lists like 0-3). Supported properties:\n" + wrap(propertyNames(), 78), run: runSetProperty},
		{name: "status", synopsis: "[NODE [UNIT...]] [--watch]", max: cmdline.Any, opts: []string{"watch", "output"},
			summary: "show the nodes, or the state of units on NODE",
			help:    "Without UNIT, show the connection state of every node (or of NODE);\nwith UNITs, show their load, active, sub, freezer and enablement states.", run: runStatus},
		{name: "monitor", synopsis: "[NODE [UNIT[,UNIT...]]]", max: 2, summary: "print unit events as they happen",
			help: "Print the events of units on NODE (default: every node, '*') as they happen,\nfor the comma-separated UNITs (default: every unit, '*'), until interrupted.", run: runMonitor},
		{name: "metrics", synopsis: "enable|disable|listen", min: 1, max: 1, summary: "switch job metrics on or off, or print them",
			help: "enable or disable the collection of job metrics, or listen and print them\nuntil interrupted.", run: runMetrics},
		{name: "get-default", synopsis: "NODE", min: 1, max: 1, summary: "print the default target of NODE",
			help: "Print the default target of NODE.", run: runGetDefault},
		{name: "set-default", synopsis: "NODE TARGET", min: 2, max: 2, summary: "set the default target of NODE",
			help: "Make TARGET the default target of NODE.", run: runSetDefault},
		{name: "set-loglevel", synopsis: "[NODE] LEVEL", min: 1, max: 2, summary: "set the log level of the controller or of NODE's agent",
			help: "Set the log level (DEBUG, INFO, WARN or ERROR) of the controller, or of the\nagent of NODE.", run: runSetLogLevel},
		{name: "completion", synopsis: "bash | fish | nodes | units NODE", min: 1, max: 2, summary: "print the bash or fish completion script or completion words",
			help: "completion bash prints a bash completion script; install it with e.g.\n  bluechictl completion bash > /etc/bash_completion.d/bluechictl\nor load it with: source <(bluechictl completion bash).\ncompletion fish prints the fish one (load it with: bluechictl completion fish | source).\ncompletion nodes and completion units NODE print the words it offers.", run: runCompletion},
	}
}

func propertyNames() []string { return unitpropNames() }

// wrap joins words into indented lines of at most width columns.
func wrap(words []string, width int) string {
	var b strings.Builder
	line := " "
	for _, w := range words {
		if len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = " "
		}
		line += " " + w
	}
	b.WriteString(line)
	return b.String()
}

func usage(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [OPTIONS] COMMAND [ARGS...]\n\n", Prog)
	b.WriteString("Manage the systemd units of the nodes of a BlueChi cluster through\nbluechi-controller.\n\nCommands:\n")
	for _, c := range commands {
		left := c.name
		if c.synopsis != "" {
			left += " " + strings.SplitN(c.synopsis, " [--", 2)[0]
		}
		fmt.Fprintf(&b, "  %-40s %s\n", left, c.summary)
	}
	b.WriteString("\nOptions:\n")
	for _, o := range []string{"help", "version", "user", "output", "filter", "force", "runtime", "no-reload", "watch", "kill-whom", "signal"} {
		fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(optionHelp[o], "\n", "\n  "))
	}
	fmt.Fprintf(&b, "\nRun '%s COMMAND --help' for the details of a command.\n", Prog)
	io.WriteString(w, b.String())
}

func (c *command) usage(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s %s", Prog, c.name)
	if c.synopsis != "" {
		b.WriteString(" " + c.synopsis)
	}
	b.WriteString("\n\n" + c.help + "\n\nOptions:\n")
	for _, o := range append([]string{"help", "user"}, c.opts...) {
		fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(optionHelp[o], "\n", "\n  "))
	}
	io.WriteString(w, b.String())
}

func spec(prog string) *cmdline.Spec {
	s := &cmdline.Spec{Prog: prog, Options: options, Global: []string{"user"}, Usage: usage,
		Version: func(w io.Writer) { fmt.Fprintf(w, "%s version %s\n", Prog, version.Version) }}
	for _, c := range commands {
		s.Methods = append(s.Methods, &cmdline.Method{Name: c.name, Min: c.min, Max: c.max, Options: c.opts, Usage: c.usage})
	}
	return s
}

// app is one run of a command.
type app struct {
	env  cmdline.Env
	ctx  context.Context
	cmd  *command
	args []string
	opts *cliopt.Result
	conn *dbus.Conn
	json bool
}

// Main runs bluechictl and returns its exit status.
func Main(ctx context.Context, env cmdline.Env) int {
	inv, code := spec(env.Prog).Parse(env.Args, env.Stdout, env.Stderr)
	if inv == nil {
		return code
	}
	a := &app{env: env, ctx: ctx, args: inv.Args, opts: inv.Opts}
	for _, c := range commands {
		if c.name == inv.Method.Name {
			a.cmd = c
		}
	}
	if v, ok := a.opts.Value("output"); ok {
		switch v {
		case "table":
		case "json":
			a.json = true
		default:
			a.errorf("Value '%s' of option --output is invalid", v)
			return 1
		}
	}
	defer func() {
		if a.conn != nil {
			a.conn.Close()
		}
	}()
	return a.cmd.run(a)
}

func runHelp(a *app) int {
	usage(a.env.Stdout)
	return 0
}

// errorf prints one line to stderr.
func (a *app) errorf(format string, args ...any) {
	fmt.Fprintf(a.env.Stderr, format+"\n", args...)
}

// printf writes to stdout.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.env.Stdout, format, args...)
}

// bus connects on first use; nil after reporting a failure.
func (a *app) bus() *dbus.Conn {
	if a.conn == nil {
		conn, err := a.env.Connect(a.opts.Has("user"))
		if err != nil {
			a.errorf("Failed to connect to bus: %v", err)
			return nil
		}
		a.conn = conn
	}
	return a.conn
}

func (a *app) controller() *bluechi.ControllerClient {
	return bluechi.NewControllerClient(a.conn, bluechi.ControllerBusName, bluechi.ControllerPath)
}

func (a *app) node(name string) *bluechi.NodeClient {
	return bluechi.NewNodeClient(a.conn, bluechi.NodeBusName, bluechi.NodePath(name))
}

// call runs one D-Bus call with the call timeout.
func (a *app) call(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(a.ctx, CallTimeout)
	defer cancel()
	return shortAccessDenied(fn(ctx))
}

// accessDeniedName is the error dbus-daemon answers a call its policy
// refuses with; its message lists the matched rules and both peers.
const accessDeniedName = "org.freedesktop.DBus.Error.AccessDenied"

// shortAccessDenied replaces the bus's refusal of a call (the installed
// policy lets only root call the controller) by a one-line message.
func shortAccessDenied(err error) error {
	if err == nil || dbusrt.ErrorName(err) != accessDeniedName {
		return err
	}
	return dbus.Error{Name: accessDeniedName, Body: []any{"Access denied by the D-Bus policy of " + bluechi.ControllerBusName + " (only root may call it)"}}
}

// message is the D-Bus error message of err. Node objects exist for every
// configured node, so an unknown object on a node path means the node name
// is unknown: that is said in addition.
func message(err error, node string) string {
	msg := dbusrt.ErrorMessage(err)
	if node != "" && dbusrt.ErrorName(err) == dbusrt.ErrUnknownObject {
		msg += fmt.Sprintf(" (no node named '%s')", node)
	}
	return msg
}

// interruptible returns the context to run until SIGINT/SIGTERM.
func (a *app) interruptible() (context.Context, context.CancelFunc) {
	if a.env.Interruptible == nil {
		return context.WithCancel(a.ctx)
	}
	return a.env.Interruptible(a.ctx)
}

// writeJSON prints v indented, or on one line when compact.
func (a *app) writeJSON(v any, compact bool) {
	var data []byte
	if compact {
		data, _ = json.Marshal(v)
	} else {
		data, _ = json.MarshalIndent(v, "", "  ")
	}
	a.env.Stdout.Write(append(data, '\n'))
}

// capitalize upper-cases the first letter of an error text.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
