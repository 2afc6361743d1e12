// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// BenchmarkRoundTrip measures one method call and its reply over loopback
// TCP to a Conn server: called by a Conn, and by godbus (through its
// public API, its own ANONYMOUS handshake). The server is the same, so the
// difference is the client stacks'. A godbus server on a peer link is no
// longer compared: godbus only has the client half of SASL.
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	b.Run("wireconn", func(b *testing.B) {
		var wg sync.WaitGroup
		defer wg.Wait()
		server, client := pair(b, Options{}, Options{}, func(s *Conn) { s.Export(testPath, echoIface(&wg)) })
		server.MarkRegistered()
		req := &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody("ping")}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.Call(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("godbus-client", func(b *testing.B) {
		var wg sync.WaitGroup
		defer wg.Wait()
		g := godbusClient(b, echoIface(&wg))
		obj := g.Object("org.eclipse.bluechi", testPath)
		b.ReportAllocs()
		for b.Loop() {
			var s string
			if err := obj.CallWithContext(ctx, testIface+".Echo", 0, "ping").Store(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkQueuedRoundTrip is one method call and its reply, the server
// with and without QueueWrites, on a plain socket and over TLS (where a
// queued reply is written by the queue's goroutine): what queueing costs
// a link whose peer reads.
func BenchmarkQueuedRoundTrip(b *testing.B) {
	ctx := context.Background()
	for _, useTLS := range []bool{false, true} {
		for _, queued := range []bool{false, true} {
			name := map[bool]string{false: "plain", true: "tls"}[useTLS] + "/" + map[bool]string{false: "direct", true: "queued"}[queued]
			b.Run(name, func(b *testing.B) {
				var wg sync.WaitGroup
				defer wg.Wait()
				client := queuedPair(b, useTLS, Options{QueueWrites: queued, WriteTimeout: time.Minute}, echoIface(&wg))
				req := &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody("ping")}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := client.Call(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// queuedPair connects a client Conn to a registered server Conn with
// sopts that serves iface, over loopback TCP or TLS.
func queuedPair(b *testing.B, useTLS bool, sopts Options, iface *Interface) *Conn {
	l := listen(b)
	exp := func(c *Conn) {
		c.Export(testPath, iface)
		c.MarkRegistered()
	}
	var ch <-chan *Conn
	var ccfg *tls.Config
	if useTLS {
		var scfg *tls.Config
		scfg, ccfg = tlsConfigs(b)
		ch = acceptOne(b, tls.NewListener(l, scfg), sopts, exp)
	} else {
		ch = acceptOne(b, l, sopts, exp)
	}
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if useTLS {
		nc = tls.Client(nc, ccfg)
	}
	client, err := Client(context.Background(), nc, Options{})
	if err != nil {
		b.Fatal(err)
	}
	client.Start()
	s := <-ch
	if s == nil {
		b.Fatal("server side failed")
	}
	b.Cleanup(func() { client.Close(); s.Close(); <-client.Done(); <-s.Done() })
	return client
}

// godbusClient returns a godbus connection authenticated (ANONYMOUS, no
// Hello) to a registered Conn server over loopback TCP that exports iface
// at testPath.
func godbusClient(b *testing.B, iface *Interface) *dbus.Conn {
	l := listen(b)
	srv := acceptOne(b, l, Options{}, func(c *Conn) {
		c.Export(testPath, iface)
		c.MarkRegistered()
	})
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	g, err := dbus.NewConn(nc)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Auth([]dbus.Auth{dbus.AuthAnonymous()}); err != nil {
		g.Close()
		b.Fatal(err)
	}
	s := <-srv
	if s == nil {
		g.Close()
		b.Fatal("server handshake failed")
	}
	b.Cleanup(func() { g.Close(); s.Close(); <-s.Done() })
	return g
}

// memoryInUse is the live heap plus goroutine stacks, after collections.
func memoryInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkIdleConnMemory reports what one idle, authenticated server
// end of a Conn costs: live heap and stacks per connection, 500
// connections, the clients raw sockets. (The godbus peer link it was once
// compared with needed a forged SASL exchange and is gone.)
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 500
	for b.Loop() {
		l := listen(b)
		var mu sync.Mutex
		var closers []func()
		accepted := make(chan struct{}, n)
		go func() {
			for {
				nc, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer func() { accepted <- struct{}{} }()
					c, err := Accept(context.Background(), nc, Options{})
					if err != nil {
						b.Error(err)
						return
					}
					c.MarkRegistered()
					c.Start()
					mu.Lock()
					closers = append(closers, func() { c.Close(); <-c.Done() })
					mu.Unlock()
				}()
			}
		}()
		var clients []net.Conn
		before := memoryInUse()
		for range n {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			rawAuth(b, nc)
			clients = append(clients, nc)
		}
		for range n {
			<-accepted
		}
		after := memoryInUse()
		b.ReportMetric(float64(after-before)/n, "B/conn")
		l.Close()
		for _, c := range closers {
			c()
		}
		for _, nc := range clients {
			nc.Close()
		}
	}
}
