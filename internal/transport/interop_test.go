// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// busStub answers org.freedesktop.DBus.Hello like the controller does, so
// that bus-minded clients such as busctl can talk over a peer socket.
type busStub struct{}

func (busStub) Hello() (string, *dbus.Error) { return ":1.0", nil }

// TestBusctlClient lets sd-bus (busctl) authenticate against the server
// half and call a method, over unix and TCP.
func TestBusctlClient(t *testing.T) {
	busctl, err := exec.LookPath("busctl")
	if err != nil {
		t.Fatal("busctl not installed (Debian package systemd)")
	}
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			checkGoroutines(t)
			s := startServerWith(t, network, ServerConfig{}, func(conn *dbus.Conn, nc net.Conn) error {
				return conn.Export(busStub{}, "/org/freedesktop/DBus", "org.freedesktop.DBus")
			})
			ctx := testContext(t)
			out, err := exec.CommandContext(ctx, busctl, "--address="+s.address, "--timeout=5",
				"call", "org.eclipse.bluechi", string(testPath), testIface, "Echo", "s", "from busctl").CombinedOutput()
			if err != nil {
				t.Fatalf("busctl: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != `s "from busctl"` {
				t.Errorf("busctl printed %q", got)
			}
		})
	}
}

// startDBusDaemon runs a private dbus-daemon listening on listen with the
// given <auth> mechanism and returns its address.
func startDBusDaemon(t *testing.T, listen, mech string) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatal("dbus-daemon not installed (Debian package dbus-daemon)")
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>%s</listen>
  <auth>%s</auth>
  <allow_anonymous/>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
`, strings.ReplaceAll(listen, "DIR", dir), mech)
	path := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+path, "--nofork", "--nopidfile", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading dbus-daemon address: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestDialAgainstDBusDaemon runs the pipelined client handshake against
// libdbus's server half (dbus-daemon) and then talks to the bus.
func TestDialAgainstDBusDaemon(t *testing.T) {
	cases := []struct {
		name, listen string
		d            Dialer
	}{
		{"unix/EXTERNAL", "unix:path=DIR/bus", Dialer{Mechanism: MechanismExternal}},
		{"unix/ANONYMOUS", "unix:path=DIR/bus", Dialer{}},
		{"tcp/ANONYMOUS", "tcp:host=127.0.0.1,port=0", Dialer{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mech := string(mechOrDefault(c.d.Mechanism))
			addr := startDBusDaemon(t, c.listen, mech)
			checkGoroutines(t)
			ctx := testContext(t)
			conn, err := c.d.Dial(ctx, addr)
			if err != nil {
				t.Fatalf("Dial %s: %v", addr, err)
			}
			defer conn.Close()
			var name string
			if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.Hello", 0).Store(&name); err != nil {
				t.Fatalf("Hello: %v", err)
			}
			if !strings.HasPrefix(name, ":") {
				t.Errorf("unique name %q", name)
			}
		})
	}
	t.Run("rejected", func(t *testing.T) {
		addr := startDBusDaemon(t, "unix:path=DIR/bus", "EXTERNAL")
		checkGoroutines(t)
		_, err := Dial(testContext(t), addr)
		if err == nil || !strings.Contains(err.Error(), "rejected") {
			t.Fatalf("ANONYMOUS against an EXTERNAL-only bus: %v", err)
		}
	})
}
