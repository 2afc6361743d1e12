// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// fillQueue emits n signals of 8 kB numbered 0..n-1 and fails unless
// some of them are still queued.
func fillQueue(t *testing.T, c *Conn, n int) {
	t.Helper()
	for i := range n {
		if err := c.Emit(testPath, testIface, "Pad", "us", append(u32Body(uint32(i)), strBody(strings.Repeat("p", 8000))[4:]...)); err != nil {
			t.Fatal(err)
		}
	}
	c.wq.mu.Lock()
	queued := len(c.wq.buf) + c.wq.writing
	c.wq.mu.Unlock()
	if queued == 0 {
		t.Fatal("nothing queued: the kernel took it all")
	}
}

// readPads reads the n signals of fillQueue in order, pausing after each;
// it returns how many came and what stopped it.
func readPads(r *rawReader, n int, pause time.Duration) (int, error) {
	for i := range n {
		hdr, err := r.r.Peek(wire.HeaderSize)
		if err != nil {
			return i, err
		}
		size, _, err := wire.FrameSize(hdr)
		if err != nil {
			return i, err
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(r.r, frame); err != nil {
			return i, err
		}
		var m wire.Message
		if err := wire.Parse(frame, &m); err != nil {
			return i, err
		}
		rd := wire.NewReader(m.Body, m.BigEndian)
		if v, err := rd.Uint32(); err != nil || v != uint32(i) || m.Member != "Pad" {
			return i, errors.New("out of order")
		}
		time.Sleep(pause)
	}
	return n, nil
}

// flusherGone waits up to d for the queue's goroutine to stop.
func flusherGone(c *Conn, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		c.wq.mu.Lock()
		flushing := c.wq.flushing
		c.wq.mu.Unlock()
		if !flushing {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestCloseLingerWithoutWriteTimeout: with WriteTimeout 0 the linger is
// DefaultLinger, and it bounds the write in flight at Close too (which
// had no deadline): a peer that never reads does not keep the queue's
// goroutine and the socket for ever.
func TestCloseLingerWithoutWriteTimeout(t *testing.T) {
	c, _, _ := queuedServer(t, Options{Limits: &Limits{MaxWriteQueue: 8 << 20}})
	fillQueue(t, c, 300)
	c.Close()
	<-c.Done()
	if !flusherGone(c, DefaultLinger+3*time.Second) {
		t.Fatalf("the queue of a closed connection still written %v after Close", DefaultLinger+3*time.Second)
	}
}

// TestCloseLingerPeerKeepsSending: a peer that goes on sending (its
// heartbeats) while a closed connection lingers, and reads slowly, still
// gets the whole queue. Closing the socket with the peer's bytes unread
// made Linux reset the connection and drop what the send buffer held.
func TestCloseLingerPeerKeepsSending(t *testing.T) {
	for _, tc := range queuedSetups {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			c, nc, r := tc.setup(t, Options{WriteTimeout: 20 * time.Second, Limits: &Limits{MaxWriteQueue: 8 << 20}})
			const n = 60 // 480 kB: more than the kernel's buffers hold
			fillQueue(t, c, n)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				sig := wire.AppendSignal(nil, 1, "/a", "a.b", "Heartbeat", "", "", nil)
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if _, err := nc.Write(sig); err != nil {
						return
					}
				}
			})
			defer func() { close(stop); wg.Wait() }()
			time.Sleep(20 * time.Millisecond)
			c.Close()
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Close with a queue did not end the connection")
			}
			if got, err := readPads(r, n, 10*time.Millisecond); got < n {
				t.Fatalf("the peer got %d of %d queued messages: %v", got, n, err)
			}
		})
	}
}

// TestCloseLingerUnix: on a unix socket too, shutting the read side wakes
// the reader at once, and the peer gets the whole queue, then the end of
// the stream.
func TestCloseLingerUnix(t *testing.T) {
	noLeaks(t)
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := acceptOne(t, l, Options{QueueWrites: true, WriteTimeout: time.Minute, Limits: &Limits{MaxWriteQueue: 8 << 20}},
		func(c *Conn) { _ = c.nc.(*net.UnixConn).SetWriteBuffer(16 << 10) })
	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.(*net.UnixConn).SetReadBuffer(16 << 10)
	r := rawAuth(t, nc)
	c := <-ch
	t.Cleanup(func() { c.Close(); <-c.Done() })
	const n = 300
	fillQueue(t, c, n)
	c.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close with a queue did not end the connection")
	}
	if got, err := readPads(r, n, 0); got < n {
		t.Fatalf("the peer got %d of %d: %v", got, n, err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the queue: %v, want the end of the stream", err)
	}
}

// TestCloseLingerPeerResets: a peer that resets the connection while it
// lingers ends the queue's goroutine at once, not at the linger's end,
// and a second Close changes nothing.
func TestCloseLingerPeerResets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*testing.T, Options) (*Conn, net.Conn, *rawReader)
	}{
		{"plain", queuedServer},
		{"tls", func(t *testing.T, o Options) (*Conn, net.Conn, *rawReader) {
			c, tc, r := tlsQueuedServer(t, o)
			return c, tc.NetConn(), r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			c, nc, _ := tc.setup(t, Options{WriteTimeout: time.Minute, Limits: &Limits{MaxWriteQueue: 8 << 20}})
			fillQueue(t, c, 300)
			c.Close()
			<-c.Done()
			_ = nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
			c.Close()
			if !flusherGone(c, 3*time.Second) {
				t.Fatal("the queue's goroutine still runs for a peer that reset the connection")
			}
		})
	}
}

// TestReplyThenClose: a message written right before Close (a refused
// Register's reply) reaches the peer, then the end of the stream, however
// the queue's goroutine is scheduled (over TLS every write goes through
// it); Done comes at once.
func TestReplyThenClose(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[useTLS], func(t *testing.T) {
			for i := range 30 {
				var (
					s  *Conn
					nc net.Conn
					r  *rawReader
				)
				if useTLS {
					var tc *tls.Conn
					s, tc, r = tlsQueuedServer(t, Options{WriteTimeout: 5 * time.Second})
					nc = tc
				} else {
					s, nc, r = queuedServer(t, Options{WriteTimeout: 5 * time.Second})
				}
				_ = s.Emit(testPath, testIface, "Refused", "", nil)
				s.Close()
				select {
				case <-s.Done():
				case <-time.After(2 * time.Second):
					t.Fatalf("round %d: Done not closed 2 s after Close", i)
				}
				if m := r.message(t); m.Member != "Refused" {
					t.Fatalf("round %d: %q", i, m.Member)
				}
				_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := r.r.ReadByte(); !errors.Is(err, io.EOF) {
					t.Fatalf("round %d: after the reply: %v, want the end of the stream", i, err)
				}
			}
		})
	}
}
