// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestListenTCPDualStackServesIPv6(t *testing.T) {
	checkGoroutines(t)
	l, err := Listen("tcp", ":0", DefaultSocketOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if tcp := l.Addr().(*net.TCPAddr); !tcp.IP.IsUnspecified() {
		t.Errorf("listening on %v, want the wildcard address", tcp)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := net.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			if host == "::1" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		nc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := PeerIP(nc); got != host {
			t.Errorf("PeerIP = %q, want %q", got, host)
		}
		nc.Close()
		c.Close()
	}
}

func TestListenUnix(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "bluechi.sock")

	// A stale socket left by a dead process.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}

	l, err := Listen("unix", path, DefaultSocketOptions())
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got := PeerIP(nc); got != "" {
		t.Errorf("PeerIP of a unix connection = %q", got)
	}
	if err := ApplySocketOptions(nc, DefaultSocketOptions()); err != nil {
		t.Errorf("ApplySocketOptions on unix: %v", err)
	}
	nc.Close()
	c.Close()
	l.Close()

	// A socket another process still serves is not taken over.
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := Listen("unix", path, DefaultSocketOptions()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Listen over a served socket: %v, want address in use", err)
	}
	// Its owner still gets connections, and no probe connection was made
	// (the kernel lists the socket as listening).
	if !listedListening(path) {
		t.Errorf("/proc/net/unix does not list the listening socket %s", path)
	}
	accepted := make(chan error, 1)
	go func() {
		nc, err := live.Accept()
		if err == nil {
			_, err = nc.Read(make([]byte, 1))
			nc.Close()
		}
		accepted <- err
	}()
	c, err = net.Dial("unix", path)
	if err != nil {
		t.Fatalf("served socket after a refused Listen: %v", err)
	}
	c.Write([]byte{1}) // the first connection accepted is this one
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	c.Close()
	live.Close()

	// A regular file is not clobbered.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix", file, DefaultSocketOptions()); err == nil {
		t.Errorf("Listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("regular file was modified")
	}
	if _, err := Listen("udp", ":0", DefaultSocketOptions()); err == nil {
		t.Errorf("Listen on udp succeeded")
	}
}

// TestAbstractUnixSocket listens on an abstract socket and connects to it
// through its D-Bus address.
func TestAbstractUnixSocket(t *testing.T) {
	checkGoroutines(t)
	name := "bluechi-go-test-" + strconv.Itoa(os.Getpid())
	l, err := Listen("unix", "@"+name, DefaultSocketOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addrs, err := ParseAddress("unix:abstract=" + name)
	if err != nil {
		t.Fatal(err)
	}
	network, target, err := addrs[0].Network()
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err == nil {
			nc.Close()
		}
		accepted <- err
	}()
	var d net.Dialer
	c, err := d.DialContext(testContext(t), network, target)
	if err != nil {
		t.Fatalf("dialing abstract socket %s %q: %v", network, target, err)
	}
	defer c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("Accept: %v", err)
	}
}
