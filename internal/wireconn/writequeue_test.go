// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/testcerts"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// queuedServer accepts one raw client on a loopback TCP socket with
// QueueWrites, both ends' kernel buffers small, and returns both ends; the
// client has finished the handshake and reads nothing until the test does.
func queuedServer(t *testing.T, opts Options) (*Conn, net.Conn, *rawReader) {
	t.Helper()
	l := listen(t)
	opts.QueueWrites = true
	ch := acceptOne(t, l, opts, func(c *Conn) {
		if err := c.nc.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
			t.Error(err)
		}
	})
	nc := rawDial(t, l)
	if err := nc.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	r := rawAuth(t, nc)
	c := <-ch
	t.Cleanup(func() { c.Close(); <-c.Done() })
	return c, nc, r
}

// TestQueuedWritesNeverWait: against a peer that stops reading, writes
// return at once until the queue passes its bound; then the connection is
// cut off with the reason, long before WriteTimeout would have ended a
// waiting write. Over TLS, where no write can be tried without waiting,
// every write goes through the queue, with the same outcome.
func TestQueuedWritesNeverWait(t *testing.T) {
	for _, tc := range queuedSetups {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			c, _, _ := tc.setup(t, Options{WriteTimeout: time.Minute, Limits: &Limits{MaxWriteQueue: 64 << 10}})
			body := strBody(strings.Repeat("x", 1000))
			start := time.Now()
			var err error
			sent := 0
			for ; sent < 100000 && err == nil; sent++ {
				err = c.Emit(testPath, testIface, "Tick", "s", body)
			}
			if err == nil {
				t.Fatalf("%d signals of 1 kB queued to a peer that reads nothing", sent)
			}
			if took := time.Since(start); took > 20*time.Second {
				t.Fatalf("writes waited: %v until the queue was full", took)
			}
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("connection not closed after the queue overflowed")
			}
			if cerr := c.Err(); cerr == nil || !strings.Contains(cerr.Error(), "does not read") {
				t.Fatalf("connection ended with %v, want the queue's reason", cerr)
			}
			t.Logf("%d signals sent before the queue overflowed", sent)
		})
	}
}

// queuedSetups are the two kinds of connection a queue serves.
var queuedSetups = []struct {
	name  string
	setup func(*testing.T, Options) (*Conn, net.Conn, *rawReader)
}{
	{"plain", queuedServer},
	{"tls", func(t *testing.T, o Options) (*Conn, net.Conn, *rawReader) { return tlsQueuedServer(t, o) }},
}

