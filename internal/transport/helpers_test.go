// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	testPath  = dbus.ObjectPath("/org/test")
	testIface = "org.test.Echo"
)

// checkGoroutines fails the test if, once every other cleanup of t has run,
// the number of goroutines does not drop back to what it was when called.
// Call it first in a test so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // poll
		}
	})
}

// echo is the trivial object exported on both ends in tests.
type echo struct {
	calls atomic.Int32
}

func (e *echo) Echo(s string) (string, *dbus.Error) {
	e.calls.Add(1)
	return s, nil
}

// testServer runs a Server on a real listener.
type testServer struct {
	network string
	laddr   string // Go address
	address string // D-Bus address
	obj     *echo
	conns   chan *dbus.Conn
	errs    chan error
	inMsgs  atomic.Int32
}

// startServer listens on network ("tcp" or "unix") and serves until the
// end of the test. Accepted connections export an echo object and are
// closed at the end of the test.
func startServer(t *testing.T, network string, cfg ServerConfig) *testServer {
	t.Helper()
	return startServerWith(t, network, cfg, nil)
}

// startServerWith is startServer with an extra BeforeStart step.
func startServerWith(t *testing.T, network string, cfg ServerConfig, extra BeforeStartFunc) *testServer {
	t.Helper()
	var l *Listener
	var err error
	s := &testServer{
		network: network,
		obj:     &echo{},
		conns:   make(chan *dbus.Conn, 64),
		errs:    make(chan error, 64),
	}
	switch network {
	case "unix":
		path := filepath.Join(t.TempDir(), "sub", "dir", "bluechi.sock")
		l, err = Listen("unix", path, DefaultSocketOptions())
		s.address = "unix:path=" + path
	case "tcp":
		l, err = Listen("tcp", "127.0.0.1:0", DefaultSocketOptions())
		if err == nil {
			s.address = "tcp:host=127.0.0.1,port=" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		}
	default:
		t.Fatalf("unknown network %q", network)
	}
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s.laddr = l.Addr().String()

	var (
		mu   sync.Mutex
		open []*dbus.Conn
	)
	cfg.BeforeStart = func(conn *dbus.Conn, nc net.Conn) error {
		if extra != nil {
			if err := extra(conn, nc); err != nil {
				return err
			}
		}
		return conn.Export(s.obj, testPath, testIface)
	}
	srv := &Server{
		Handshake: cfg,
		Options: func(net.Conn) []dbus.ConnOption {
			return []dbus.ConnOption{
				dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()),
				dbus.WithIncomingInterceptor(func(*dbus.Message) { s.inMsgs.Add(1) }),
			}
		},
		Handle: func(conn *dbus.Conn, nc net.Conn) {
			mu.Lock()
			open = append(open, conn)
			mu.Unlock()
			select {
			case s.conns <- conn:
			default:
			}
		},
		OnError: func(nc net.Conn, err error) {
			select {
			case s.errs <- err:
			default:
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			_ = c.Close()
		}
	})
	return s
}

// nextConn waits for the next connection the server accepted.
func (s *testServer) nextConn(t *testing.T) *dbus.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the server to accept a connection")
		return nil
	}
}

// nextErr waits for the next handshake error the server reported.
func (s *testServer) nextErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a handshake error")
		return nil
	}
}

// callEcho calls Echo on the peer of conn, addressed to dest.
func callEcho(ctx context.Context, conn *dbus.Conn, dest, arg string) (string, error) {
	var got string
	err := conn.Object(dest, testPath).CallWithContext(ctx, testIface+".Echo", 0, arg).Store(&got)
	if err != nil {
		return "", err
	}
	if got != arg {
		return "", fmt.Errorf("Echo(%q) = %q", arg, got)
	}
	return got, nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
