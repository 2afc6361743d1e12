// SPDX-License-Identifier: Apache-2.0
package bluechictl

import (
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// TestAccessDenied: a call the bus policy refuses (an unprivileged user
// under the installed policy) gets one short line, not dbus-daemon's list
// of matched rules.
func TestAccessDenied(t *testing.T) {
	bus := testbus.StartWithPolicy(t, `  <policy context="default">
    <deny send_destination="org.eclipse.bluechi" send_interface="org.eclipse.bluechi.Controller"/>
  </policy>
`)
	conn, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := daemonapi.ExportController(conn, bluechi.ControllerPath, daemonapi.UnimplementedControllerServer{}, bluechi.ControllerProperties{Status: "up"}); err != nil {
		t.Fatal(err)
	}
	if err := dbusrt.RequestName(conn, bluechi.ControllerBusName); err != nil {
		t.Fatal(err)
	}
	r := run(t, func(bool) (*dbus.Conn, error) {
		c, _, err := dbusrt.ConnectBus(bus.Address)
		return c, err
	}, "-u", "status")
	if want := "Failed to list nodes: Access denied by the D-Bus policy of org.eclipse.bluechi (only root may call it)\n"; r.code != 1 || r.stderr != want {
		t.Errorf("status: exit %d, stderr %q; want 1, %q", r.code, r.stderr, want)
	}
}
