// SPDX-License-Identifier: Apache-2.0

package proxy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/syncbuf"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/version"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args   []string
		want   *Request
		code   int
		stdout string
		stderr string // prefix
	}{
		{[]string{"create", "node-bar_simple.service"}, &Request{Method: "CreateProxy", Service: "bluechi-proxy@node-bar_simple.service", Node: "node-bar", Unit: "simple.service"}, 0, "", ""},
		{[]string{"-u", "ReMoVe", "n_a_b.service"}, &Request{Method: "RemoveProxy", Service: "bluechi-proxy@n_a_b.service", Node: "n", Unit: "a_b.service", User: true}, 0, "", ""},
		{[]string{"create", "x.service", "--user"}, nil, 1, "", "Invalid argument 'x.service'"},
		{[]string{"create", "_x.service"}, nil, 1, "", "Invalid argument '_x.service'"},
		{[]string{"create", "node_"}, nil, 1, "", "Invalid argument 'node_'"},
		{[]string{"create"}, nil, 1, "", "Not enough arguments specified\n"},
		{nil, nil, 1, "", "Not enough arguments specified\n"},
		{[]string{"start", "n_a.service"}, nil, 1, "", "Unsupported command start\n"},
		{[]string{"-v"}, nil, 0, "bluechi-proxy version " + version.Version + "\n", ""},
		{[]string{"--version"}, nil, 0, "bluechi-proxy version " + version.Version + "\n", ""},
		{[]string{"-Q"}, nil, 1, "", "bluechi-proxy: invalid option -- 'Q'\nUsage"},
		{[]string{"--QWERTY"}, nil, 1, "", "bluechi-proxy: unrecognized option '--QWERTY'\nUsage"},
	} {
		var out, errb strings.Builder
		got, code := Parse(c.args, &out, &errb)
		if code != c.code || out.String() != c.stdout || !strings.HasPrefix(errb.String(), c.stderr) || (c.stderr == "") != (errb.Len() == 0) {
			t.Errorf("%q: code %d stdout %q stderr %q", c.args, code, out.String(), errb.String())
		}
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("%q: request %+v, want %+v", c.args, got, c.want)
		}
	}
	var h1, h2, e strings.Builder
	if _, code := Parse([]string{"-h"}, &h1, &e); code != 0 || !strings.HasPrefix(h1.String(), "Usage: bluechi-proxy") {
		t.Errorf("-h: %d %q", code, h1.String())
	}
	if Parse([]string{"--help"}, &h2, &e); h1.String() != h2.String() || e.Len() != 0 {
		t.Errorf("--help differs from -h or wrote to stderr: %q", h2.String())
	}
}

