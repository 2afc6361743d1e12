// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// tapPair connects a godbus client (Dial) to a server connection that
// carries tap (and opts), over a unix socket.
func tapPair(t *testing.T, tap *Tap, opts ...dbus.ConnOption) (client, server *dbus.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tap.sock")
	l, err := Listen("unix", path, DefaultSocketOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := testContext(t)
	accepted := make(chan *dbus.Conn, 1)
	errs := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			errs <- err
			return
		}
		opts := append(append([]dbus.ConnOption{dbus.WithSignalHandler(dbus.NewSequentialSignalHandler())}, tap.Options(context.Background())...), opts...)
		conn, err := ServerConfig{}.Accept(ctx, nc, opts...)
		if err != nil {
			errs <- err
			return
		}
		accepted <- conn
	}()
	client, err = Dial(ctx, "unix:path="+path, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case server = <-accepted:
	case err := <-errs:
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// stringTap is a tap that consumes the signals named member, whose body
// is one string, and records those strings in wire order.
type stringTap struct {
	Tap
	mu  sync.Mutex
	got []string
}

func newStringTap(t *testing.T, member string) *stringTap {
	st := &stringTap{}
	st.Signal = func(m *wire.Message) bool {
		if m.Member != member {
			return false
		}
		r := wire.NewReader(m.Body, m.BigEndian)
		s, err := r.String()
		if err != nil {
			t.Errorf("tapped body: %v", err)
		}
		st.mu.Lock()
		st.got = append(st.got, s)
		st.mu.Unlock()
		return true
	}
	return st
}

// expect waits until the tap has seen exactly want.
func (st *stringTap) expect(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st.mu.Lock()
		got := slices.Clone(st.got)
		st.mu.Unlock()
		if len(got) >= len(want) || time.Now().After(deadline) {
			if !slices.Equal(got, want) {
				t.Fatalf("tapped %d signals %q, want %d %q", len(got), got, len(want), want)
			}
			return
		}
		time.Sleep(time.Millisecond) // poll with a deadline
	}
}

