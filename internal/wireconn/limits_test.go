// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// acceptOne accepts one connection on l with opts, starts it and returns
// it (nil if the handshake failed; the error goes to errc if not nil).
func acceptOne(t testing.TB, l net.Listener, opts Options, prep func(*Conn)) <-chan *Conn {
	ch := make(chan *Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		c, err := Accept(context.Background(), nc, opts)
		if err != nil {
			ch <- nil
			return
		}
		if prep != nil {
			prep(c)
		}
		c.Start()
		ch <- c
	}()
	return ch
}

// bigHeader is the fixed header of a method call that announces a body of
// body bytes (and no header fields worth parsing).
func bigHeader(body uint32) []byte {
	h := []byte{'l', wire.TypeMethodCall, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(h[4:], body)
	return h
}

// heapGrowth runs work and returns how much the heap in use grew at its
// peak, sampled while it ran.
func heapGrowth(work func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	work()
	close(stop)
	wg.Wait()
	return peak - base
}

// TestHugeMessageBeforeRegistration: a peer that has not registered and
// announces a 120 MB message, then sends 100 MB of body, is cut off at the
// header with a LimitError; the body costs us nothing.
func TestHugeMessageBeforeRegistration(t *testing.T) {
	noLeaks(t)
	l := listen(t)
	closed := make(chan error, 1)
	srv := acceptOne(t, l, Options{Closed: func(_ *Conn, err error) { closed <- err }}, nil)
	nc := rawDial(t, l)
	rawAuth(t, nc)
	grew := heapGrowth(func() {
		if _, err := nc.Write(bigHeader(120 << 20)); err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 1<<20)
		sent := 0
		for ; sent < 100<<20; sent += len(chunk) {
			if _, err := nc.Write(chunk); err != nil {
				break // cut off, as it should be
			}
		}
		if sent >= 100<<20 {
			t.Error("100 MB of body were accepted")
		}
	})
	var le *LimitError
	if err := <-closed; !errors.As(err, &le) || le.Max != UnregisteredLimits.MaxMessageSize {
		t.Fatalf("closed with %v, want a LimitError", err)
	}
	if grew > 8<<20 {
		t.Errorf("heap grew by %d bytes", grew)
	}
	<-srv
}

// TestLimitsFollowRegistration: 100 kB messages are refused before
// MarkRegistered and served afterwards; a registered peer announcing more
// than the D-Bus maximum is still refused.
func TestLimitsFollowRegistration(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	big := strings.Repeat("x", 100<<10)

	closed := make(chan error, 1)
	_, client := pair(t, Options{Closed: func(_ *Conn, err error) { closed <- err }}, Options{}, func(s *Conn) {
		s.Export(testPath, echoIface(&wg))
	})
	_, err := client.Call(context.Background(), &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody(big)})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("100 kB call before registration: %v", err)
	}
	var le *LimitError
	if err := <-closed; !errors.As(err, &le) {
		t.Fatalf("closed with %v", err)
	}

	server, client := pair(t, Options{}, Options{}, func(s *Conn) { s.Export(testPath, echoIface(&wg)) })
	server.MarkRegistered()
	str := replyString(t)
	if got := str(client.Call(context.Background(), &Request{Path: testPath, Interface: testIface, Member: "Echo", Signature: "s", Body: strBody(big)})); got != big {
		t.Fatalf("registered echo: %d bytes back", len(got))
	}
}

