// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Kinds of the fuzzed message (FuzzAgentMessages' kind argument).
const (
	fuzzCall   = 0
	fuzzSignal = 1
	fuzzReturn = 2
)

// fuzzBody is the little-endian body of the given strings and uint32s.
func fuzzBody(args ...any) []byte {
	var w wire.Writer
	for _, a := range args {
		switch v := a.(type) {
		case string:
			w.String(v)
		case uint32:
			w.Uint32(v)
		}
	}
	return w.Buf
}

// FuzzAgentMessages feeds one message of any content (a call, signal or
// method return, its header strings and body as given, so signature and
// body need not agree), followed by arbitrary bytes, into the real
// controller over its real unix socket, on a connection that is still
// anonymous or has registered as node n1 first: the code path of every
// agent connection. Then the client sends a Ping and ends its side. The
// controller must answer or close within 10 s, write only well-formed
// messages, accept the registration of a fresh connection before the
// message, let node n1 go offline once the connection is gone and keep
// serving its bus.
func FuzzAgentMessages(f *testing.F) {
	agentPath, agentIface := string(daemonapi.InternalAgentPath), daemonapi.InternalAgentInterface
	ctrlPath, ctrlIface := string(daemonapi.InternalControllerPath), daemonapi.InternalControllerInterface
	props := func() []byte {
		var w wire.Writer
		w.String("a.service")
		w.String("org.freedesktop.systemd1.Unit")
		m := w.BeginArray(8)
		w.Align(8)
		w.String("ActiveState")
		w.Signature("s")
		w.String("active")
		w.EndArray(m)
		return w.Buf
	}()
	for _, reg := range []bool{false, true} {
		f.Add(reg, uint8(fuzzCall), ctrlPath, ctrlIface, daemonapi.InternalControllerMethodRegister, "s", fuzzBody("n1"), []byte(nil))
		f.Add(reg, uint8(fuzzCall), ctrlPath, ctrlIface, daemonapi.InternalControllerMethodRegister, "s", fuzzBody("unknown"), []byte(nil))
		f.Add(reg, uint8(fuzzCall), ctrlPath, ctrlIface, daemonapi.InternalControllerMethodRegister, "u", fuzzBody(uint32(7)), []byte(nil))
		f.Add(reg, uint8(fuzzCall), "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", []byte(nil), []byte(nil))
		f.Add(reg, uint8(fuzzCall), "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", fuzzBody("type='signal'"), []byte(nil))
		f.Add(reg, uint8(fuzzCall), ctrlPath, "org.freedesktop.DBus.Introspectable", "Introspect", "", []byte(nil), []byte(nil))
		f.Add(reg, uint8(fuzzCall), ctrlPath, "org.freedesktop.DBus.Properties", "GetAll", "s", fuzzBody(ctrlIface), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalJobDone, "us", fuzzBody(uint32(1), "done"), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalJobStateChanged, "us", fuzzBody(uint32(1), "running"), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalHeartbeat, "", []byte(nil), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalUnitNew, "ss", fuzzBody("a.service", "real"), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalUnitStateChanged, "ssss", fuzzBody("a.service", "active", "running", "real"), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalUnitStateChanged, "ssss", fuzzBody("a.service", "active"), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalUnitPropertiesChanged, "ssa{sv}", props, []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalUnitRemoved, "s", fuzzBody("\xff\xfe"), []byte(nil))
		f.Add(reg, uint8(fuzzReturn), "", "", "", "s", fuzzBody("unsolicited"), []byte(nil))
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalHeartbeat, "", []byte(nil),
			[]byte("l\x04\x01\x01\x00\x00\x40\x06\x09\x00\x00\x00\x00\x00\x00\x00")) // claims a 100 MiB body
		f.Add(reg, uint8(fuzzSignal), agentPath, agentIface, daemonapi.InternalAgentSignalHeartbeat, "", []byte(nil), []byte("garbage, not a message"))
	}
	c := startCluster(f, "n1")
	sock := strings.TrimPrefix(c.addr, "unix:path=")
	n1 := c.node("n1")
	// Bus calls are bounded: a controller that stops answering fails the
	// input instead of hanging the fuzzer.
	busCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 10*time.Second)
	}
	f.Fuzz(func(t *testing.T, registered bool, kind uint8, path, iface, member, sig string, body, tail []byte) {
		if len(body) > 1<<16 || len(tail) > 1<<16 {
			return
		}
		status := func() string {
			ctx, cancel := busCtx()
			defer cancel()
			s, err := n1.GetStatus(ctx)
			if err != nil {
				t.Fatalf("controller bus: GetStatus: %v", err)
			}
			return s
		}
		for deadline := time.Now().Add(10 * time.Second); status() != "offline"; {
			if time.Now().After(deadline) {
				t.Fatal("node n1 still online 10 s after its connection ended")
			}
			time.Sleep(time.Millisecond)
		}
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		out := []byte("\x00AUTH EXTERNAL 30\r\nBEGIN\r\n")
		if registered {
			out = wire.AppendCall(out, 1, bluechi.ControllerBusName, ctrlPath, ctrlIface, daemonapi.InternalControllerMethodRegister, "s", fuzzBody("n1"))
		}
		switch kind % 3 {
		case fuzzCall:
			out = wire.AppendCall(out, 2, bluechi.ControllerBusName, path, iface, member, sig, body)
		case fuzzSignal:
			out = wire.AppendSignal(out, 2, path, iface, member, "", sig, body)
		case fuzzReturn:
			out = wire.AppendReturn(out, 2, 1000, "", sig, body)
		}
		out = append(out, tail...)
		out = wire.AppendCall(out, 3, bluechi.ControllerBusName, "/", "org.freedesktop.DBus.Peer", "Ping", "", nil)
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(out); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write: %v", err)
		}
		replies := readReplies(t, nc.(*net.UnixConn), 3)
		var sawRegister bool
		for _, m := range replies {
			switch {
			case m.ReplySerial == 1:
				sawRegister = true
				if m.Type != wire.TypeMethodReturn {
					t.Fatalf("Register of a fresh connection refused: %+v", m)
				}
			case m.ReplySerial == 3:
				if registered && !sawRegister {
					t.Fatalf("Ping answered before Register: %+v", replies)
				}
			}
		}
		ctx, cancel := busCtx()
		defer cancel()
		if _, err := c.controllerClient().ListNodes(ctx); err != nil {
			t.Fatalf("controller bus: ListNodes: %v", err)
		}
	})
}

