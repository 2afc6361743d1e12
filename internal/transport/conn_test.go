// SPDX-License-Identifier: Apache-2.0

package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

var networks = []string{"unix", "tcp"}

// TestServerAgainstGodbusClient lets godbus's own client handshake
// (EXTERNAL and ANONYMOUS) authenticate against the server half.
func TestServerAgainstGodbusClient(t *testing.T) {
	for _, network := range networks {
		for _, auth := range []struct {
			name string
			m    dbus.Auth
		}{
			{"EXTERNAL", dbus.AuthExternal(strconv.Itoa(os.Geteuid()))},
			{"ANONYMOUS", dbus.AuthAnonymous()},
		} {
			t.Run(network+"/"+auth.name, func(t *testing.T) {
				checkGoroutines(t)
				s := startServer(t, network, ServerConfig{})
				ctx := testContext(t)

				conn, err := dbus.Dial(s.address) // same D-Bus address syntax
				if err != nil {
					t.Fatalf("dbus.Dial: %v", err)
				}
				defer conn.Close()
				if err := conn.Auth([]dbus.Auth{auth.m}); err != nil {
					t.Fatalf("godbus Auth against our server: %v", err)
				}
				s.nextConn(t)
				if _, err := callEcho(ctx, conn, "org.eclipse.bluechi", "hello"); err != nil {
					t.Fatalf("call after godbus auth: %v", err)
				}
			})
		}
	}
}

// encodeCall encodes a little-endian method call with the given serial.
func encodeCall(t *testing.T, serial uint32, dest string, path dbus.ObjectPath, iface, member string, body ...any) []byte {
	t.Helper()
	msg := &dbus.Message{
		Type: dbus.TypeMethodCall,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(member),
			dbus.FieldDestination: dbus.MakeVariant(dest),
		},
		Body: body,
	}
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		t.Fatalf("encoding call: %v", err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[8:12], serial) // godbus has no serial setter
	return b
}

// TestServerAgainstUpstreamAgentBytes replays what the C agent writes: the
// whole handshake and, in the very same write, the first method call.
func TestServerAgainstUpstreamAgentBytes(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			checkGoroutines(t)
			s := startServer(t, network, ServerConfig{})
			nc, err := net.Dial(network, s.laddr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))

			hs := "\x00AUTH EXTERNAL\r\nDATA\r\n"
			if network == "unix" {
				hs += "NEGOTIATE_UNIX_FD\r\n"
			}
			hs += "BEGIN\r\n"
			var wire []byte
			wire = append(wire, hs...)
			wire = append(wire, encodeCall(t, 7, "org.eclipse.bluechi", testPath, testIface, "Echo", "register-me")...)
			if n, err := nc.Write(wire); err != nil || n != len(wire) {
				t.Fatalf("write: %d, %v", n, err)
			}

			br := bufio.NewReader(nc)
			want := []string{"DATA", "OK"}
			if network == "unix" {
				want = append(want, "ERROR")
			}
			for _, w := range want {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading SASL reply: %v", err)
				}
				if !strings.HasSuffix(line, "\r\n") {
					t.Fatalf("reply %q does not end in CRLF", line)
				}
				cmd, arg, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
				if cmd != w {
					t.Fatalf("reply %q, want %s", line, w)
				}
				if cmd == "OK" && !validGUID(arg) {
					t.Fatalf("bad GUID in %q", line)
				}
			}
			reply, err := dbus.DecodeMessage(br)
			if err != nil {
				t.Fatalf("decoding reply: %v", err)
			}
			if reply.Type != dbus.TypeMethodReply {
				t.Fatalf("reply type %v, body %v", reply.Type, reply.Body)
			}
			if rs := reply.Headers[dbus.FieldReplySerial].Value(); rs != uint32(7) {
				t.Errorf("reply serial %v, want 7", rs)
			}
			if len(reply.Body) != 1 || reply.Body[0] != "register-me" {
				t.Errorf("reply body %v", reply.Body)
			}
			if s.obj.calls.Load() != 1 {
				t.Errorf("server saw %d calls, want 1", s.obj.calls.Load())
			}
			if s.inMsgs.Load() == 0 {
				t.Errorf("incoming interceptor passed as option was not called")
			}
		})
	}
}

