// SPDX-License-Identifier: Apache-2.0

package isonline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/version"
)

// Prog is the program name.
const Prog = "bluechi-is-online"

var options = []cliopt.Option{
	{Short: 'h', Long: "help"},
	{Short: 'v', Long: "version"},
	{Long: "monitor"},
	{Long: "wait", HasArg: true},
	{Long: "switch-timeout", HasArg: true},
	{Short: 'u', Long: "user"},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s [OPTIONS] COMMAND [ARGS...]

Tell whether a BlueChi component is online: exit 0 when it is, else print
"<bus name> is offline" on stderr and exit 1.

Commands:
  agent                 the local bluechi-agent is connected to its controller
  node NAME             node NAME is connected to the local controller
  system                every node is connected to the local controller (status "up")
  help                  show this help
  version               show the version

Options:
  --wait=MS             wait up to MS milliseconds for the component to come online
  --monitor             keep running while online; exit 1 as soon as it goes offline
  --switch-timeout=MS   (agent) tolerate the disconnect of a controller switch for MS milliseconds
  -u, --user            use the session bus instead of the system bus
  -h, --help            show this help
  -v, --version         show the version

Exit status:
  0   online
  1   offline, or bad usage, or no bus to ask
  2   access denied: the bus refused to show the status (its policy lets
      root only call the agent and the controller)
`, Prog)
}

func spec(prog string) *cmdline.Spec {
	check := []string{"monitor", "wait"}
	return &cmdline.Spec{
		Prog:    prog,
		Options: options,
		Global:  []string{"user"},
		Methods: []*cmdline.Method{
			{Name: "help", Usage: usage},
			{Name: "version", Usage: usage},
			{Name: "agent", Min: 0, Max: 2, Options: append(check, "switch-timeout"), Usage: usage},
			{Name: "node", Min: 1, Max: 3, Options: check, Usage: usage},
			{Name: "system", Min: 0, Max: 2, Options: check, Usage: usage},
		},
		Usage:   usage,
		Version: func(w io.Writer) { fmt.Fprintf(w, "%s version %s\n", Prog, version.Version) },
	}
}

// target is the component a check is about.
type target struct {
	busName string
	status  func(ctx context.Context) (string, error)
	watch   func(ctx context.Context, fn func(*bluechi.PropertiesChanged)) (*bluechi.Subscription, error)
	online  string
}

func targetFor(conn *dbus.Conn, method string, args []string) target {
	switch method {
	case "agent":
		c := bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath)
		return target{bluechi.AgentBusName, c.GetStatus, watch(conn, c.Destination(), c.Path(), bluechi.AgentInterface), "online"}
	case "node":
		c := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath(args[0]))
		return target{bluechi.NodeBusName, c.GetStatus, watch(conn, c.Destination(), c.Path(), bluechi.NodeInterface), "online"}
	default:
		c := bluechi.NewControllerClient(conn, bluechi.ControllerBusName, bluechi.ControllerPath)
		return target{bluechi.ControllerBusName, c.GetStatus, watch(conn, c.Destination(), c.Path(), bluechi.ControllerInterface), "up"}
	}
}

// watch subscribes to PropertiesChanged of iface on the object a client
// calls; the three targets share the handler.
func watch(conn *dbus.Conn, dest string, path dbus.ObjectPath, iface string) func(context.Context, func(*bluechi.PropertiesChanged)) (*bluechi.Subscription, error) {
	return func(ctx context.Context, fn func(*bluechi.PropertiesChanged)) (*bluechi.Subscription, error) {
		return bluechi.SubscribePropertiesChanged(ctx, conn, dest, path, iface, fn)
	}
}

// millis parses a millisecond option: "" is 0, anything not an integer fails.
func millis(r *cliopt.Result, name string) (time.Duration, error) {
	v, _ := r.Value(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > int64(time.Duration(1<<62)/time.Millisecond) {
		return 0, fmt.Errorf("Failed to parse --%s: Invalid argument", name)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// Main runs bluechi-is-online and returns its exit status.
func Main(ctx context.Context, env cmdline.Env) int {
	inv, code := spec(env.Prog).Parse(env.Args, env.Stdout, env.Stderr)
	if inv == nil {
		return code
	}
	switch inv.Method.Name {
	case "help":
		usage(env.Stdout)
		return 0
	case "version":
		fmt.Fprintf(env.Stdout, "%s version %s\n", Prog, version.Version)
		return 0
	}
	var opts Options
	var err error
	if opts.Wait, err = millis(inv.Opts, "wait"); err == nil {
		opts.SwitchTimeout, err = millis(inv.Opts, "switch-timeout")
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	opts.Monitor = inv.Opts.Has("monitor")
	conn, err := env.Connect(inv.Opts.Has("user"))
	if err != nil {
		fmt.Fprintf(env.Stderr, "Failed to connect to api bus: %v\n", err)
		return 1
	}
	defer conn.Close()
	t := targetFor(conn, inv.Method.Name, inv.Args)
	if env.Interruptible != nil {
		var cancel context.CancelFunc
		ctx, cancel = env.Interruptible(ctx)
		defer cancel()
	}
	online, err := check(ctx, conn, t, opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Access denied: cannot read the status of %s: %v\n", t.busName, err)
		return ExitAccessDenied
	}
	if online {
		return 0
	}
	fmt.Fprintf(env.Stderr, "%s is offline\n", t.busName)
	return 1
}

// ExitAccessDenied is the exit status when the bus refuses to let the
// caller read the component's status (its D-Bus policy allows root only),
// which says nothing about whether the component is online.
const ExitAccessDenied = 2

// accessDenied returns the bus's message when err is its AccessDenied
// error (the generated client returns replies as *bluechi.Error), else nil.
func accessDenied(err error) error {
	var e *bluechi.Error
	if !errors.Is(err, bluechi.ErrAccessDenied) || !errors.As(err, &e) {
		return nil
	}
	if e.Message == "" {
		return err
	}
	return errors.New(e.Message)
}

type eventKind int

const (
	statusEvent eventKind = iota
	ownerEvent
	addressEvent
)

type event struct {
	kind   eventKind
	online bool
	owner  string
}

// check runs the algorithm of one check and reports whether the component
// is online at its end, or the bus's AccessDenied error when the first
// look at its status was refused.
func check(ctx context.Context, conn *dbus.Conn, t target, opts Options) (bool, error) {
	m := &Machine{Options: opts}
	needWatch := opts.Monitor || opts.Wait > 0
	events := make(chan event, 64)
	send := func(e event) {
		select {
		case events <- e:
		case <-ctx.Done():
		}
	}
	// Subscribe before the first look, so no change between the look and
	// the subscription is missed; queued events are applied in order after.
	if needWatch {
		if sub, err := t.watch(ctx, func(p *bluechi.PropertiesChanged) {
			if _, ok := p.Changed[bluechi.AgentPropertyControllerAddress]; ok {
				send(event{kind: addressEvent})
			}
			// Agent, Node and Controller all call it Status.
			if v, ok := p.Changed[bluechi.AgentPropertyStatus]; ok {
				s, _ := v.Value().(string)
				send(event{kind: statusEvent, online: s == t.online})
			}
		}); err == nil {
			defer sub.Close()
		}
		if sub, err := dbusrt.WatchNameOwner(ctx, conn, t.busName, func(c dbusrt.OwnerChange) {
			send(event{kind: ownerEvent, owner: c.NewOwner})
		}); err == nil {
			defer sub.Close()
		}
	}
	if _, err := dbusrt.NameOwner(ctx, conn, t.busName); err == nil {
		m.HasName = true
		s, err := t.status(ctx)
		if err := accessDenied(err); err != nil {
			return false, err
		}
		m.Connected = err == nil && s == t.online
	}
	if !m.NeedsLoop() {
		return m.Online(), nil
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	arm := func(d time.Duration) {
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		timer.Reset(d)
	}
	if opts.Wait > 0 {
		arm(opts.Wait)
	}
	for {
		select {
		case <-ctx.Done():
			return m.Online(), nil
		case <-timer.C:
			if m.TimerFired() {
				return m.Online(), nil
			}
		case e := <-events:
			switch e.kind {
			case statusEvent:
				if m.StatusChanged(e.online) {
					return m.Online(), nil
				}
			case ownerEvent:
				if m.OwnerChanged(e.owner) {
					return m.Online(), nil
				}
			case addressEvent:
				if d := m.ControllerAddressChanged(); d > 0 {
					arm(d)
				}
			}
		}
	}
}
