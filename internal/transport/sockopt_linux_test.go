// SPDX-License-Identifier: Apache-2.0

//go:build linux

package transport

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sockopt reads an integer socket option of a TCP connection.
func sockopt(t *testing.T, nc net.Conn, level, opt int) int {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, gerr)
	}
	return v
}

type wantOpts struct{ keepalive, idle, intvl, cnt, nodelay, recverr int }

func checkSockopts(t *testing.T, side string, nc net.Conn, want wantOpts) {
	t.Helper()
	got := wantOpts{
		keepalive: sockopt(t, nc, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE),
		idle:      sockopt(t, nc, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE),
		intvl:     sockopt(t, nc, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL),
		cnt:       sockopt(t, nc, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT),
		nodelay:   sockopt(t, nc, syscall.IPPROTO_TCP, syscall.TCP_NODELAY),
		recverr:   sockopt(t, nc, syscall.IPPROTO_IP, syscall.IP_RECVERR),
	}
	if got != want {
		t.Errorf("%s socket options = %+v, want %+v", side, got, want)
	}
}

func TestSocketOptions(t *testing.T) {
	checkGoroutines(t)
	custom := SocketOptions{KeepAliveTime: 3 * time.Second, KeepAliveInterval: 2 * time.Second, KeepAliveCount: 4}
	for _, host := range []string{"127.0.0.1", "::1", ""} {
		t.Run("host="+host, func(t *testing.T) {
			l, err := Listen("tcp", net.JoinHostPort(host, "0"), DefaultSocketOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			dialHost := host
			if dialHost == "" {
				dialHost = "127.0.0.1" // IPv4 client on the dual-stack socket
			}
			accepted := make(chan net.Conn, 1)
			go func() {
				nc, err := l.Accept()
				if err != nil {
					t.Errorf("Accept: %v", err)
					close(accepted)
					return
				}
				accepted <- nc
			}()

			nd := net.Dialer{KeepAlive: -1}
			dialed, err := nd.DialContext(testContext(t), "tcp", net.JoinHostPort(dialHost, port))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer dialed.Close()
			if err := ApplySocketOptions(dialed, custom); err != nil {
				t.Fatalf("ApplySocketOptions: %v", err)
			}
			nc, ok := <-accepted
			if !ok {
				t.FailNow()
			}
			defer nc.Close()

			checkSockopts(t, "accepted", nc, wantOpts{1, 1, 1, 6, 1, 1})
			checkSockopts(t, "dialed", dialed, wantOpts{1, 3, 2, 4, 1, 0})

			if got, want := PeerIP(nc), strings.Trim(dialHost, "[]"); got != want {
				t.Errorf("PeerIP = %q, want %q", got, want)
			}
		})
	}
}

// PeerClosed sees a close behind unread data and never takes bytes away
// from the reader.
func TestPeerClosed(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = t.TempDir() + "/s"
			}
			l, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			client, err := net.Dial(network, l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			if PeerClosed(server) {
				t.Fatal("open connection reported closed")
			}
			if _, err := client.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "data to arrive", func() bool { return inQueue(t, server) == 1 })
			if PeerClosed(server) {
				t.Fatal("connection with data reported closed")
			}
			var b [1]byte
			if _, err := server.Read(b[:]); err != nil || b[0] != 'x' {
				t.Fatalf("read %q, %v", b, err)
			}
			// Data still unread when the close comes.
			if _, err := client.Write([]byte("y")); err != nil {
				t.Fatal(err)
			}
			client.Close()
			waitUntil(t, "close to be seen", func() bool { return PeerClosed(server) })
			if _, err := server.Read(b[:]); err != nil || b[0] != 'y' {
				t.Fatalf("read after PeerClosed: %q, %v", b, err)
			}
			if _, err := server.Read(b[:]); err == nil {
				t.Error("read after the peer's data: no error")
			}
		})
	}
}

// inQueue returns how many bytes wait to be read on nc.
func inQueue(t *testing.T, nc net.Conn) int {
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
