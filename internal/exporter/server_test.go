// SPDX-License-Identifier: Apache-2.0

package exporter

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// eventLog records what the server did, in order.
type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

// recordingListener logs "accept" and "close" for every connection the
// server accepts and closes.
type recordingListener struct {
	net.Listener
	log *eventLog
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.log.add("accept")
	return &recordingConn{Conn: c, log: l.log}, nil
}

type recordingConn struct {
	net.Conn
	log  *eventLog
	once sync.Once
}

func (c *recordingConn) Close() error {
	c.once.Do(func() { c.log.add("close") })
	return c.Conn.Close()
}

// startServer serves a handler that logs "request" on 127.0.0.1 with lim.
// onFull, if not nil, is the listener's onFull.
func startServer(t *testing.T, lim serverLimits, onFull func()) (*http.Server, *connLimitListener, *eventLog, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &eventLog{}
	ll := limitListener(recordingListener{ln, log}, lim.maxConns)
	ll.onFull = onFull
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add("request")
		io.WriteString(w, "ok\n")
	}), lim, ll)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ll) }()
	t.Cleanup(func() { srv.Close() })
	return srv, ll, log, served
}

// waitIdle waits until n connections are idle (between requests), as the
// server's ConnState hook reports them: the client may read a response
// before the server's goroutine gets there.
func waitIdle(t *testing.T, ll *connLimitListener, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		ll.mu.Lock()
		idle := len(ll.idle)
		ll.mu.Unlock()
		if idle == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want %d", idle, n)
		}
	}
}

type client struct {
	net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

func (c *client) send(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: exporter\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// response reads one response within d and checks it is a kept-alive 200.
func (c *client) response(t *testing.T, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "ok\n" || resp.Close {
		t.Fatalf("response %d %q close=%v, %v", resp.StatusCode, body, resp.Close, err)
	}
}

func TestConnectionLimitQueuesExtraConnections(t *testing.T) {
	lim := serverLimits{maxConns: 2, idle: time.Minute, readHeader: 10 * time.Second, read: 10 * time.Second, write: 10 * time.Second}
	full := make(chan struct{}, 16)
	_, ll, log, _ := startServer(t, lim, func() {
		select {
		case full <- struct{}{}:
		default:
		}
	})
	addr := ll.Addr()

	// Two connections that have not sent a request yet (not idle) take
	// both slots.
	c1 := dial(t, addr)
	c2 := dial(t, addr)
	for deadline := time.Now().Add(10 * time.Second); len(log.get()) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("two connections not accepted")
		}
	}

	// A third one waits for a slot: its request gets no answer while the
	// other two stay open.
	c3 := dial(t, addr)
	c3.send(t)
	select {
	case <-full:
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection did not find the cap reached")
	}
	c3.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c3.br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection answered while the cap was reached: %v", err)
	}

	// Closing the first frees its slot; then the third is served.
	c1.Close()
	c3.response(t, 10*time.Second)
	c2.send(t)
	c2.response(t, 10*time.Second)
	if got, want := log.get(), []string{"accept", "accept", "accept", "close", "request", "request"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// TestShutdownWhileFull: Shutdown ends an Accept waiting for a slot and
// gives every slot back.
func TestShutdownWhileFull(t *testing.T) {
	lim := serverLimits{maxConns: 1, idle: time.Minute, readHeader: 10 * time.Second, read: 10 * time.Second, write: 10 * time.Second}
	full := make(chan struct{}, 1)
	srv, ll, _, served := startServer(t, lim, func() {
		select {
		case full <- struct{}{}:
		default:
		}
	})
	dial(t, ll.Addr()) // silent: holds the slot
	c2 := dial(t, ll.Addr())
	select {
	case <-full:
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not wait for a slot with the cap reached")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if n := len(ll.slots); n != 0 {
		t.Fatalf("%d slots in use after Shutdown", n)
	}
	// The connection that waited was closed, not served.
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.br.ReadByte(); err != io.EOF {
		t.Fatalf("waiting connection: read %v, want EOF", err)
	}
}

// TestFullServerClosesOldestIdle: a connection that finds every slot
// taken closes the one idle the longest, and is served at once.
func TestFullServerClosesOldestIdle(t *testing.T) {
	lim := serverLimits{maxConns: 2, idle: time.Minute, readHeader: 10 * time.Second, read: 10 * time.Second, write: 10 * time.Second}
	_, ll, log, _ := startServer(t, lim, nil)
	addr := ll.Addr()
	c1 := dial(t, addr)
	c1.send(t)
	c1.response(t, 10*time.Second)
	waitIdle(t, ll, 1) // the server marks a connection idle after writing its response
	c2 := dial(t, addr)
	c2.send(t)
	c2.response(t, 10*time.Second)
	waitIdle(t, ll, 2)
	c3 := dial(t, addr)
	c3.send(t)
	c3.response(t, 10*time.Second)
	c1.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c1.br.ReadByte(); err != io.EOF {
		t.Fatalf("oldest idle connection: read %v, want EOF (closed for the new one)", err)
	}
	// The other idle one was kept.
	c2.send(t)
	c2.response(t, 10*time.Second)
	if got, want := log.get(), []string{"accept", "request", "accept", "request", "accept", "close", "request", "request"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	const idle = 200 * time.Millisecond
	lim := serverLimits{maxConns: 1, idle: idle, readHeader: 10 * time.Second, read: 10 * time.Second, write: 10 * time.Second}
	_, ll, log, _ := startServer(t, lim, nil)

	c := dial(t, ll.Addr())
	c.send(t)
	c.response(t, 10*time.Second)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the server)", err)
	}
	// The server's idle clock starts before the client reads the
	// response: the bound leaves room for a slow reader.
	if d := time.Since(start); d < idle/4 {
		t.Fatalf("idle connection closed after %v, IdleTimeout is %v", d, idle)
	}

	// The freed slot serves the next connection.
	c2 := dial(t, ll.Addr())
	c2.send(t)
	c2.response(t, 10*time.Second)
	if got, want := log.get(), []string{"accept", "request", "close", "accept", "request"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestSilentConnectionClosed(t *testing.T) {
	const header = 200 * time.Millisecond
	lim := serverLimits{maxConns: 1, idle: time.Minute, readHeader: header, read: 10 * time.Second, write: 10 * time.Second}
	_, ll, log, _ := startServer(t, lim, nil)

	// A connection that never sends a request holds the only slot until
	// ReadHeaderTimeout; then the next one is served.
	c := dial(t, ll.Addr())
	c2 := dial(t, ll.Addr())
	c2.send(t)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("silent connection: read %v, want EOF (closed by the server)", err)
	}
	c2.response(t, 10*time.Second)
	if got, want := log.get(), []string{"accept", "accept", "close", "request"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestDefaultLimits(t *testing.T) {
	srv := newServer(http.NotFoundHandler(), defaultLimits, limitListener(nil, 1))
	if srv.IdleTimeout != IdleTimeout || srv.ReadTimeout != ReadTimeout || srv.ReadHeaderTimeout != ReadHeaderTimeout || srv.WriteTimeout != WriteTimeout {
		t.Fatalf("server timeouts %+v", srv)
	}
	if defaultLimits.maxConns != MaxConnections {
		t.Fatalf("maxConns %d", defaultLimits.maxConns)
	}
	// A scrape that waited for the controller would end by the call
	// timeout, with an answer, before the connection's write deadline.
	if WriteTimeout <= New(nil, Options{}).opts.CallTimeout {
		t.Fatalf("WriteTimeout %v not above the default CallTimeout", WriteTimeout)
	}
}
