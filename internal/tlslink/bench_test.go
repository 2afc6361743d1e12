// SPDX-License-Identifier: Apache-2.0

package tlslink

import (
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/testcerts"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
)

// benchLink is a loopback listener, plain or TLS, with a dialer to match.
type benchLink struct {
	l    net.Listener
	dial func(ctx context.Context) (net.Conn, error)
}

func newBenchLink(b *testing.B, useTLS bool) *benchLink {
	b.Helper()
	set, err := testcerts.New(b.TempDir(), nil, "node1")
	if err != nil {
		b.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(inner.Addr().String())
	addr := "tcp:host=127.0.0.1,port=" + port
	bl := &benchLink{l: inner}
	if !useTLS {
		bl.dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", inner.Addr().String())
		}
	} else {
		ctrl, _, err := tlsconfig.NewHolder(set.Controller)
		if err != nil {
			b.Fatal(err)
		}
		node, _, err := tlsconfig.NewHolder(set.Nodes["node1"])
		if err != nil {
			b.Fatal(err)
		}
		bl.l = NewListener(inner, ctrl, ListenerOptions{MaxHandshakes: 1000})
		d := &Dialer{Holder: node}
		bl.dial = func(ctx context.Context) (net.Conn, error) { return d.Dial(ctx, addr) }
	}
	b.Cleanup(func() { bl.l.Close() })
	return bl
}

// pair connects once and returns both ends after one byte each way (the
// handshake complete on both sides, as after SASL).
func (bl *benchLink) pair(b *testing.B) (client, server net.Conn) {
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := bl.l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		var one [1]byte
		io.ReadFull(c, one[:])
		c.Write(one[:])
		accepted <- c
	}()
	client, err := bl.dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var one [1]byte
	client.Write([]byte{0})
	if _, err := io.ReadFull(client, one[:]); err != nil {
		b.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	return client, server
}

// BenchmarkConnect is one agent connection up to its first exchange:
// TCP, the TLS handshake with certificate verification on both sides
// (tls), the first byte each way. It bounds what TLS adds to a
// registration.
func BenchmarkConnect(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "tls"}[useTLS], func(b *testing.B) {
			bl := newBenchLink(b, useTLS)
			b.ReportAllocs()
			for b.Loop() {
				c, s := bl.pair(b)
				c.Close()
				s.Close()
			}
		})
	}
}

// BenchmarkRoundTrip sends a message of a typical size (a JobDone or a
// unit event is a few hundred bytes) to the other end and back on an
// established connection.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{256, 16 << 10} {
		for _, useTLS := range []bool{false, true} {
			b.Run(map[bool]string{false: "plain", true: "tls"}[useTLS]+"/"+strconv.Itoa(size), func(b *testing.B) {
				bl := newBenchLink(b, useTLS)
				c, s := bl.pair(b)
				defer c.Close()
				defer s.Close()
				go io.Copy(s, s) // echo
				msg := make([]byte, size)
				back := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Write(msg); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, back); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkIdleConnMemory reports the heap an idle connection holds
// after a small exchange and after a 16 kB one (a ListUnits reply), both
// ends in this process together (B/pair): every iteration opens one more
// connection and keeps it (run with -benchtime 200x or so).
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		for _, size := range []int{256, 16 << 10} {
			b.Run(map[bool]string{false: "plain", true: "tls"}[useTLS]+"/"+strconv.Itoa(size), func(b *testing.B) {
				bl := newBenchLink(b, useTLS)
				var conns []net.Conn
				defer func() {
					for _, c := range conns {
						c.Close()
					}
				}()
				before := heapInUse()
				for b.Loop() {
					c, s := bl.pair(b)
					exchange(b, c, s, size)
					exchange(b, s, c, size)
					conns = append(conns, c, s)
				}
				b.StopTimer()
				after := heapInUse()
				b.ReportMetric(float64(int64(after)-int64(before))/float64(len(conns)/2), "B/pair")
			})
		}
	}
}

func exchange(b *testing.B, from, to net.Conn, size int) {
	msg := make([]byte, size)
	done := make(chan error, 1)
	go func() { _, err := from.Write(msg); done <- err }()
	to.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(to, msg); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
