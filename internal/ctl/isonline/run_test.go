// SPDX-License-Identifier: Apache-2.0

package isonline

import (
	"context"
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
)

// TestSystemMode runs the system check against a scripted controller.
func TestSystemMode(t *testing.T) {
	bus := testbus.Start(t)
	conn, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctrl, err := daemonapi.ExportController(conn, bluechi.ControllerPath, daemonapi.UnimplementedControllerServer{}, bluechi.ControllerProperties{Status: "degraded"})
	if err != nil {
		t.Fatal(err)
	}
	if err := dbusrt.RequestName(conn, bluechi.ControllerBusName); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, args ...string) (int, string) {
		var out, errb syncbuf.Buffer
		code := Main(ctx, cmdline.Env{Prog: Prog, Args: append([]string{"-u"}, args...), Stdout: &out, Stderr: &errb,
			Connect: func(user bool) (*dbus.Conn, error) {
				c, _, err := dbusrt.ConnectBus(bus.Address)
				return c, err
			}})
		return code, errb.String()
	}
	if code, msg := run(context.Background(), "system"); code != 1 || msg != "org.eclipse.bluechi is offline\n" {
		t.Fatalf("degraded: %d %q", code, msg)
	}
	// --wait succeeds when the status turns "up" during the wait.
	done := make(chan int)
	go func() {
		code, _ := run(context.Background(), "system", "--wait=20000")
		done <- code
	}()
	deadline := time.After(20 * time.Second)
	for up := false; ; {
		select {
		case code := <-done:
			if code != 0 || !up {
				t.Fatalf("--wait: %d (up %v)", code, up)
			}
			goto monitor
		case <-time.After(50 * time.Millisecond):
			// The waiter may not have subscribed yet: repeat the change.
			ctrl.SetStatus("degraded")
			ctrl.SetStatus("up")
			up = true
		case <-deadline:
			t.Fatal("--wait did not return")
		}
	}
monitor:
	if code, msg := run(context.Background(), "system"); code != 0 || msg != "" {
		t.Fatalf("up: %d %q", code, msg)
	}
	// --monitor ends with SIGINT (context) while up, exit 0.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		code, _ := run(ctx, "system", "--monitor")
		done <- code
	}()
	select {
	case code := <-done:
		t.Fatalf("--monitor ended at once: %d", code)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("--monitor interrupted while up: %d", code)
	}
	// --monitor ends with 1 when the status drops.
	go func() {
		code, _ := run(context.Background(), "system", "--monitor")
		done <- code
	}()
	for {
		select {
		case code := <-done:
			if code != 1 {
				t.Fatalf("--monitor after degraded: %d", code)
			}
			return
		case <-time.After(50 * time.Millisecond):
			ctrl.SetStatus("up")
			ctrl.SetStatus("down")
			ctrl.SetStatus("up")
		case <-deadline:
			t.Fatal("--monitor did not end")
		}
	}
}

// TestAccessDenied: a status the bus refuses to show (an unprivileged user
// under the installed policy) is reported as such with its own exit
// status, not as "offline".
func TestAccessDenied(t *testing.T) {
	bus := testbus.StartWithPolicy(t, `  <policy context="default">
    <deny send_destination="org.eclipse.bluechi.Agent" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
`)
	conn, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := daemonapi.ExportAgent(conn, bluechi.AgentPath, daemonapi.UnimplementedAgentServer{}, bluechi.AgentProperties{Status: "online"}); err != nil {
		t.Fatal(err)
	}
	if err := dbusrt.RequestName(conn, bluechi.AgentBusName); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"agent"}, {"agent", "--wait=5000"}, {"agent", "--monitor"}} {
		var out, errb syncbuf.Buffer
		code := Main(context.Background(), cmdline.Env{Prog: Prog, Args: append([]string{"-u"}, args...), Stdout: &out, Stderr: &errb,
			Connect: func(user bool) (*dbus.Conn, error) {
				c, _, err := dbusrt.ConnectBus(bus.Address)
				return c, err
			}})
		if code != ExitAccessDenied || !strings.HasPrefix(errb.String(), "Access denied: cannot read the status of org.eclipse.bluechi.Agent: Rejected send message") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