// TestTapSeesSignalsInOrder: the tap consumes one member's signals, in
// wire order, and godbus still gets every other message (signals and a
// method call) in between.
func TestTapSeesSignalsInOrder(t *testing.T) {
	checkGoroutines(t)
	tap := newStringTap(t, "Fast")
	client, server := tapPair(t, &tap.Tap)
	if err := server.Export(&echo{}, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	slow := make(chan *dbus.Signal, 1000)
	server.Signal(slow)
	const n = 300
	for i := 0; i < n; i++ {
		member := "Slow"
		if i%3 != 0 {
			member = "Fast"
		}
		// Body lengths vary so that tapped frames have every alignment.
		if err := client.Emit("/t", "org.test.Tap."+member, strings.Repeat("x", i%17)); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			if _, err := callEcho(testContext(t), client, "", "in between"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < n; i += 3 {
		select {
		case s := <-slow:
			if s.Name != "org.test.Tap.Slow" || len(s.Body[0].(string)) != i%17 {
				t.Fatalf("godbus got %s %v, want Slow #%d", s.Name, s.Body, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("godbus did not get Slow #%d", i)
		}
	}
	var want []string
	for i := 0; i < n; i++ {
		if i%3 != 0 {
			want = append(want, strings.Repeat("x", i%17))
		}
	}
	tap.expect(t, want)
}

// TestTapSendInterleaves: raw messages sent through the tap while godbus
// sends its own on the same connection all arrive whole.
func TestTapSendInterleaves(t *testing.T) {
	checkGoroutines(t)
	tap := &Tap{}
	client, server := tapPair(t, tap)
	got := make(chan *dbus.Signal, 4000)
	client.Signal(got)
	const n = 1000
	var wg sync.WaitGroup
	wg.Go(func() {
		var w wire.Writer
		var frame []byte
		for i := 0; i < n; i++ {
			w.Reset()
			w.String("raw")
			frame = wire.AppendSignal(frame[:0], tap.GetSerial(), "/t", "org.test.Tap", "Raw", "", "s", w.Buf)
			if err := tap.Send(frame); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; i < n; i++ {
			if err := server.Emit("/t", "org.test.Tap.Godbus", "godbus"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	counts := map[string]int{}
	for counts["org.test.Tap.Raw"] < n || counts["org.test.Tap.Godbus"] < n {
		select {
		case s := <-got:
			counts[s.Name]++
		case <-time.After(10 * time.Second):
			t.Fatalf("received %v, want %d of each", counts, n)
		}
	}
	server.Close()
	if err := tap.Send(wire.AppendSignal(nil, tap.GetSerial(), "/t", "org.test.Tap", "Raw", "", "", nil)); err == nil {
		t.Fatal("Send after Close succeeded")
	}
}

// TestTapSurvivesGarbage: a header the tap cannot frame closes the
// connection (godbus alone would read on from the middle of the junk).
func TestTapSurvivesGarbage(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(t.TempDir(), "g.sock")
	l, err := Listen("unix", path, DefaultSocketOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan *dbus.Conn, 1)
	ended := make(chan error, 2)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		tap := &Tap{Signal: func(*wire.Message) bool { return false }, End: func(err error) { ended <- err }}
		conn, err := ServerConfig{}.Accept(context.Background(), nc, tap.Options(context.Background())...)
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		done <- conn
	}()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("\x00AUTH ANONYMOUS 74657374\r\nBEGIN\r\n")); err != nil {
		t.Fatal(err)
	}
	// A signal header with a body length far beyond the frame, then junk.
	bad := []byte{'l', wire.TypeSignal, 0, 1, 0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0}
	if _, err := nc.Write(append(bad, "junk"...)); err != nil {
		t.Fatal(err)
	}
	conn := <-done
	if conn == nil {
		t.Fatal("accept failed")
	}
	select {
	case <-conn.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection with garbage stays open")
	}
	// The tap's End hears why, once.
	if err := <-ended; err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "malformed message") {
		t.Fatalf("End(%v), want the malformed message", err)
	}
	if len(ended) != 0 {
		t.Fatalf("End called again: %v", <-ended)
	}
}

// TestTapEndOnClose: a peer that hangs up ends the stream with io.EOF.
func TestTapEndOnClose(t *testing.T) {
	checkGoroutines(t)
	ended := make(chan error, 2)
	client, _ := tapPair(t, &Tap{End: func(err error) { ended <- err }})
	client.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("End(%v), want io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("End not called after the peer hung up")
	}
}

// TestTapQueueOrder: queued messages stay in order with godbus's own
// messages and leave with the next write.
func TestTapQueueOrder(t *testing.T) {
	checkGoroutines(t)
	tap := &Tap{}
	client, server := tapPair(t, tap)
	got := make(chan *dbus.Signal, 100)
	client.Signal(got)
	var w wire.Writer
	for _, s := range []string{"q1", "q2"} {
		w.Reset()
		w.String(s)
		if err := tap.Queue(wire.AppendSignal(nil, tap.GetSerial(), "/t", "org.test.Tap", "Raw", "", "s", w.Buf)); err != nil {
			t.Fatal(err)
		}
	}
	if err := server.Emit("/t", "org.test.Tap.Godbus", "g1"); err != nil {
		t.Fatal(err)
	}
	w.Reset()
	w.String("q3")
	if err := tap.Queue(wire.AppendSignal(nil, tap.GetSerial(), "/t", "org.test.Tap", "Raw", "", "s", w.Buf)); err != nil {
		t.Fatal(err)
	}
	if err := tap.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"q1", "q2", "g1", "q3"} {
		select {
		case s := <-got:
			if s.Body[0] != want {
				t.Fatalf("got %v, want %s", s.Body, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", want)
		}
	}
}

// TestTapLargeMessages: a signal too big for the tap and a call with a
// big argument go to godbus whole, between tapped signals, over a socket
// that has to be read many times per message.
func TestTapLargeMessages(t *testing.T) {
	checkGoroutines(t)
	tap := newStringTap(t, "Small")
	client, server := tapPair(t, &tap.Tap)
	if err := server.Export(&echo{}, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	big := make(chan *dbus.Signal, 10)
	server.Signal(big)
	huge := strings.Repeat("h", maxTappedSize+1000) // past the tap's limit
	for i, payload := range []string{"a", huge, "b"} {
		member := "Small"
		if len(payload) > 1 {
			member = "Big"
		}
		if err := client.Emit("/t", "org.test.Tap."+member, payload); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if _, err := callEcho(testContext(t), client, "", strings.Repeat("e", 3<<20)); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case s := <-big:
		if s.Name != "org.test.Tap.Big" || s.Body[0] != huge {
			t.Fatalf("godbus got %s, damaged or wrong", s.Name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the big signal did not reach godbus")
	}
	tap.expect(t, []string{"a", "b"})
}

// TestTapTakesCalls: the tap's MethodCall sees every call in wire order
// with its whole frame; the calls it declines are answered by godbus.
func TestTapTakesCalls(t *testing.T) {
	checkGoroutines(t)
	var (
		mu    sync.Mutex
		taken []string
	)
	tap := &Tap{}
	tap.MethodCall = func(m *wire.Message, frame []byte) bool {
		if size, typ, err := wire.FrameSize(frame); err != nil || size != len(frame) || typ != wire.TypeMethodCall {
			t.Errorf("frame: size %d of %d, type %d, %v", size, len(frame), typ, err)
		}
		r := wire.NewReader(m.Body, m.BigEndian)
		s, err := r.String()
		if err != nil {
			t.Errorf("tapped body: %v", err)
		}
		if !strings.HasPrefix(s, "take") {
			return false
		}
		mu.Lock()
		taken = append(taken, s)
		mu.Unlock()
		return true
	}
	client, server := tapPair(t, tap)
	e := &echo{}
	if err := server.Export(e, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 50; i++ {
		arg := fmt.Sprintf("take %d", i)
		want = append(want, arg)
		// Taken calls get no answer here: send them without waiting.
		client.Object("org.test", testPath).Go(testIface+".Echo", dbus.FlagNoReplyExpected, nil, arg)
		if i%10 == 0 {
			if _, err := callEcho(testContext(t), client, "org.test", fmt.Sprintf("keep %d", i)); err != nil {
				t.Fatal(err)
			}
			// Until godbus is back for more after dispatching the kept
			// call, later calls go to godbus too (none may overtake it):
			// wait for that, so that the tap gets every later take.
			waitGodbusDispatched(t, tap)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(taken)
		mu.Unlock()
		if n == len(want) || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(taken, want) {
		t.Errorf("taken %q, want %q", taken, want)
	}
	if n := e.calls.Load(); n != 5 {
		t.Errorf("godbus answered %d calls, want 5", n)
	}
}

// TestTapConsumesReplies: a reply the tap's Reply consumes never reaches
// godbus, and one it declines does.
func TestTapConsumesReplies(t *testing.T) {
	checkGoroutines(t)
	var (
		mu     sync.Mutex
		seen   []string // reply bodies godbus got
		tapped []string // reply bodies the tap consumed
	)
	replyBody := func(body []any) string {
		if len(body) == 1 {
			if s, ok := body[0].(string); ok {
				return s
			}
		}
		return fmt.Sprint(body)
	}
	tap := &Tap{Reply: func(m *wire.Message) bool {
		r := wire.NewReader(m.Body, m.BigEndian)
		s, err := r.String()
		if err != nil || !strings.HasPrefix(s, "take") {
			return false
		}
		mu.Lock()
		tapped = append(tapped, s)
		mu.Unlock()
		return true
	}}
	intercept := dbus.WithIncomingInterceptor(func(m *dbus.Message) {
		if m.Type == dbus.TypeMethodReply {
			mu.Lock()
			seen = append(seen, replyBody(m.Body))
			mu.Unlock()
		}
	})
	client, server := tapPair(t, tap, intercept)
	if err := client.Export(&echo{}, testPath, testIface); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	var wantTapped, wantSeen []string
	for i := 0; i < 20; i++ {
		take := fmt.Sprintf("take %d", i)
		wantTapped = append(wantTapped, take)
		// Its reply is consumed: godbus never finishes this call.
		server.Object("org.test", testPath).Go(testIface+".Echo", 0, make(chan *dbus.Call, 1), take)
		keep := fmt.Sprintf("keep %d", i)
		wantSeen = append(wantSeen, keep)
		if _, err := callEcho(ctx, server, "org.test", keep); err != nil {
			t.Fatal(err)
		}
	}
	// godbus answers calls in goroutines of their own, so the consumed
	// replies may come in any order, and after the kept ones.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(tapped)
		mu.Unlock()
		if n >= len(wantTapped) || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(tapped)
	slices.Sort(wantTapped)
	if !slices.Equal(tapped, wantTapped) {
		t.Errorf("tap consumed %q, want %q", tapped, wantTapped)
	}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("godbus got replies %q, want only %q", seen, wantSeen)
	}
}

// waitGodbusDispatched waits until godbus has dispatched every method call
// the pump of tap's connection passed to it.
func waitGodbusDispatched(t *testing.T, tap *Tap) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		tap.mu.Lock()
		pc := tap.pc
		tap.mu.Unlock()
		if pc != nil && pc.pump != nil && !pc.pump.godbusHasCall() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("godbus did not come back for more input")
		}
	}
}
