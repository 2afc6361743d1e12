// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/sandbox"
)

// BenchmarkStartUnitDasbus is BenchmarkStartUnit with a client nobody here
// wrote on both sides: a python3-dasbus script alternates b.N starts of the
// oneshot service through the controller with b.N direct ones on the
// node's bus (after 20 of each to warm up) and reports the medians
// (bluechi-ms, systemd-ms) and their ratio.
func BenchmarkStartUnitDasbus(b *testing.B) {
	c := start(b, cluster.Options{Names: cluster.DefaultNames(2)})
	script := filepath.Join(b.TempDir(), "ratio.py")
	if err := os.WriteFile(script, []byte(dasbusRatio), 0o644); err != nil {
		b.Fatal(err)
	}
	// A start takes milliseconds: a second each is a generous bound, so
	// that a lost JobRemoved ends the run instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(b.N)*time.Second)
	defer cancel()
	b.ResetTimer()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", script, c.BusAddress, c.Node("node2").BusAddress, "node2",
		sandbox.OneshotServiceName, strconv.Itoa(b.N)).CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("dasbus client: %v\n%s", err, out)
	}
	var ours, direct float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%g %g", &ours, &direct); err != nil || direct == 0 {
		b.Fatalf("dasbus client printed %q", out)
	}
	b.ReportMetric(ours, "bluechi-ms")
	b.ReportMetric(direct, "systemd-ms")
	b.ReportMetric(ours/direct, "ratio")
}

// dasbusRatio times starts through the controller and direct ones in turns
// and prints the two medians in milliseconds.
const dasbusRatio = `import sys, time
from dasbus.connection import AddressedMessageBus
from dasbus.loop import EventLoop
from gi.repository import GLib

controller_bus, node_bus, node_name, unit, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
warm = 20
bus_a, bus_b = AddressedMessageBus(controller_bus), AddressedMessageBus(node_bus)
controller = bus_a.get_proxy("org.eclipse.bluechi", "/org/eclipse/bluechi")
node = bus_a.get_proxy("org.eclipse.bluechi", "/org/eclipse/bluechi/node/" + node_name)
systemd = bus_b.get_proxy("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
systemd.Subscribe()
loop = EventLoop()
state = {"i": 0, "job": None, "t0": 0.0}
times = ([], [])

def start():
    if state["i"] >= 2 * (n + warm):
        loop.quit()
        return False
    through = state["i"] % 2 == 0
    state["t0"] = time.perf_counter()
    state["job"] = (node if through else systemd).StartUnit(unit, "replace")
    return False

def finished(job, result, through):
    if job != state["job"] or (state["i"] % 2 == 0) != through:
        return
    took = time.perf_counter() - state["t0"]
    if result != "done":
        print("result", result)
        sys.exit(1)
    if state["i"] >= 2 * warm:
        times[0 if through else 1].append(took)
    state["i"] += 1
    GLib.idle_add(start)

controller.JobRemoved.connect(lambda id, job, node, u, result: finished(job, result, True))
systemd.JobRemoved.connect(lambda id, job, u, result: finished(job, result, False))
GLib.idle_add(start)
loop.run()
ours, direct = sorted(times[0]), sorted(times[1])
print(ours[len(ours) // 2] * 1000, direct[len(direct) // 2] * 1000)
`