// TestDialAccept connects Dial to the server and exchanges calls and
// signals in both directions.
func TestDialAccept(t *testing.T) {
	for _, network := range networks {
		for _, d := range []Dialer{{}, {Mechanism: MechanismExternal}} {
			t.Run(network+"/"+string(mechOrDefault(d.Mechanism)), func(t *testing.T) {
				checkGoroutines(t)
				s := startServer(t, network, ServerConfig{})
				ctx := testContext(t)

				client, err := d.Dial(ctx, s.address, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer client.Close()
				agentObj := &echo{}
				if err := client.Export(agentObj, testPath, testIface); err != nil {
					t.Fatal(err)
				}
				server := s.nextConn(t)

				// agent -> controller, with the destination upstream uses
				if _, err := callEcho(ctx, client, "org.eclipse.bluechi", "to-controller"); err != nil {
					t.Fatalf("client call: %v", err)
				}
				// controller -> agent, addressed like the C controller does
				if _, err := callEcho(ctx, server, "org.eclipse.bluechi.Agent", "to-agent"); err != nil {
					t.Fatalf("server call: %v", err)
				}
				if agentObj.calls.Load() != 1 || s.obj.calls.Load() != 1 {
					t.Errorf("calls: agent %d, controller %d", agentObj.calls.Load(), s.obj.calls.Load())
				}

				// signals both ways, no AddMatch on a peer connection
				srvSig := make(chan *dbus.Signal, 4)
				server.Signal(srvSig)
				cliSig := make(chan *dbus.Signal, 4)
				client.Signal(cliSig)
				if err := client.Emit(testPath, testIface+".Heartbeat", "agent"); err != nil {
					t.Fatal(err)
				}
				if err := server.Emit(testPath, testIface+".Heartbeat", "controller"); err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct {
					ch   chan *dbus.Signal
					want string
				}{{srvSig, "agent"}, {cliSig, "controller"}} {
					select {
					case sig := <-c.ch:
						if sig.Name != testIface+".Heartbeat" || sig.Path != testPath || len(sig.Body) != 1 || sig.Body[0] != c.want {
							t.Errorf("signal %+v, want Heartbeat(%q)", sig, c.want)
						}
					case <-ctx.Done():
						t.Fatalf("signal %q not received", c.want)
					}
				}
				server.RemoveSignal(srvSig)
				client.RemoveSignal(cliSig)

				// closing one end is seen by the other
				client.Close()
				select {
				case <-server.Context().Done():
				case <-ctx.Done():
					t.Fatal("server connection not closed after client close")
				}
			})
		}
	}
}

// TestBadHandshakes sends broken handshakes; each is closed with an error
// and the server keeps serving.
func TestBadHandshakes(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			checkGoroutines(t)
			s := startServer(t, network, ServerConfig{Timeout: 300 * time.Millisecond, MaxLineLength: 64, MaxLines: 8})
			ctx := testContext(t)
			cases := []struct {
				name    string
				send    string
				want    error
				replies string
			}{
				{"http request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ErrHandshake, ""},
				{"overlong line", "\x00AUTH EXTERNAL " + strings.Repeat("3", 5000) + "\r\n", ErrHandshake, ""},
				{"too many lines", "\x00" + strings.Repeat("DATA\r\n", 20), ErrHandshake, strings.Repeat("ERROR\r\n", 8)},
				{"begin too early", "\x00AUTH ANONYMOUS\r\nBEGIN\r\n", ErrHandshake, "DATA\r\n"},
				{"slow client", "\x00AUTH EXTERNAL\r\nDA", os.ErrDeadlineExceeded, "DATA\r\n"},
				{"silent client", "", os.ErrDeadlineExceeded, ""},
				{"client hangs up", "\x00AUTH", io.ErrUnexpectedEOF, ""},
			}
			for _, c := range cases {
				nc, err := net.Dial(network, s.laddr)
				if err != nil {
					t.Fatal(err)
				}
				_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
				if c.send != "" {
					if _, err := nc.Write([]byte(c.send)); err != nil {
						t.Fatalf("%s: write: %v", c.name, err)
					}
				}
				if c.want == io.ErrUnexpectedEOF {
					if cw, ok := nc.(interface{ CloseWrite() error }); ok {
						_ = cw.CloseWrite()
					}
				}
				err = s.nextErr(t)
				if !errors.Is(err, c.want) {
					t.Errorf("%s: server error %v, want %v", c.name, err, c.want)
				}
				got, rerr := io.ReadAll(nc)
				if rerr != nil && !isReset(rerr) {
					t.Errorf("%s: reading until close: %v", c.name, rerr)
				}
				if rerr == nil && string(got) != c.replies {
					t.Errorf("%s: server sent %q, want %q", c.name, got, c.replies)
				}
				nc.Close()

				// the listener still serves a good client
				conn, err := Dial(ctx, s.address)
				if err != nil {
					t.Fatalf("after %s: Dial: %v", c.name, err)
				}
				s.nextConn(t)
				if _, err := callEcho(ctx, conn, "org.eclipse.bluechi", c.name); err != nil {
					t.Errorf("after %s: call: %v", c.name, err)
				}
				conn.Close()
			}
		})
	}
}

