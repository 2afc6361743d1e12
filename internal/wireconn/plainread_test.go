// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// hiddenFD is a connection without a file descriptor to read from (as a
// TLS connection is): the reader takes its plain path.
type hiddenFD struct{ net.Conn }

// TestPlainReads: over a connection read with plain Reads, calls of every
// size (a small read buffer, a chunk, many chunks) and a burst of small
// ones arrive whole and in order.
func TestPlainReads(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	l := listen(t)
	srv := make(chan *Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			srv <- nil
			return
		}
		c, err := Accept(context.Background(), hiddenFD{nc}, Options{})
		if err != nil {
			t.Error(err)
			srv <- nil
			return
		}
		c.MarkRegistered()
		c.Export(testPath, echoIface(&wg))
		c.Start()
		srv <- c
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, err := Client(context.Background(), hiddenFD{nc}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	client.Start()
	server := <-srv
	if server == nil {
		t.Fatal("no server")
	}
	defer func() { client.Close(); server.Close(); <-client.Done(); <-server.Done() }()
	if server.rc != nil || client.rc != nil {
		t.Fatal("the connections read from a file descriptor")
	}
	ctx := context.Background()
	echo := func(s string) {
		t.Helper()
		r, err := client.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody(s)})
		if err != nil {
			t.Fatal(err)
		}
		rd := r.Reader()
		if got, err := rd.String(); err != nil || got != s {
			t.Fatalf("Echo of %d bytes: %d bytes back, %v", len(s), len(got), err)
		}
	}
	for _, n := range []int{0, 100, smallRead, smallRead * 3, chunkSize, chunkSize*5 + 7, 1 << 20} {
		echo(strings.Repeat("x", n))
	}
	var calls []chan string
	for i := range 300 {
		done := make(chan string, 1)
		calls = append(calls, done)
		client.Go(ctx, &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody(strings.Repeat("y", i))},
			func(m *wire.Message, err error) {
				if err != nil {
					done <- err.Error()
					return
				}
				r := wire.NewReader(m.Body, m.BigEndian)
				s, _ := r.String()
				done <- s
			})
	}
	for i, done := range calls {
		if got := <-done; got != strings.Repeat("y", i) {
			t.Fatalf("call %d: %.40q", i, got)
		}
	}
}
