// SPDX-License-Identifier: Apache-2.0

package exporter_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// systemLikeConfig is a bus with the system bus's default policy (method
// calls denied unless allowed, names not ownable) and the shipped policy
// files included.
const systemLikeConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>%s</include>
  <include>%s</include>
</busconfig>
`

// TestDBusPolicy runs the shipped policy files on a real dbus-daemon (the
// exporter's user replaced by nobody): the real exporter binary as nobody
// follows a controller, and every call outside its read-only set is
// refused by the bus.
func TestDBusPolicy(t *testing.T) {
	dir, err := os.MkdirTemp("", "bxp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // nobody reaches the socket
		t.Fatal(err)
	}
	if err := os.Chmod(binaries(t), 0o755); err != nil { // and the binary
		t.Fatal(err)
	}
	policy, err := os.ReadFile("../../install/dbus/bluechi-exporter.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(policy), `user="bluechi-exporter"`) {
		t.Fatal("policy does not name the user bluechi-exporter")
	}
	exporterPolicy := filepath.Join(dir, "bluechi-exporter.conf")
	if err := os.WriteFile(exporterPolicy, []byte(strings.ReplaceAll(string(policy), `user="bluechi-exporter"`, `user="nobody"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	controllerPolicy, err := filepath.Abs("../../install/dbus/org.eclipse.bluechi.conf")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(systemLikeConfig, sock, controllerPolicy, exporterPolicy)), 0o644); err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	out := &strings.Builder{}
	daemon.Stderr = out
	if err := daemon.Start(); err != nil {
		t.Fatalf("dbus-daemon (Debian package dbus-daemon): %v", err)
	}
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	address := "unix:path=" + sock
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbus-daemon did not listen: %s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := serveFakeController(t, address, 3) // as root, which may own the name

	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	p := startExporterAs(t, nobody, address, "--bus-address", address, "--units", "*.service")
	p.wait(t, 20*time.Second, "exporter as nobody follows the controller", has(map[string]float64{
		`bluechi_up`: 1, `bluechi_nodes{status="online"}`: 3, `bluechi_node_online{node="node0001"}`: 1}))
	if m := c.monitor(); m == nil || !strings.HasPrefix(m.owner, ":") {
		t.Fatal("the exporter created no monitor")
	}

	call := func(args ...string) (string, error) {
		argv := append(append([]string{}, nobody...), append([]string{"dbus-send", "--bus=" + address, "--print-reply", "--dest=org.eclipse.bluechi"}, args...)...)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		return string(out), err
	}
	const node = "/org/eclipse/bluechi/node/node0001"
	for _, allowed := range [][]string{
		{"/org/eclipse/bluechi", "org.eclipse.bluechi.Controller.ListNodes"},
		{"/org/eclipse/bluechi", "org.freedesktop.DBus.Properties.Get", "string:org.eclipse.bluechi.Controller", "string:Status"},
		{node, "org.freedesktop.DBus.Properties.GetAll", "string:org.eclipse.bluechi.Node"},
	} {
		if out, err := call(allowed...); err != nil {
			t.Errorf("%v as the exporter's user: %v\n%s", allowed[1], err, out)
		}
	}
	for _, denied := range [][]string{
		{"/org/eclipse/bluechi", "org.eclipse.bluechi.Controller.EnableMetrics"},
		{"/org/eclipse/bluechi", "org.eclipse.bluechi.Controller.SetLogLevel", "string:DEBUG"},
		{"/org/eclipse/bluechi", "org.eclipse.bluechi.Controller.ListUnits"},
		{"/org/eclipse/bluechi", "org.freedesktop.DBus.Properties.Set", "string:org.eclipse.bluechi.Controller", "string:Status", "variant:string:up"},
		{node, "org.eclipse.bluechi.Node.StartUnit", "string:a.service", "string:replace"},
		{node, "org.eclipse.bluechi.Node.KillUnit", "string:a.service", "string:all", "int32:9"},
		{"/org/eclipse/bluechi/monitor/1", "org.eclipse.bluechi.Monitor.AddPeer", "string::1.1"},
	} {
		out, err := call(denied...)
		if err == nil || !strings.Contains(out, dbusrt.ErrAccessDenied) {
			t.Errorf("%v as the exporter's user: %v, want AccessDenied from the bus\n%s", denied[1], err, out)
		}
	}
}