// isReset reports a connection reset, which a server closing with unread
// input may cause.
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestSlowHandshakeDoesNotBlockOthers keeps one handshake hanging while
// another client connects and works.
func TestSlowHandshakeDoesNotBlockOthers(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, "tcp", ServerConfig{})
	ctx := testContext(t)

	slow, err := net.Dial("tcp", s.laddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Write([]byte("\x00AUTH EXTERNAL\r\n")); err != nil {
		t.Fatal(err)
	}
	slowReplies := bufio.NewReader(slow)
	if line, err := slowReplies.ReadString('\n'); err != nil || line != "DATA\r\n" {
		t.Fatalf("slow client got %q, %v", line, err)
	}
	conn, err := Dial(ctx, s.address)
	if err != nil {
		t.Fatalf("Dial while another handshake hangs: %v", err)
	}
	defer conn.Close()
	s.nextConn(t)
	if _, err := callEcho(ctx, conn, "org.eclipse.bluechi", "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.errs:
		t.Fatalf("unexpected handshake error: %v", err)
	default:
	}
	slow.Close()
	if err := s.nextErr(t); !errors.Is(err, io.EOF) {
		t.Errorf("error for client that hung up = %v, want EOF", err)
	}
}

// TestServeStopsWithHandshakesInFlight cancels Serve while a handshake is
// pending; Serve must return and the pending handshake must end.
func TestServeStopsWithHandshakesInFlight(t *testing.T) {
	checkGoroutines(t)
	l, err := Listen("tcp", "127.0.0.1:0", DefaultSocketOptions())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	srv := &Server{OnError: func(_ net.Conn, err error) { errs <- err }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()

	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("\x00AUTH")); err != nil {
		t.Fatal(err)
	}
	// Wait until the server holds the connection: it answers nothing yet,
	// so use a second, complete client as a barrier.
	conn, err := DialNetConn(mustDial(t, l.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("pending handshake ended with %v, want context.Canceled", err)
	}
	// Asked directly: the freed port may already belong to a listener of
	// another test package running at the same time.
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener still open after Serve returned: Accept = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("listener still open after Serve returned: Accept waits")
		l.Close()
	}
}

func mustDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestDialKeepsBytesAfterOK has a raw server send OK and a method call in
// one write: the client must not lose the call.
func TestDialKeepsBytesAfterOK(t *testing.T) {
	checkGoroutines(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		reply *dbus.Message
		err   error
	}
	call := encodeCall(t, 3, "org.eclipse.bluechi.Agent", testPath, testIface, "Echo", "early")
	done := make(chan result, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		hs := "\x00AUTH ANONYMOUS\r\nDATA 616e6f6e796d6f7573\r\nBEGIN\r\n"
		buf := make([]byte, len(hs))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != hs {
			done <- result{err: fmt.Errorf("client handshake %q, %v", buf, err)}
			return
		}
		out := []byte("DATA\r\nOK " + testGUID + "\r\n")
		out = append(out, call...)
		if _, err := nc.Write(out); err != nil {
			done <- result{err: err}
			return
		}
		reply, err := dbus.DecodeMessage(br)
		done <- result{reply, err}
	}()

	obj := &echo{}
	d := Dialer{BeforeStart: func(conn *dbus.Conn, _ net.Conn) error {
		return conn.Export(obj, testPath, testIface)
	}}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	conn, err := d.Dial(testContext(t), "tcp:host=127.0.0.1,port="+port)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	res := <-done
	if res.err != nil {
		t.Fatalf("raw server: %v", res.err)
	}
	if res.reply.Type != dbus.TypeMethodReply || len(res.reply.Body) != 1 || res.reply.Body[0] != "early" {
		t.Errorf("reply %v", res.reply)
	}
}