// readReplies reads the controller's SASL OK line and messages until the
// reply to serial ping arrives or the controller closes the connection.
// When neither happens within a short while (the fuzzed bytes may be the
// start of a message still waiting for its end, so the ping is read as its
// body), the client ends its side and the controller must close within
// 10 s. Every message must be well-formed.
func readReplies(t *testing.T, nc *net.UnixConn, ping uint32) []wire.Message {
	t.Helper()
	var (
		buf     []byte
		replies []wire.Message
		sasl    bool
		chunk   = make([]byte, 4096)
	)
	nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	halfClosed := false
	for {
		n, err := nc.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if !sasl {
			if line, rest, ok := bytes.Cut(buf, []byte("\r\n")); ok {
				if !bytes.HasPrefix(line, []byte("OK ")) {
					t.Fatalf("SASL reply %q", line)
				}
				sasl, buf = true, rest
			}
		}
		for sasl && len(buf) >= wire.HeaderSize {
			size, _, ferr := wire.FrameSize(buf)
			if ferr != nil {
				t.Fatalf("the controller wrote a bad frame: %v\n% x", ferr, buf)
			}
			if size > len(buf) {
				break
			}
			var m wire.Message
			if perr := wire.Parse(buf[:size], &m); perr != nil {
				t.Fatalf("the controller wrote a bad message: %v\n% x", perr, buf[:size])
			}
			replies = append(replies, m)
			buf = buf[size:]
			if m.ReplySerial == ping && m.Type != wire.TypeSignal {
				return replies
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			if len(buf) > 0 && sasl {
				t.Fatalf("the controller's stream ends in a partial message: % x", buf)
			}
			return replies
		case errors.Is(err, os.ErrDeadlineExceeded) && !halfClosed:
			halfClosed = true
			nc.CloseWrite()
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		default:
			t.Fatalf("the controller neither answered nor closed the connection: %v", err)
		}
	}
}
