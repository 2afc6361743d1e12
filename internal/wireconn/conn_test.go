// SPDX-License-Identifier: Apache-2.0

package wireconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/wire"
)

// TestCallsAndReplies: replies find their calls by serial however they
// interleave (a late reply overtaken by others), error replies become
// *Error, concurrent callers all get their own answers.
func TestCallsAndReplies(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	_, client := pair(t, Options{}, Options{}, func(s *Conn) { s.Export(testPath, echoIface(&wg)) })
	ctx := context.Background()
	str := replyString(t)
	req := func(member string, body ...string) *Request {
		r := &Request{Path: testPath, Interface: testIface, Member: member}
		if len(body) > 0 {
			r.Signature, r.Body = "s", strBody(body...)
		}
		return r
	}
	late := make(chan string, 1)
	client.Go(ctx, req("Late"), func(m *wire.Message, err error) {
		if err != nil {
			late <- err.Error()
			return
		}
		r := wire.NewReader(m.Body, m.BigEndian)
		s, _ := r.String()
		late <- s
	})
	var cwg sync.WaitGroup
	for i := range 50 {
		cwg.Go(func() {
			want := fmt.Sprint("hello ", i)
			if got := str(client.Call(ctx, req("Echo", want))); got != want {
				t.Errorf("Echo(%q) = %q", want, got)
			}
		})
	}
	cwg.Wait()
	if s := <-late; s != "late" {
		t.Errorf("Late: %q", s)
	}
	_, err := client.Call(ctx, req("Fail"))
	var de *Error
	if !errors.As(err, &de) || de.Name != "org.example.Error.Nope" || de.Message != "nope" {
		t.Errorf("Fail: %v", err)
	}
}

// TestWireOrder: calls and signals reach the handlers one at a time in
// the order they were sent, and NO_REPLY_EXPECTED calls get no reply (the
// next call's reply is the next message).
func TestWireOrder(t *testing.T) {
	noLeaks(t)
	var (
		mu     sync.Mutex
		seen   []string
		active int
	)
	record := func(what string) {
		mu.Lock()
		active++
		if active != 1 {
			t.Error("two handlers at once")
		}
		seen = append(seen, what)
		active--
		mu.Unlock()
	}
	ifc := &Interface{Name: testIface, Methods: []string{"Step"}, Call: func(c *Conn, m *wire.Message) {
		r := wire.NewReader(m.Body, m.BigEndian)
		v, _ := r.Uint32()
		record(fmt.Sprint("call ", v))
		c.Reply(m, "u", u32Body(v)) // dropped for Send
	}}
	sig := func(c *Conn, m *wire.Message) {
		r := wire.NewReader(m.Body, m.BigEndian)
		v, _ := r.Uint32()
		record(fmt.Sprint("signal ", v))
	}
	_, client := pair(t, Options{Signal: sig}, Options{}, func(s *Conn) { s.Export(testPath, ifc) })
	var want []string
	for i := range uint32(300) {
		switch i % 3 {
		case 0:
			client.Send(&Request{Path: testPath, Interface: testIface, Member: "Step", Signature: "u", Body: u32Body(i)})
			want = append(want, fmt.Sprint("call ", i))
		case 1:
			client.Emit(testPath, testIface, "Tick", "u", u32Body(i))
			want = append(want, fmt.Sprint("signal ", i))
		case 2:
			client.Go(context.Background(), &Request{Path: testPath, Interface: testIface, Member: "Step", Signature: "u", Body: u32Body(i)},
				func(*wire.Message, error) {})
			want = append(want, fmt.Sprint("call ", i))
		}
	}
	r, err := client.Call(context.Background(), &Request{Path: testPath, Interface: testIface, Member: "Step", Signature: "u", Body: u32Body(1000)})
	if err != nil {
		t.Fatal(err)
	}
	rd := r.Reader()
	if v, _ := rd.Uint32(); v != 1000 {
		t.Fatalf("last reply %d", v)
	}
	want = append(want, "call 1000")
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("order:\n got %v\nwant %v", seen, want)
	}
}

