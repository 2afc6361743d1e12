// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/transport"
)

// BenchmarkRoundTrip compares one method call and its reply over loopback
// TCP: a Conn calling a Conn, and godbus calling godbus over the current
// peer link (transport.Accept and transport.DialNetConn).
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
	b.Run("godbus", func(b *testing.B) {
		g := godbusPair(b)
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

// godbusPair returns the client end of a godbus peer link whose server
// exports godbusEcho.
func godbusPair(b *testing.B) *dbus.Conn {
	l := listen(b)
	srv := make(chan *dbus.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			srv <- nil
			return
		}
		g, err := transport.Accept(nc)
		if err == nil {
			err = g.Export(godbusEcho{}, testPath, testIface)
		}
		if err != nil {
			b.Error(err)
		}
		srv <- g
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	g, err := transport.DialNetConn(nc)
	if err != nil {
		b.Fatal(err)
	}
	s := <-srv
	if s == nil {
		b.Fatal("no server")
	}
	b.Cleanup(func() { g.Close(); s.Close() })
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
// end costs (live heap and stacks per connection, 500 connections) for a
// Conn and for the current godbus peer link. The clients are raw sockets,
// the same for both, so the difference is the stacks'.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 500
	for _, impl := range []string{"wireconn", "godbus"} {
		b.Run(impl, func(b *testing.B) {
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
							if impl == "wireconn" {
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
								return
							}
							g, err := transport.Accept(nc)
							if err != nil {
								b.Error(err)
								return
							}
							mu.Lock()
							closers = append(closers, func() { g.Close() })
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
		})
	}
}
