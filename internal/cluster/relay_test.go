package cluster_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/systemd"
)

// Environment of a test binary started as a byte relay (see relayMain).
const (
	relayListenEnv = "BLUECHI_TEST_RELAY_LISTEN"
	relayTargetEnv = "BLUECHI_TEST_RELAY_TARGET"
)

// relayMain makes the test binary a byte relay when it was started as one:
// it accepts on the unix socket $BLUECHI_TEST_RELAY_LISTEN, connects each
// client to $BLUECHI_TEST_RELAY_TARGET and copies bytes both ways, doing
// nothing else. It reports false when the binary is not a relay.
func relayMain() bool {
	listen, target := os.Getenv(relayListenEnv), os.Getenv(relayTargetEnv)
	if listen == "" || target == "" {
		return false
	}
	l, err := net.Listen("unix", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(0)
		}
		t, err := net.Dial("unix", target)
		if err != nil {
			c.Close()
			continue
		}
		go pipe(c, t)
		go pipe(t, c)
	}
}

// pipe copies src to dst with plain reads and writes until either ends.
func pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startRelay runs the test binary as a relay from listen to target, on one
// processor like our daemons, until the benchmark ends.
func startRelay(tb testing.TB, listen, target string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), relayListenEnv+"="+listen, relayTargetEnv+"="+target, "GOMAXPROCS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		tb.Fatalf("relay did not start: %q %v", line, err)
	}
}

// BenchmarkStartUnitFloor measures what any relaying design costs on this
// machine, and what the client library adds. Five starts of the oneshot
// service alternate:
//   - bluechi-ms: through the controller, client as in BenchmarkStartUnit;
//   - systemd-ms: direct, with the same kind of client;
//   - relayed-ms: direct through two byte relays (separate processes that
//     only copy bytes), as many process hops as client -> bus ->
//     controller -> agent -> systemd;
//   - godbus-bluechi-ms: through the controller with the generated client
//     on a plain godbus connection;
//   - godbus-ms: direct with plain godbus.
//
// Ratios: bluechi-ratio (ours to direct, same client), godbus-ratio (the
// same with godbus on both sides) and floor-ratio (relays to direct).
func BenchmarkStartUnitFloor(b *testing.B) {
	c, jobs, node := jobCluster(b)
	bus := strings.TrimPrefix(c.Node("node2").BusAddress, "unix:path=")
	dir, err := os.MkdirTemp("", "relay")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	r1, r2 := filepath.Join(dir, "r1"), filepath.Join(dir, "r2")
	startRelay(b, r2, bus)
	startRelay(b, r1, r2)
	// The same direct start made with plain godbus, the client library the
	// godbus start through the controller uses.
	plain, err := c.Node("node2").Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plain.Close() })
	if err := plain.AddMatchSignal(dbus.WithMatchSender(systemd.BusName), dbus.WithMatchObjectPath(systemd.ManagerPath),
		dbus.WithMatchInterface(systemd.ManagerInterface), dbus.WithMatchMember("JobRemoved")); err != nil {
		b.Fatal(err)
	}
	removed := make(chan *dbus.Signal, 64)
	plain.Signal(removed)
	manager := plain.Object(systemd.BusName, systemd.ManagerPath)
	if err := manager.Call(systemd.ManagerInterface+".Subscribe", 0).Err; err != nil {
		b.Fatal(err)
	}
	viaGodbus := func() time.Duration {
		t0 := time.Now()
		var job dbus.ObjectPath
		if err := manager.Call(systemd.ManagerInterface+".StartUnit", 0, sandbox.OneshotServiceName, "replace").Store(&job); err != nil {
			b.Fatal(err)
		}
		for sig := range removed {
			if len(sig.Body) == 4 && sig.Body[1] == job {
				if r := sig.Body[3]; r != "done" {
					b.Fatal(r)
				}
				return time.Since(t0)
			}
		}
		b.Fatal("connection closed")
		return 0
	}
	m := alternateAll(b, rawStartThrough(b, c.BusAddress, "node2"), rawStartDirect(b, c.Node("node2").BusAddress),
		rawStartDirect(b, "unix:path="+r1), startThrough(b, node, jobs), viaGodbus)
	for i, name := range []string{"bluechi-ms", "systemd-ms", "relayed-ms", "godbus-bluechi-ms", "godbus-ms"} {
		b.ReportMetric(ms(m[i]), name)
	}
	b.ReportMetric(float64(m[0])/float64(m[1]), "bluechi-ratio")
	b.ReportMetric(float64(m[3])/float64(m[4]), "godbus-ratio")
	b.ReportMetric(float64(m[2])/float64(m[1]), "floor-ratio")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