// TestQueuedWritesInOrder: what a slow peer could not take at once reaches
// it whole and in order once it reads, and writes after that go straight
// to the socket again.
func TestQueuedWritesInOrder(t *testing.T) {
	noLeaks(t)
	c, _, r := queuedServer(t, Options{WriteTimeout: time.Minute, Limits: &Limits{MaxWriteQueue: 8 << 20}})
	const n = 3000
	for i := range n {
		if err := c.Emit(testPath, testIface, "Tick", "u", u32Body(uint32(i))); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// Padding, so that the kernel's buffers fill and most of the
			// rest waits in the queue.
			for range 200 {
				if err := c.Emit(testPath, testIface, "Pad", "s", strBody(strings.Repeat("p", 8000))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	c.wq.mu.Lock()
	queued := len(c.wq.buf)
	c.wq.mu.Unlock()
	if queued == 0 {
		t.Fatal("nothing queued: the kernel took it all")
	}
	t.Logf("%d bytes queued", queued)
	var last uint32
	for got := 0; got < n; {
		m := r.message(t)
		if m.Member != "Tick" {
			continue
		}
		rd := wire.NewReader(m.Body, m.BigEndian)
		v, err := rd.Uint32()
		if err != nil {
			t.Fatal(err)
		}
		if got > 0 && v != last+1 {
			t.Fatalf("signal %d after %d", v, last)
		}
		last = v
		got++
	}
	// The flusher ends once the queue is empty.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.wq.mu.Lock()
		idle := !c.wq.flushing
		c.wq.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flusher still running after the queue drained")
		}
	}
	if err := c.Emit(testPath, testIface, "Tick", "u", u32Body(n)); err != nil {
		t.Fatal(err)
	}
	if m := r.message(t); m.Member != "Tick" {
		t.Fatalf("got %s after the queue drained", m.Member)
	}
	if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestQueuedWriteTimeout: a queue that a silent peer never drains ends the
// connection after WriteTimeout, as a waiting write would.
func TestQueuedWriteTimeout(t *testing.T) {
	noLeaks(t)
	c, _, _ := queuedServer(t, Options{WriteTimeout: 300 * time.Millisecond, Limits: &Limits{MaxWriteQueue: 8 << 20}})
	// 2.4 MB: far more than the kernel's buffers of both ends hold.
	for range 300 {
		if err := c.Emit(testPath, testIface, "Pad", "s", strBody(strings.Repeat("p", 8000))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open 10 s after its queue stopped draining")
	}
	if err := c.Err(); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection ended with %v, want a write timeout", err)
	}
}

// tlsConfigs returns a server and a client TLS configuration that trust
// each other (the server's certificate for 127.0.0.1).
func tlsConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	ca, err := testcerts.NewCA("wireconn test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(testcerts.Leaf{CN: "server", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13},
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
}

// tlsQueuedServer is queuedServer over TLS: the server's writes go through
// crypto/tls on a socket with a small send buffer, the client reads
// nothing until the test does.
func tlsQueuedServer(t *testing.T, opts Options) (*Conn, *tls.Conn, *rawReader) {
	t.Helper()
	scfg, ccfg := tlsConfigs(t)
	l := listen(t)
	opts.QueueWrites = true
	ch := acceptOne(t, tls.NewListener(l, scfg), opts, func(c *Conn) {
		if err := c.nc.(*tls.Conn).NetConn().(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
			t.Error(err)
		}
	})
	raw := rawDial(t, l)
	if err := raw.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, ccfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r := rawAuth(t, tc)
	c := <-ch
	if c == nil {
		t.Fatal("server side of the TLS connection failed")
	}
	t.Cleanup(func() { c.Close(); <-c.Done() })
	return c, tc, r
}

// TestCloseWritesQueueFirst: Close with messages still queued (an answer,
// then Close, to a peer slower than the answer) ends the connection at
// once, yet the peer gets every message, in order, before the end of the
// stream: on a plain socket and over TLS.
func TestCloseWritesQueueFirst(t *testing.T) {
	for _, tc := range queuedSetups {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			c, nc, r := tc.setup(t, Options{WriteTimeout: time.Minute, Limits: &Limits{MaxWriteQueue: 8 << 20}})
			const n = 300 // 2.4 MB: far more than the kernel's buffers hold
			fillQueue(t, c, n)
			c.Close()
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("Close with a queue did not end the connection")
			}
			if err := c.Emit(testPath, testIface, "Late", "", nil); err == nil {
				t.Error("a write after Close succeeded")
			}
			if got, err := readPads(r, n, 0); got != n {
				t.Fatalf("the peer got %d of %d queued messages: %v", got, n, err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := r.r.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the queue: %v, want the end of the stream", err)
			}
		})
	}
}

// TestCloseLingerBounded: a closed connection whose peer never reads its
// queue lets go of it after WriteTimeout: the socket is closed and no
// goroutine is left.
func TestCloseLingerBounded(t *testing.T) {
	noLeaks(t)
	c, _, _ := queuedServer(t, Options{WriteTimeout: 300 * time.Millisecond, Limits: &Limits{MaxWriteQueue: 8 << 20}})
	for range 300 {
		if err := c.Emit(testPath, testIface, "Pad", "s", strBody(strings.Repeat("p", 8000))); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c.wq.mu.Lock()
		flushing := c.wq.flushing
		c.wq.mu.Unlock()
		if !flushing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue of a closed connection still written to after 10 s")
		}
	}
}