func TestFailure(t *testing.T) {
	req := &Request{Method: "CreateProxy", Service: "bluechi-proxy@n2_a.service", Node: "n2", Unit: "a.service"}
	err := dbus.NewError(bluechi.ErrorNameActivationFailed, []any{"No such node"})
	if got, want := req.Failure(err), "Failed to activate bluechi-proxy@n2_a.service (on n2): No such node"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	err = dbus.NewError(dbusrt.ErrFailed, []any{"Proxy service stopped"})
	if got, want := req.Failure(err), "Failed to call CreateProxy: Proxy service stopped"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// fakeAgent answers CreateProxy with the error the unit name asks for and
// records the calls.
type fakeAgent struct {
	daemonapi.UnimplementedAgentServer
	calls chan string
}

func (f *fakeAgent) CreateProxy(ctx context.Context, service, node, unit string) error {
	f.calls <- strings.Join([]string{"create", service, node, unit}, " ")
	switch unit {
	case "fail.service":
		return dbusrt.NewError(bluechi.ErrorNameActivationFailed, "Target unit failed")
	case "dup.service":
		return dbusrt.NewError(dbusrt.ErrAddressInUse, "Proxy already exists")
	}
	return nil
}

func (f *fakeAgent) RemoveProxy(ctx context.Context, service, node, unit string) error {
	f.calls <- strings.Join([]string{"remove", service, node, unit}, " ")
	return nil
}

// serveAgent puts srv on the bus at address as the agent (its object, its
// name) on a connection closed when the test ends.
func serveAgent(t *testing.T, address string, srv daemonapi.AgentServer) *dbus.Conn {
	t.Helper()
	conn, _, err := dbusrt.ConnectBus(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := daemonapi.ExportAgent(conn, bluechi.AgentPath, srv, bluechi.AgentProperties{}); err != nil {
		t.Fatal(err)
	}
	if err := dbusrt.RequestName(conn, bluechi.AgentBusName); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitCreated waits until `create n2_a.service` exited 0 (its code comes on
// done) and checks that agent was asked for the proxy.
func waitCreated(t *testing.T, done <-chan int, stderr fmt.Stringer, agent *fakeAgent) {
	t.Helper()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bluechi-proxy did not finish")
	}
	if c := <-agent.calls; c != "create bluechi-proxy@n2_a.service n2 a.service" {
		t.Fatalf("agent got %q", c)
	}
}

// TestMainCalls runs the command against a fake agent on a private bus.
func TestMainCalls(t *testing.T) {
	bus := testbus.Start(t)
	fa := &fakeAgent{calls: make(chan string, 4)}
	serveAgent(t, bus.Address, fa)
	run := func(args ...string) (int, string, string) {
		var out, errb strings.Builder
		var user bool
		code := Main(context.Background(), cmdline.Env{Prog: Prog, Args: args, Stdout: &out, Stderr: &errb,
			Connect: func(u bool) (*dbus.Conn, error) {
				user = u
				c, _, err := dbusrt.ConnectBus(bus.Address)
				return c, err
			}})
		if !user {
			t.Errorf("%q: system bus used", args)
		}
		call := ""
		select {
		case call = <-fa.calls:
		default:
		}
		return code, errb.String(), call
	}
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
		call   string
	}{
		{[]string{"-u", "create", "n2_a.service"}, 0, "", "create bluechi-proxy@n2_a.service n2 a.service"},
		{[]string{"--user", "remove", "n2_a.service"}, 0, "", "remove bluechi-proxy@n2_a.service n2 a.service"},
		{[]string{"-u", "create", "n2_fail.service"}, 1, "Failed to activate bluechi-proxy@n2_fail.service (on n2): Target unit failed\n", "create bluechi-proxy@n2_fail.service n2 fail.service"},
		{[]string{"-u", "create", "n2_dup.service"}, 1, "Failed to call CreateProxy: Proxy already exists\n", "create bluechi-proxy@n2_dup.service n2 dup.service"},
	} {
		code, stderr, call := run(c.args...)
		if code != c.code || stderr != c.stderr || call != c.call {
			t.Errorf("%q: code %d stderr %q call %q", c.args, code, stderr, call)
		}
	}
}

// blockingAgent keeps every CreateProxy pending until its connection ends.
type blockingAgent struct {
	daemonapi.UnimplementedAgentServer
	calls chan string
}

func (f *blockingAgent) CreateProxy(ctx context.Context, service, node, unit string) error {
	f.calls <- "create " + unit
	<-ctx.Done()
	return dbusrt.NewError(dbusrt.ErrFailed, "Proxy service stopped")
}

// TestCreateAcrossAgentRestart: the agent asked goes away while the call
// is pending; bluechi-proxy asks the agent that takes the name next.
func TestCreateAcrossAgentRestart(t *testing.T) {
	bus := testbus.Start(t)
	first := &blockingAgent{calls: make(chan string, 1)}
	firstConn := serveAgent(t, bus.Address, first)
	var errb strings.Builder
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), cmdline.Env{Prog: Prog, Args: []string{"-u", "create", "n2_a.service"}, Stdout: io.Discard, Stderr: &errb,
			Connect: func(bool) (*dbus.Conn, error) { c, _, err := dbusrt.ConnectBus(bus.Address); return c, err }})
	}()
	select {
	case <-first.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("first agent not asked")
	}
	firstConn.Close()
	second := &fakeAgent{calls: make(chan string, 1)}
	serveAgent(t, bus.Address, second)
	waitCreated(t, done, &errb, second)
	if !strings.Contains(errb.String(), "the agent went away") {
		t.Errorf("stderr %q", errb.String())
	}
}

// TestCreateWaitsForAgent: with no agent on the bus yet, bluechi-proxy says
// so and asks the agent that takes the name.
func TestCreateWaitsForAgent(t *testing.T) {
	bus := testbus.Start(t)
	var errb syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), cmdline.Env{Prog: Prog, Args: []string{"-u", "create", "n2_a.service"}, Stdout: io.Discard, Stderr: &errb,
			Connect: func(bool) (*dbus.Conn, error) { c, _, err := dbusrt.ConnectBus(bus.Address); return c, err }})
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errb.String(), "no agent on the bus"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr %q", errb.String())
		}
	}
	agent := &fakeAgent{calls: make(chan string, 1)}
	serveAgent(t, bus.Address, agent)
	waitCreated(t, done, &errb, agent)
	if strings.Contains(errb.String(), "went away") {
		t.Errorf("stderr %q", errb.String())
	}
}

// TestRemoveWithoutAgent: with no agent on the bus there is no proxy to
// remove: success.
func TestRemoveWithoutAgent(t *testing.T) {
	bus := testbus.Start(t)
	var errb strings.Builder
	code := Main(context.Background(), cmdline.Env{Prog: Prog, Args: []string{"-u", "remove", "n2_a.service"}, Stdout: io.Discard, Stderr: &errb,
		Connect: func(bool) (*dbus.Conn, error) { c, _, err := dbusrt.ConnectBus(bus.Address); return c, err }})
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d: %q", code, errb.String())
	}
}