// TestStall: a message left unfinished is cut off after the stall
// timeout, also when its bytes keep trickling in (slowloris); whole
// messages spaced out are fine.
func TestStall(t *testing.T) {
	noLeaks(t)
	lim := Limits{MaxMessageSize: 64 << 10, StallTimeout: 300 * time.Millisecond}
	for _, tc := range []struct {
		name  string
		drip  time.Duration // between bytes; 0: send half and stop
		whole bool
	}{{"half", 0, false}, {"slowloris", 20 * time.Millisecond, false}, {"whole messages", 100 * time.Millisecond, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			defer wg.Wait()
			l := listen(t)
			closed := make(chan error, 1)
			srv := acceptOne(t, l, Options{Limits: &lim, Closed: func(_ *Conn, err error) { closed <- err }},
				func(c *Conn) { c.Export(testPath, echoIface(&wg)) })
			nc := rawDial(t, l)
			r := rawAuth(t, nc)
			msg := appendMessage(nil, &header{typ: wire.TypeMethodCall, serial: 1, path: testPath, iface: testIface, member: "Echo", signature: "s"}, strBody("hello"))
			start := time.Now()
			switch {
			case tc.whole:
				for i := range 8 {
					binary.LittleEndian.PutUint32(msg[8:], uint32(i+1))
					if _, err := nc.Write(msg); err != nil {
						t.Fatal(err)
					}
					if m := r.message(t); m.ReplySerial != uint32(i+1) {
						t.Fatalf("reply to %d", m.ReplySerial)
					}
					time.Sleep(tc.drip) // the pace of a quiet peer
				}
				select {
				case err := <-closed:
					t.Fatalf("closed: %v", err)
				default:
				}
			case tc.drip == 0:
				nc.Write(msg[:len(msg)/2])
			default:
			drip:
				for i := 0; ; i = (i + 1) % len(msg) {
					if _, err := nc.Write(msg[i : i+1]); err != nil {
						break
					}
					select {
					case <-closed:
						closed <- ErrStalled // put back for the check below
						break drip
					case <-time.After(tc.drip):
					}
				}
			}
			if !tc.whole {
				err := <-closed
				if !errors.Is(err, ErrStalled) {
					t.Fatalf("closed with %v", err)
				}
				if d := time.Since(start); d < lim.StallTimeout {
					t.Fatalf("closed after %v", d)
				}
			}
			if c := <-srv; c != nil {
				c.Close()
				<-c.Done()
			}
		})
	}
}

// TestSilentPeers: 500 connections that never send a byte, and 500 that
// authenticate and then say nothing, are all closed (handshake timeout;
// Admission: only Max admitted at once, the rest refused at once, the
// admitted ones timed out), with bounded memory and no goroutine left.
func TestSilentPeers(t *testing.T) {
	noLeaks(t)
	const n = 500
	l := listen(t)
	adm := &Admission{Max: 64, Timeout: 500 * time.Millisecond}
	var (
		mu                         sync.Mutex
		refused, timedOut, saslErr int
	)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c, err := Accept(context.Background(), nc, Options{HandshakeTimeout: 500 * time.Millisecond,
					Closed: func(_ *Conn, err error) {
						if errors.Is(err, ErrRegistrationTimeout) {
							mu.Lock()
							timedOut++
							mu.Unlock()
						}
					}})
				if err != nil {
					mu.Lock()
					saslErr++
					mu.Unlock()
					return
				}
				if err := adm.Admit(c); err != nil {
					mu.Lock()
					refused++
					mu.Unlock()
					c.Close()
					return
				}
				c.Start()
			})
		}
	})
	var conns []net.Conn
	grew := heapGrowth(func() {
		for range n {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, nc)
		}
		for range n {
			nc, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			rawAuth(t, nc)
			conns = append(conns, nc)
		}
		// Every server end closes: each client reads EOF.
		for _, nc := range conns {
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(nc); err != nil {
				t.Fatal("silent peer not closed:", err)
			}
		}
	})
	for _, nc := range conns {
		nc.Close()
	}
	l.Close()
	wg.Wait()
	// The Closed callbacks run on the readers after the sockets closed.
	mu.Lock()
	defer mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); refused+timedOut < n && time.Now().Before(deadline); {
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
	}
	if saslErr != n || refused+timedOut != n || timedOut < adm.Max || adm.Unregistered() != 0 {
		t.Errorf("handshake failures %d, refused %d, timed out %d (of %d each), %d still admitted", saslErr, refused, timedOut, n, adm.Unregistered())
	}
	t.Logf("heap grew by %d kB at most for %d silent peers", grew>>10, 2*n)
	if grew > 32<<20 {
		t.Errorf("heap grew by %d bytes", grew)
	}
}