// TestStandardInterfaces: what a peer link answers by itself.
func TestStandardInterfaces(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	_, client := pair(t, Options{BusShim: true}, Options{}, func(s *Conn) {
		s.Export(testPath, echoIface(&wg))
	})
	ctx := context.Background()
	str := replyString(t)
	call := func(path, iface, member, sig string, body []byte) (*Reply, error) {
		return client.Call(ctx, &Request{Destination: "org.example", Path: path, Interface: iface, Member: member, Signature: sig, Body: body})
	}
	wantErr := func(name string, _ *Reply, err error) {
		t.Helper()
		var de *Error
		if !errors.As(err, &de) || de.Name != name {
			t.Errorf("got %v, want %s", err, name)
		}
	}
	if _, err := call(testPath, "org.freedesktop.DBus.Peer", "Ping", "", nil); err != nil {
		t.Error("Ping:", err)
	}
	if _, err := call("/any/where", "org.freedesktop.DBus.Peer", "Ping", "", nil); err != nil {
		t.Error("Ping elsewhere:", err)
	}
	if id := str(call("/", "org.freedesktop.DBus.Peer", "GetMachineId", "", nil)); id != machineID() || len(id) != 32 {
		t.Errorf("GetMachineId: %q", id)
	}
	if s := str(call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", nil)); s != ":1.0" {
		t.Errorf("Hello: %q", s)
	}
	if _, err := call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", strBody("type='signal'")); err != nil {
		t.Error("AddMatch:", err)
	}
	r, err := call("/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", append(strBody("x.y"), 0, 0, 0, 0))
	wantErr(ErrUnknownMethod, r, err)
	if x := str(call("/org/freedesktop/DBus", "org.freedesktop.DBus.Introspectable", "Introspect", "", nil)); !strings.Contains(x, `<method name="Hello">`) {
		t.Errorf("shim introspection:\n%s", x)
	}
	x := str(call(testPath, "org.freedesktop.DBus.Introspectable", "Introspect", "", nil))
	for _, want := range []string{`<interface name="org.example.Test">`, "org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Properties"} {
		if !strings.Contains(x, want) {
			t.Errorf("object introspection lacks %s:\n%s", want, x)
		}
	}
	if x := str(call("/org/example", "org.freedesktop.DBus.Introspectable", "Introspect", "", nil)); !strings.Contains(x, `<node name="obj"/>`) {
		t.Errorf("parent introspection:\n%s", x)
	}
	r, err = call("/nothing", "org.freedesktop.DBus.Introspectable", "Introspect", "", nil)
	wantErr(ErrUnknownObject, r, err)
	r, err = call("/nothing", testIface, "Echo", "s", strBody("x"))
	wantErr(ErrUnknownObject, r, err)
	r, err = call(testPath, "org.example.Other", "Echo", "s", strBody("x"))
	wantErr(ErrUnknownInterface, r, err)
	r, err = call(testPath, testIface, "Missing", "", nil)
	wantErr(ErrUnknownMethod, r, err)
	if s := str(call(testPath, "", "Echo", "s", strBody("no iface"))); s != "no iface" {
		t.Errorf("call without interface: %q", s)
	}
	r, err = call(testPath, "org.freedesktop.DBus.Properties", "GetAll", "s", strBody(testIface))
	if err != nil || r.Signature != "a{sv}" {
		t.Errorf("GetAll: %v %v", r, err)
	} else {
		rd := r.Reader()
		if n, _ := rd.Uint32(); n != 0 {
			t.Errorf("GetAll: %d bytes of properties", n)
		}
	}
	r, err = call(testPath, "org.freedesktop.DBus.Properties", "Get", "ss", strBody(testIface, "X"))
	wantErr(ErrUnknownProperty, r, err)
	r, err = call(testPath, "org.freedesktop.DBus.Properties", "GetAll", "s", strBody("org.example.Other"))
	wantErr(ErrUnknownInterface, r, err)
}

// TestFirstMessageWithHandshake: a client that pipelines its handshake
// and its first call in one write (as upstream's agent does) is served.
func TestFirstMessageWithHandshake(t *testing.T) {
	noLeaks(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	l := listen(t)
	srv := make(chan *Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		c, err := Accept(context.Background(), nc, Options{})
		if err != nil {
			t.Error(err)
			srv <- nil
			return
		}
		c.Export(testPath, echoIface(&wg))
		c.Start()
		srv <- c
	}()
	nc := rawDial(t, l)
	msg := appendMessage(nil, &header{typ: wire.TypeMethodCall, serial: 7, path: testPath, iface: testIface, member: "Echo", signature: "s"}, strBody("first"))
	hello := "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"
	if _, err := nc.Write(append([]byte(hello), msg...)); err != nil {
		t.Fatal(err)
	}
	r := newRawReader(nc)
	for _, want := range []string{"DATA", "OK "} {
		if line := r.line(t); !strings.HasPrefix(line, want) {
			t.Fatalf("SASL reply %q, want %s", line, want)
		}
	}
	m := r.message(t)
	if m.ReplySerial != 7 || m.Type != wire.TypeMethodReturn {
		t.Fatalf("reply %+v", m)
	}
	rd := wire.NewReader(m.Body, m.BigEndian)
	if s, _ := rd.String(); s != "first" {
		t.Fatalf("reply %q", s)
	}
	if c := <-srv; c != nil {
		c.Close()
		<-c.Done()
	}
}

// TestCloseFailsPending: pending calls end with ErrClosed when the
// connection goes, and a call's context bounds its wait.
func TestCloseFailsPending(t *testing.T) {
	noLeaks(t)
	got := make(chan struct{}, 2)
	hold := &Interface{Name: testIface, Methods: []string{"Never"}, Call: func(*Conn, *wire.Message) { got <- struct{}{} }}
	server, client := pair(t, Options{}, Options{}, func(s *Conn) { s.Export(testPath, hold) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := client.Call(ctx, &Request{Path: testPath, Interface: testIface, Member: "Never"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out call: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := client.Call(context.Background(), &Request{Path: testPath, Interface: testIface, Member: "Never"})
		errc <- err
	}()
	<-got // the timed-out call
	<-got // this one
	server.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("call on a closed connection: %v", err)
	}
	<-client.Done()
	if _, err := client.Call(context.Background(), &Request{Path: testPath, Member: "X"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
}
