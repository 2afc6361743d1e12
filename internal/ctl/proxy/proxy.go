// SPDX-License-Identifier: Apache-2.0

// Package proxy implements bluechi-proxy, the helper run by the
// bluechi-proxy@.service template: it asks the local agent to create or
// remove the proxy for a unit on another node and, for create, waits until
// the remote unit is up or has failed.
package proxy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/cliopt"
	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/version"
)

// Prog is the program name.
const Prog = "bluechi-proxy"

// ServicePrefix makes the local proxy unit's name from the argument.
const ServicePrefix = "bluechi-proxy@"

var options = []cliopt.Option{
	{Short: 'h', Long: "help"},
	{Short: 'v', Long: "version"},
	{Short: 'u', Long: "user"},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s [OPTIONS] create|remove <NODE>_<UNIT>

Create or remove the proxy of the local agent for UNIT on node NODE; create
waits until the unit is active there or has failed. Normally run by
bluechi-proxy@.service only.

Options:
  -u, --user       talk to the agent on the session bus
  -h, --help       print this help and exit
  -v, --version    print the version and exit
`, Prog)
}

// Request is one parsed command line.
type Request struct {
	// Method is CreateProxy or RemoveProxy.
	Method string
	// Service is the local proxy unit: bluechi-proxy@<argument>.
	Service    string
	Node, Unit string
	// User selects the session bus.
	User bool
}

// Parse reads the options and arguments. With a nil request, the program
// ends with the code: help and version have been printed (0) or a
// diagnostic (1).
func Parse(args []string, stdout, stderr io.Writer) (*Request, int) {
	r, err := cliopt.Parse(options, args)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", Prog, err)
		usage(stderr)
		return nil, 1
	case r.Has("help"):
		usage(stdout)
		return nil, 0
	case r.Has("version"):
		fmt.Fprintf(stdout, "%s version %s\n", Prog, version.Version)
		return nil, 0
	}
	req, err := request(r.Args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, 1
	}
	req.User = r.Has("user")
	return req, 0
}

// request builds the call from the positional arguments.
func request(args []string) (*Request, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("Not enough arguments specified")
	}
	var method string
	switch strings.ToLower(args[0]) {
	case "create":
		method = bluechi.AgentMethodCreateProxy
	case "remove":
		method = bluechi.AgentMethodRemoveProxy
	default:
		return nil, fmt.Errorf("Unsupported command %s", args[0])
	}
	node, unit, err := SplitTarget(args[1])
	if err != nil {
		return nil, err
	}
	return &Request{Method: method, Service: ServicePrefix + args[1], Node: node, Unit: unit}, nil
}

// SplitTarget splits "<NODE>_<UNIT>" at the first underscore; both parts
// must be non-empty.
func SplitTarget(arg string) (node, unit string, err error) {
	node, unit, ok := strings.Cut(arg, "_")
	if !ok || node == "" || unit == "" {
		return "", "", fmt.Errorf("Invalid argument '%s': expected <NODE>_<UNIT>", arg)
	}
	return node, unit, nil
}

// Failure is the message printed when the agent answers err.
func (req *Request) Failure(err error) string {
	if dbusrt.ErrorName(err) == bluechi.ErrorNameActivationFailed {
		return fmt.Sprintf("Failed to activate %s (on %s): %s", req.Service, req.Node, errorText(err))
	}
	return fmt.Sprintf("Failed to call %s: %s", req.Method, errorText(err))
}

// errorText is a D-Bus error's message, or the error itself.
func errorText(err error) string {
	if msg := dbusrt.ErrorMessage(err); msg != "" {
		return msg
	}
	return err.Error()
}

// Call sends the request to the agent. It has no timeout: CreateProxy is
// answered only when the remote unit is up or failed.
func (req *Request) Call(ctx context.Context, c *bluechi.AgentClient) error {
	if req.Method == bluechi.AgentMethodCreateProxy {
		return c.CreateProxy(ctx, req.Service, req.Node, req.Unit)
	}
	return c.RemoveProxy(ctx, req.Service, req.Node, req.Unit)
}

// AgentGoneWait bounds how long, after a CreateProxy failed for another
// reason than ActivationFailed, the agent's bus name is watched for the
// agent leaving: an agent that stops fails its pending calls just before
// it drops its name.
const AgentGoneWait = 5 * time.Second

// SuccessorWait bounds the wait for a new agent after the one asked went
// away (an agent restart; the user unit restarts after 2 s).
const SuccessorWait = 60 * time.Second

// agentWatch follows the owner of the agent's bus name.
type agentWatch struct {
	mu      sync.Mutex
	owner   string        // "" while nobody owns the name
	changed chan struct{} // closed and replaced on every change
}

func (w *agentWatch) set(owner string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if owner != w.owner {
		w.owner = owner
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// get returns the owner and a channel closed at its next change.
func (w *agentWatch) get() (string, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.owner, w.changed
}

// await waits up to d for an owner for which ok holds.
func (w *agentWatch) await(ctx context.Context, d time.Duration, ok func(string) bool) (string, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		owner, ch := w.get()
		if ok(owner) {
			return owner, true
		}
		select {
		case <-ch:
		case <-t.C:
			return "", false
		case <-ctx.Done():
			return "", false
		}
	}
}

// watchAgent starts following the agent's bus name.
func watchAgent(ctx context.Context, conn *dbus.Conn) (*agentWatch, *dbusrt.Subscription, error) {
	w := &agentWatch{changed: make(chan struct{})}
	sub, err := dbusrt.WatchNameOwner(ctx, conn, bluechi.AgentBusName, func(c dbusrt.OwnerChange) { w.set(c.NewOwner) })
	if err != nil {
		return nil, nil, err
	}
	// Asked after the match is in place: no change is missed.
	if owner, err := dbusrt.NameOwner(ctx, conn, bluechi.AgentBusName); err == nil {
		w.set(owner)
	}
	return w, sub, nil
}

// create asks the agent for the proxy. When the agent goes away while the
// call is pending (it is restarted), the call is made again to the agent
// that takes the name next: the proxy unit survives the restart.
func (req *Request) create(ctx context.Context, conn *dbus.Conn, stderr io.Writer) error {
	w, sub, err := watchAgent(ctx, conn)
	if err != nil {
		return err
	}
	defer sub.Close()
	owner, _ := w.get()
	absent := owner == "" // no agent on the bus yet
	if absent {
		owner = bluechi.AgentBusName // fails with the bus's own error
	}
	for {
		err := req.Call(ctx, bluechi.NewAgentClient(conn, owner, bluechi.AgentPath))
		if err == nil || !agentMayBeGone(err) || ctx.Err() != nil {
			return err
		}
		if _, gone := w.await(ctx, AgentGoneWait, func(o string) bool { return o != owner }); !gone {
			return err
		}
		if absent {
			fmt.Fprintf(stderr, "%s: no agent on the bus (%s); waiting for one\n", Prog, errorText(err))
			absent = false
		} else {
			fmt.Fprintf(stderr, "%s: the agent went away (%s); asking the next one\n", Prog, errorText(err))
		}
		next, ok := w.await(ctx, SuccessorWait, func(o string) bool { return o != "" && o != owner })
		if !ok {
			return err
		}
		owner = next
	}
}

// agentMayBeGone reports whether err is what a caller gets from an agent
// that stops (Failed, from its shutdown) or from the bus after it left.
func agentMayBeGone(err error) bool {
	switch dbusrt.ErrorName(err) {
	case dbusrt.ErrFailed, dbusrt.ErrNoReply, dbusrt.ErrServiceUnknown, "org.freedesktop.DBus.Error.NameHasNoOwner":
		return true
	}
	return false
}

// Main runs bluechi-proxy and returns its exit status.
func Main(ctx context.Context, env cmdline.Env) int {
	req, code := Parse(env.Args, env.Stdout, env.Stderr)
	if req == nil {
		return code
	}
	conn, err := env.Connect(req.User)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Failed to connect to bus: %v\n", err)
		return 1
	}
	defer conn.Close()
	if req.Method == bluechi.AgentMethodCreateProxy {
		err = req.create(ctx, conn, env.Stderr)
	} else {
		err = req.Call(ctx, bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath))
		if dbusrt.ErrorName(err) == dbusrt.ErrServiceUnknown {
			// No agent: a stopped agent holds no proxies, there is
			// nothing to remove.
			err = nil
		}
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, req.Failure(err))
		return 1
	}
	return 0
}
