// SPDX-License-Identifier: Apache-2.0
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/syncbuf"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// TestControllerExitsOnBusLoss: when its bus goes away (systemctl restart
// dbus), the controller says so in one log record and exits 1, so that
// Restart=on-failure starts it again.
func TestControllerExitsOnBusLoss(t *testing.T) {
	bus := testbus.Start(t)
	dir := t.TempDir()
	conf := fmt.Sprintf("[bluechi-controller]\nControllerPort=%d\nUseUDS=false\nLogTarget=stderr\n", freePort(t))
	if err := os.WriteFile(filepath.Join(dir, "controller.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "bluechi-controller"), "-u", "-c", filepath.Join(dir, "controller.conf"))
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+bus.Address)
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "controller started") {
		if time.Now().After(deadline) {
			t.Fatalf("controller did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	var has bool
	err = conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, bluechi.ControllerBusName).Store(&has)
	conn.Close()
	if err != nil || !has {
		t.Fatalf("controller has not its name: %v %v", has, err)
	}
	bus.Stop()
	select {
	case <-exited:
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("exit status %d after losing the bus, want 1", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("controller still running 20 s after its bus stopped: %s", out.String())
	}
	var fatal []string
	for line := range strings.Lines(out.String()) {
		if strings.Contains(line, "lost the connection to the bus") {
			fatal = append(fatal, line)
		}
	}
	if len(fatal) != 1 || !strings.Contains(fatal[0], "ERROR") {
		t.Errorf("want one ERROR line about the lost bus, got %q in:\n%s", fatal, out.String())
	}
}