// TestAdmission: slots are taken by Admit and given back by
// MarkRegistered and by the end of a connection.
func TestAdmission(t *testing.T) {
	noLeaks(t)
	adm := &Admission{Max: 2, Timeout: time.Minute}
	s1, _ := pair(t, Options{}, Options{}, nil)
	s2, _ := pair(t, Options{}, Options{}, nil)
	s3, _ := pair(t, Options{}, Options{}, nil)
	if adm.Admit(s1) != nil || adm.Admit(s2) != nil {
		t.Fatal("first two refused")
	}
	if err := adm.Admit(s3); !errors.Is(err, ErrTooManyUnregistered) {
		t.Fatalf("third: %v", err)
	}
	s1.MarkRegistered()
	if !s1.Registered() || adm.Unregistered() != 1 {
		t.Fatalf("after registration: %d unregistered", adm.Unregistered())
	}
	if err := adm.Admit(s3); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	<-s2.Done()
	if adm.Unregistered() != 1 {
		t.Fatalf("after close: %d unregistered", adm.Unregistered())
	}
	late := &Admission{Timeout: 50 * time.Millisecond}
	s4, _ := pair(t, Options{}, Options{}, nil)
	if err := late.Admit(s4); err != nil {
		t.Fatal(err)
	}
	<-s4.Done()
	if !errors.Is(s4.Err(), ErrRegistrationTimeout) || late.Unregistered() != 0 {
		t.Fatalf("unregistered peer: %v, %d admitted", s4.Err(), late.Unregistered())
	}
}

// TestWriteTimeout: a peer that reads nothing is cut off once the kernel's
// buffers are full and a write waited WriteTimeout; the sender gets an
// error instead of blocking for ever.
func TestWriteTimeout(t *testing.T) {
	noLeaks(t)
	l := listen(t)
	srv := acceptOne(t, l, Options{WriteTimeout: 100 * time.Millisecond}, nil)
	nc := rawDial(t, l)
	rawAuth(t, nc) // and then never read again
	c := <-srv
	if c == nil {
		t.Fatal("handshake failed")
	}
	body := strBody(strings.Repeat("z", 32<<10))
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = c.Emit(testPath, testIface, "Flood", "s", body)
	}
	if err == nil {
		t.Fatal("320 MB written to a peer that reads nothing")
	}
	<-c.Done()
	if !errors.Is(c.Err(), os.ErrDeadlineExceeded) {
		t.Fatalf("closed with %v", c.Err())
	}
}

// TestLimitsLiftedMidMessage: a message that began before MarkRegistered
// is not cut off by the stall timeout of the unregistered state.
func TestLimitsLiftedMidMessage(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	l := listen(t)
	lim := Limits{MaxMessageSize: 64 << 10, StallTimeout: 100 * time.Millisecond}
	srv := acceptOne(t, l, Options{Limits: &lim}, func(c *Conn) { c.Export(testPath, echoIface(&wg)) })
	nc := rawDial(t, l)
	r := rawAuth(t, nc)
	c := <-srv
	msg := appendMessage(nil, &header{typ: wire.TypeMethodCall, serial: 5, path: testPath, iface: testIface, member: "Echo", signature: "s"}, strBody("slow"))
	nc.Write(msg[:10])
	c.MarkRegistered()
	// Nothing to wait for: the point is that nothing happens after the
	// old stall timeout.
	time.Sleep(3 * lim.StallTimeout)
	nc.Write(msg[10:])
	if m := r.message(t); m.ReplySerial != 5 {
		t.Fatalf("reply to %d", m.ReplySerial)
	}
	c.Close()
	<-c.Done()
}
