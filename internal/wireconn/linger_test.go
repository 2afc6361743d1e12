// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"errors"
	"io"
	"strings"
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
