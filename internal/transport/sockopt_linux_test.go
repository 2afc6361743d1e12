//go:build linux

package transport

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
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

			var dialed net.Conn
			d := Dialer{
				Socket: &custom,
				BeforeStart: func(_ *dbus.Conn, nc net.Conn) error {
					dialed = nc
					return nil
				},
			}
			type result struct {
				conn *dbus.Conn
				err  error
			}
			done := make(chan result, 1)
			go func() {
				conn, err := d.Dial(testContext(t), "tcp:host="+dialHost+",port="+port)
				done <- result{conn, err}
			}()
			nc, ok := <-accepted
			if !ok {
				t.FailNow()
			}
			server, err := Accept(nc)
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			defer server.Close()
			res := <-done
			if res.err != nil {
				t.Fatalf("Dial: %v", res.err)
			}
			defer res.conn.Close()

			checkSockopts(t, "accepted", nc, wantOpts{1, 1, 1, 6, 1, 1})
			checkSockopts(t, "dialed", dialed, wantOpts{1, 3, 2, 4, 1, 0})

			if got, want := PeerIP(nc), strings.Trim(dialHost, "[]"); got != want {
				t.Errorf("PeerIP = %q, want %q", got, want)
			}
		})
	}
}
