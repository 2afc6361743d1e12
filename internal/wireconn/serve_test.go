// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// serveIface queues every call with Serve: Step(u) records u in order and
// replies u; Block(u) records u, releases the queue, waits for unblock and
// replies; a call with NO_REPLY_EXPECTED records too.
type serveRec struct {
	mu      sync.Mutex
	seen    []uint32 // guarded by mu
	unblock chan struct{}
}

func (r *serveRec) iface() *Interface {
	return &Interface{
		Name:    testIface,
		Methods: []string{"Step", "Block"},
		Call: func(c *Conn, m *wire.Message) {
			rd := wire.NewReader(m.Body, m.BigEndian)
			v, err := rd.Uint32()
			call := CallOf(m)
			if err != nil {
				c.ErrorCall(call, ErrInvalidArgs, "want u")
				return
			}
			c.Serve(call, func(ctx context.Context) {
				if ConnFrom(ctx) != c {
					panic("ConnFrom")
				}
				if got, ok := CallFrom(ctx); !ok || got != call {
					panic("CallFrom")
				}
				r.mu.Lock()
				r.seen = append(r.seen, v)
				r.mu.Unlock()
				if call.Member == "Block" {
					Release(ctx)
					Release(ctx) // twice is harmless
					select {
					case <-r.unblock:
					case <-ctx.Done():
						return
					}
				}
				c.ReplyCall(call, "u", u32Body(v))
			})
		},
	}
}

func TestServeOrderAndRelease(t *testing.T) {
	noLeaks(t)
	rec := &serveRec{unblock: make(chan struct{})}
	_, client := pair(t, Options{}, Options{}, func(s *Conn) { s.Export(testPath, rec.iface()) })
	ctx := context.Background()

	// Block releases the queue: the Steps behind it are served while it
	// waits, and in wire order.
	blocked := make(chan error, 1)
	client.Go(ctx, &Request{Path: testPath, Interface: testIface, Member: "Block", Signature: "u", Body: u32Body(0)},
		func(m *wire.Message, err error) { blocked <- err })
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		client.Go(ctx, &Request{Path: testPath, Interface: testIface, Member: "Step", Signature: "u", Body: u32Body(uint32(i))},
			func(m *wire.Message, err error) {
				defer wg.Done()
				if err != nil {
					errs <- err
				}
			})
	}
	// A fire-and-forget call is served too, without a reply.
	if err := client.Send(&Request{Path: testPath, Interface: testIface, Member: "Step", Signature: "u", Body: u32Body(n + 1)}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		t.Fatalf("Block answered before it was unblocked: %v", err)
	default:
	}
	close(rec.unblock)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	// The Send was queued after every Step; a last call proves it ran.
	if _, err := client.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Step", Signature: "u", Body: u32Body(n + 2)}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) != n+3 {
		t.Fatalf("served %d calls, want %d", len(rec.seen), n+3)
	}
	for i, v := range rec.seen {
		if v != uint32(i) {
			t.Fatalf("call %d served as number %d: %v", v, i, rec.seen)
		}
	}
}

func TestServeIdleHasNoGoroutine(t *testing.T) {
	c := &Conn{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()
	done := make(chan struct{})
	c.Serve(Call{Serial: 1}, func(ctx context.Context) { close(done) })
	<-done
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.qmu.Lock()
		running, items := c.queue.running, c.queue.items
		c.qmu.Unlock()
		if !running && items == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("queue goroutine still running after the queue emptied")
		}
	}
}

func TestServeContextEndsWithConnection(t *testing.T) {
	noLeaks(t)
	started := make(chan struct{})
	ended := make(chan error, 1)
	server, client := pair(t, Options{}, Options{}, func(s *Conn) {
		s.Export(testPath, &Interface{Name: testIface, Methods: []string{"Wait"}, Call: func(c *Conn, m *wire.Message) {
			c.Serve(CallOf(m), func(ctx context.Context) {
				close(started)
				<-ctx.Done()
				ended <- ctx.Err()
			})
		}})
	})
	if err := client.Send(&Request{Path: testPath, Interface: testIface, Member: "Wait"}); err != nil {
		t.Fatal(err)
	}
	<-started
	client.Close()
	<-server.Done()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("ctx ended with %v", err)
	}
}

