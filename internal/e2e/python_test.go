// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// pythonMonitor is a dasbus client as upstream's tests use it: it creates a
// monitor, subscribes to one unit and prints each UnitStateChanged until a
// real change to active arrives.
const pythonMonitor = `
import sys
from gi.repository import GLib
from dasbus.connection import AddressedMessageBus

address, node, unit = sys.argv[1:4]
bus = AddressedMessageBus(address)
controller = bus.get_proxy("org.eclipse.bluechi", "/org/eclipse/bluechi")
path = controller.CreateMonitor()
monitor = bus.get_proxy("org.eclipse.bluechi", path)
loop = GLib.MainLoop()
result = {"ok": False}

def on_state(n, u, active, sub, reason):
    print("state", n, u, active, sub, reason, flush=True)
    if n == node and u == unit and active == "active" and reason == "real":
        result["ok"] = True
        loop.quit()

def on_timeout():
    print("timeout", flush=True)
    loop.quit()

monitor.UnitStateChanged.connect(on_state)
sid = monitor.Subscribe(node, unit)
print("subscribed", path, sid, flush=True)
GLib.timeout_add_seconds(30, on_timeout)
loop.run()
monitor.Close()
sys.exit(0 if result["ok"] else 1)
`

// TestMonitorPython drives a monitor from python3-dasbus (the bindings of
// upstream's test-suite): it must introspect the monitor, subscribe and
// receive the unicast UnitStateChanged of a unit started on a real node.
func TestMonitorPython(t *testing.T) {
	c := newCluster(t, "node-py")
	c.startAgent("node-py")
	c.waitStatus("node-py", "online")
	script := filepath.Join(c.dir, "monitor.py")
	if err := os.WriteFile(script, []byte(pythonMonitor), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script, c.bus.Address, "node-py", sandbox.SimpleServiceName)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("python3 with dasbus (Debian packages python3-dasbus, python3-gi): %v", err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("python client ended: %q\n%s", got, stderr.String())
			}
			got = append(got, l)
			return l
		case <-time.After(45 * time.Second):
			t.Fatalf("python client silent: %q\n%s", got, stderr.String())
		}
		return ""
	}
	for !strings.HasPrefix(next(), "subscribed ") {
	}
	jobs := c.jobs()
	if r := c.runJob(jobs, "node-py", "start", sandbox.SimpleServiceName); r != "done" {
		t.Fatalf("start: %s", r)
	}
	for {
		l := next()
		if l == "state node-py "+sandbox.SimpleServiceName+" active running real" {
			break
		}
		if l == "timeout" {
			t.Fatalf("python client saw %q", got)
		}
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python client: %v\n%s", err, stderr.String())
	}
}
