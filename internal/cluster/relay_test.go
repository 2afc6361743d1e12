// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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
	relayBlockEnv  = "BLUECHI_TEST_RELAY_BLOCKING"
)

// relayMain makes the test binary a byte relay when it was started as one:
// it accepts on the unix socket $BLUECHI_TEST_RELAY_LISTEN, connects each
// client to $BLUECHI_TEST_RELAY_TARGET and copies bytes both ways, doing
// nothing else. With $BLUECHI_TEST_RELAY_BLOCKING set, each direction is
// an OS thread of its own blocked in read(2), as a C relay would be: no Go
// scheduler or netpoller on the way. It reports false when the binary is
// not a relay.
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
		if os.Getenv(relayBlockEnv) != "" {
			go blockingPipe(c, t)
			go blockingPipe(t, c)
			continue
		}
		go pipe(c, t)
		go pipe(t, c)
	}
}

// blockingPipe copies src to dst like pipe, on a locked OS thread with
// blocking read(2) and write(2) on duplicates of the sockets' descriptors
// (the net.Conns are only closed after that, never read or written).
func blockingPipe(dst, src net.Conn) {
	runtime.LockOSThread()
	defer dst.Close()
	defer src.Close()
	in, err := blockingFd(src)
	if err != nil {
		return
	}
	defer syscall.Close(in)
	out, err := blockingFd(dst)
	if err != nil {
		return
	}
	defer syscall.Close(out)
	// Ending one direction ends the other, whose thread holds duplicates
	// that closing the net.Conns would not wake.
	defer syscall.Shutdown(in, syscall.SHUT_RDWR)
	defer syscall.Shutdown(out, syscall.SHUT_RDWR)
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(in, buf)
		if n <= 0 || err != nil {
			return
		}
		for b := buf[:n]; len(b) > 0; {
			w, err := syscall.Write(out, b)
			if err != nil {
				return
			}
			b = b[w:]
		}
	}
}

// blockingFd returns a duplicate of c's descriptor in blocking mode. The
// mode belongs to the socket, not the descriptor: c's own descriptor
// blocks too from then on.
func blockingFd(c net.Conn) (int, error) {
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := raw.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) })
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
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

// startRelay runs the test binary as a relay from listen to target until
// the benchmark ends: on one processor like our daemons, or with blocking
// threads (see relayMain).
func startRelay(tb testing.TB, listen, target string, blocking bool) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), relayListenEnv+"="+listen, relayTargetEnv+"="+target)
	if blocking {
		cmd.Env = append(cmd.Env, relayBlockEnv+"=1")
	} else {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
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
// machine, and what the client library adds. Six starts of the oneshot
// service alternate:
//   - bluechi-ms: through the controller, client as in BenchmarkStartUnit;
//   - systemd-ms: direct, with the same kind of client;
//   - relayed-ms: direct through two byte relays (separate processes that
//     only copy bytes), as many process hops as client -> bus ->
//     controller -> agent -> systemd;
//   - blocking-relayed-ms: the same through two relays that copy with a
//     blocked OS thread per direction, as a C relay does (the least any
//     process hop costs);
//   - godbus-bluechi-ms: through the controller with the generated client
//     on a plain godbus connection;
//   - godbus-ms: direct with plain godbus.
//
// Ratios: bluechi-ratio (ours to direct, same client), godbus-ratio (the
// same with godbus on both sides), floor-ratio (relays to direct) and
// blocking-floor-ratio (blocking relays to direct).
func BenchmarkStartUnitFloor(b *testing.B) {
	c, jobs, node := jobCluster(b)
	bus := strings.TrimPrefix(c.Node("node2").BusAddress, "unix:path=")
	dir, err := os.MkdirTemp("", "relay")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	r1, r2 := filepath.Join(dir, "r1"), filepath.Join(dir, "r2")
	startRelay(b, r2, bus, false)
	startRelay(b, r1, r2, false)
	t1, t2 := filepath.Join(dir, "t1"), filepath.Join(dir, "t2")
	startRelay(b, t2, bus, true)
	startRelay(b, t1, t2, true)
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
		rawStartDirect(b, "unix:path="+r1), startThrough(b, node, jobs), viaGodbus, rawStartDirect(b, "unix:path="+t1))
	for i, name := range []string{"bluechi-ms", "systemd-ms", "relayed-ms", "godbus-bluechi-ms", "godbus-ms", "blocking-relayed-ms"} {
		b.ReportMetric(ms(m[i]), name)
	}
	b.ReportMetric(float64(m[0])/float64(m[1]), "bluechi-ratio")
	b.ReportMetric(float64(m[3])/float64(m[4]), "godbus-ratio")
	b.ReportMetric(float64(m[2])/float64(m[1]), "floor-ratio")
	b.ReportMetric(float64(m[5])/float64(m[1]), "blocking-floor-ratio")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