func TestServeFloodClosesConnection(t *testing.T) {
	noLeaks(t)
	unblock := make(chan struct{})
	server, client := pair(t, Options{}, Options{}, func(s *Conn) {
		s.Export(testPath, &Interface{Name: testIface, Methods: []string{"Hold"}, Call: func(c *Conn, m *wire.Message) {
			c.Serve(CallOf(m), func(ctx context.Context) {
				select {
				case <-unblock:
				case <-ctx.Done():
				}
			})
		}})
	})
	for i := 0; i < MaxQueuedCalls+10; i++ {
		if err := client.Send(&Request{Path: testPath, Interface: testIface, Member: "Hold"}); err != nil {
			break // the server may already have closed
		}
	}
	select {
	case <-server.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("flooding peer not cut off")
	}
	var qe *QueueError
	if err := server.Err(); !errors.As(err, &qe) {
		t.Fatalf("connection ended with %v, want a *QueueError", err)
	}
	close(unblock)
}

// TestServeFloodRefused: with RefuseOverflow the calls beyond the queue's
// limit are answered LimitsExceeded, the connection stays and serves the
// queued ones.
func TestServeFloodRefused(t *testing.T) {
	noLeaks(t)
	unblock := make(chan struct{})
	server, client := pair(t, Options{RefuseOverflow: true}, Options{}, func(s *Conn) {
		s.Export(testPath, &Interface{Name: testIface, Methods: []string{"Hold"}, Call: func(c *Conn, m *wire.Message) {
			c.Serve(CallOf(m), func(ctx context.Context) {
				select {
				case <-unblock:
				case <-ctx.Done():
				}
				call, _ := CallFrom(ctx)
				c.ReplyCall(call, "", nil)
			})
		}})
	})
	ctx := context.Background()
	const calls = MaxQueuedCalls + 20
	results := make(chan error, calls)
	for i := 0; i < calls; i++ {
		client.Go(ctx, &Request{Path: testPath, Interface: testIface, Member: "Hold"}, func(_ *wire.Message, err error) { results <- err })
	}
	// One call runs and MaxQueuedCalls wait (or MaxQueuedCalls+1 wait if
	// the queue's goroutine had not taken the first yet): 19 or 20 are
	// refused at once, the others answered once unblocked.
	refused := 0
	for refused < 19 {
		select {
		case err := <-results:
			var e *Error
			if !errors.As(err, &e) || e.Name != ErrLimitsExceeded {
				t.Fatalf("a call beyond the limit: %v", err)
			}
			refused++
		case <-time.After(20 * time.Second):
			t.Fatalf("%d calls refused", refused)
		}
	}
	close(unblock)
	for i := refused; i < calls; i++ {
		var e *Error
		if err := <-results; err != nil && !(errors.As(err, &e) && e.Name == ErrLimitsExceeded && refused == 19) {
			t.Fatalf("a queued call: %v", err)
		} else if err != nil {
			refused++
		}
	}
	select {
	case <-server.Done():
		t.Fatalf("connection closed: %v", server.Err())
	default:
	}
}

func TestReplyCallAndErrorCall(t *testing.T) {
	noLeaks(t)
	_, client := pair(t, Options{}, Options{}, func(s *Conn) {
		s.Export(testPath, &Interface{Name: testIface, Methods: []string{"Later", "Bad"}, Call: func(c *Conn, m *wire.Message) {
			call := CallOf(m)
			go func() { // answered later, from another goroutine
				if call.Member == "Bad" {
					c.ErrorCall(call, "org.example.Error.Bad", "bad \x00 text")
					return
				}
				c.ReplyCall(call, "s", strBody(call.Path+" "+call.Interface+" "+call.Member))
			}()
		}})
	})
	ctx := context.Background()
	rep, err := client.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Later"})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Reader()
	if s, _ := r.String(); s != fmt.Sprintf("%s %s Later", testPath, testIface) {
		t.Fatalf("reply %q", s)
	}
	_, err = client.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Bad"})
	var we *Error
	if !errors.As(err, &we) || we.Name != "org.example.Error.Bad" || we.Message != "(invalid message)" {
		t.Fatalf("error %v", err)
	}
	if name, body := we.DBusError(); name != we.Name || len(body) != 1 {
		t.Fatalf("DBusError() = %q, %v", name, body)
	}
}
