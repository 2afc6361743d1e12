// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

const (
	testPath  = "/org/example/obj"
	testIface = "org.example.Test"
)

// listen returns a TCP listener on loopback, closed at the end of the test.
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pair connects a client Conn to a server Conn over loopback TCP. prep
// runs on the server before it starts reading.
func pair(t testing.TB, sopts, copts Options, prep func(s *Conn)) (server, client *Conn) {
	t.Helper()
	l := listen(t)
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := Accept(context.Background(), nc, sopts)
		if err == nil && prep != nil {
			prep(c)
		}
		if err == nil {
			c.Start()
		}
		ch <- res{c, err}
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, err = Client(context.Background(), nc, copts)
	if err != nil {
		t.Fatal(err)
	}
	client.Start()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		client.Close()
		r.c.Close()
		<-client.Done()
		<-r.c.Done()
	})
	return r.c, client
}

// noLeaks fails the test if goroutines it started outlive it (checked
// after the cleanups registered later, which run first).
func noLeaks(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left, %d before the test", runtime.NumGoroutine(), base)
				return
			}
		}
	})
}

func strBody(ss ...string) []byte {
	var w wire.Writer
	for _, s := range ss {
		w.String(s)
	}
	return w.Buf
}

func u32Body(v uint32) []byte {
	var w wire.Writer
	w.Uint32(v)
	return w.Buf
}

// echoIface answers Echo(s) -> s, Fail() with an error and Sleep with a
// late reply from another goroutine.
func echoIface(wg *sync.WaitGroup) *Interface {
	return &Interface{
		Name:    testIface,
		Methods: []string{"Echo", "Fail", "Late"},
		XML:     ` <interface name="org.example.Test"><method name="Echo"><arg type="s" direction="in"/><arg type="s" direction="out"/></method></interface>` + "\n",
		Call: func(c *Conn, m *wire.Message) {
			switch m.Member {
			case "Echo":
				r := wire.NewReader(m.Body, m.BigEndian)
				s, err := r.String()
				if err != nil {
					c.ReplyError(m, ErrInvalidArgs, err.Error())
					return
				}
				c.Reply(m, "s", strBody(s))
			case "Fail":
				c.ReplyError(m, "org.example.Error.Nope", "nope")
			case "Late":
				call := *m
				call.Body = nil
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(10 * time.Millisecond)
					c.Reply(&call, "s", strBody("late"))
				}()
			}
		},
	}
}

// replyString returns a function that reads the string of a reply,
// failing t on an error.
func replyString(t testing.TB) func(r *Reply, err error) string {
	return func(r *Reply, err error) string { t.Helper(); return readReplyString(t, r, err) }
}

func readReplyString(t testing.TB, r *Reply, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	rd := r.Reader()
	s, err := rd.String()
	if err != nil {
		t.Fatalf("reply %q: %v", r.Signature, err)
	}
	return s
}

// rawDial opens a plain TCP connection to l.
func rawDial(t testing.TB, l net.Listener) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// rawReader reads SASL lines and messages from a raw socket.
type rawReader struct{ r *bufio.Reader }

func newRawReader(nc net.Conn) *rawReader {
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	return &rawReader{bufio.NewReader(nc)}
}

func (r *rawReader) line(t testing.TB) string {
	t.Helper()
	l, err := r.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (r *rawReader) message(t testing.TB) *wire.Message {
	t.Helper()
	hdr, err := r.r.Peek(wire.HeaderSize)
	if err != nil {
		t.Fatal(err)
	}
	size, _, err := wire.FrameSize(hdr)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(r.r, frame); err != nil {
		t.Fatal(err)
	}
	var m wire.Message
	if err := wire.Parse(frame, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// rawAuth runs a pipelined ANONYMOUS handshake on nc.
func rawAuth(t testing.TB, nc net.Conn) *rawReader {
	t.Helper()
	if _, err := io.WriteString(nc, "\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n"); err != nil {
		t.Fatal(err)
	}
	r := newRawReader(nc)
	for {
		if l := r.line(t); strings.HasPrefix(l, "OK ") {
			return r
		}
	}
}
