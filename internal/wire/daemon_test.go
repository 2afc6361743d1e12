// SPDX-License-Identifier: Apache-2.0

package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

// rawConn is a bus connection that speaks bytes, with this package only.
type rawConn struct {
	t      *testing.T
	c      net.Conn
	r      *bufio.Reader
	name   string
	serial uint32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	path, ok := strings.CutPrefix(addr, "unix:path=")
	if !ok {
		t.Fatalf("unexpected bus address %q", addr)
	}
	path, _, _ = strings.Cut(path, ",")
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c), serial: 1}
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	if _, err := c.Write([]byte("\x00AUTH EXTERNAL " + uid + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := rc.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "OK ") {
		t.Fatalf("auth: %q %v", l, err)
	}
	if _, err := c.Write([]byte("BEGIN\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := rc.call("Hello")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(m.Body, m.BigEndian)
	if rc.name, err = r.String(); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawConn) send(frame []byte) error {
	_, err := rc.c.Write(frame)
	return err
}

// read reads the next message.
func (rc *rawConn) read() (*Message, error) {
	hdr, err := rc.r.Peek(HeaderSize)
	if err != nil {
		return nil, err
	}
	size, _, err := FrameSize(hdr)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(rc.r, buf); err != nil {
		return nil, err
	}
	m := new(Message)
	return m, Parse(buf, m)
}

// call calls a method of the bus without arguments and returns its reply.
func (rc *rawConn) call(member string) (*Message, error) {
	rc.serial++
	msg := godbusMessage(rc.t, &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        v(dbus.ObjectPath("/org/freedesktop/DBus")),
		dbus.FieldInterface:   v("org.freedesktop.DBus"),
		dbus.FieldMember:      v(member),
		dbus.FieldDestination: v("org.freedesktop.DBus"),
	}}, binary.LittleEndian, rc.serial)
	if err := rc.send(msg); err != nil {
		return nil, err
	}
	for {
		m, err := rc.read()
		if err != nil {
			return nil, err
		}
		if m.ReplySerial == rc.serial {
			if m.Type != TypeMethodReturn {
				return nil, errors.New("error reply " + m.ErrorName)
			}
			return m, nil
		}
	}
}

// TestDaemonAcceptsCopies sends what Copy and AppendSignal make to a real
// dbus-daemon, addressed to the sender itself: the daemon must deliver every
// message back, unchanged, rather than drop the connection.
func TestDaemonAcceptsCopies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dbus-daemon")
	}
	bus := testbus.Start(t)
	rc := dialRaw(t, bus.Address)
	serial := uint32(100)
	for _, tc := range copyCases() {
		sig := dbus.SignatureOf(tc.v).String()
		for _, order := range orders {
			for _, pre := range []int{0, 1, 4, 5} {
				body := bodyOf(t, godbusSignal(t, order, strings.Repeat("p", pre), tc.v))
				r := NewReader(body, order == binary.BigEndian)
				if _, err := r.String(); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"n", "nnnnn"} {
					r := r
					var w Writer
					w.String(name)
					if err := Copy(&w, &r, sig); err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					serial++
					frame := AppendSignal(nil, serial, "/org/example/Monitor", "org.example.Monitor", "Changed", rc.name, "s"+sig, w.Buf)
					if err := rc.send(frame); err != nil {
						t.Fatalf("%s: send: %v", tc.name, err)
					}
					for {
						m, err := rc.read()
						if err != nil {
							t.Fatalf("%s (%v, pre %d, %q): the daemon dropped the connection: %v", tc.name, order, pre, name, err)
						}
						if m.Type != TypeSignal || m.Member != "Changed" {
							continue
						}
						if m.Serial != serial || m.Sender != rc.name || m.Signature != "s"+sig {
							t.Fatalf("%s: got %+v", tc.name, m)
						}
						if diff := cmp.Diff(w.Buf, m.Body); diff != "" {
							t.Fatalf("%s: body changed on the way", tc.name)
						}
						break
					}
				}
			}
		}
	}
	if _, err := rc.call("GetId"); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonRefusesInvalid sends bodies that Copy refuses, unchanged, to a
// real dbus-daemon: it must drop the connection for each, which shows that
// Copy's checks are needed. Those the daemon lets through are logged: there
// Copy is stricter than the daemon.
func TestDaemonRefusesInvalid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dbus-daemon")
	}
	bus := testbus.Start(t)
	deep := func(n int) func(b *builder) {
		return func(b *builder) {
			for range n - 1 {
				b.sig("v")
			}
			b.sig("y").raw(1)
		}
	}
	cases := []struct {
		name   string
		sig    string
		body   func(b *builder)
		strict bool // Copy refuses what the daemon lets through
	}{
		{"utf8", "s", func(b *builder) { b.str("ab\xffc") }, false},
		{"surrogate", "s", func(b *builder) { b.str("\xed\xa0\x80") }, false},
		{"nul", "s", func(b *builder) { b.str("a\x00b") }, false},
		{"no terminator", "s", func(b *builder) { b.u32(1).raw('a', 'x') }, false},
		{"path", "o", func(b *builder) { b.str("/a//b") }, false},
		{"signature value", "g", func(b *builder) { b.sig("a") }, false},
		{"variant two types", "v", func(b *builder) { b.sig("yy").raw(1, 2) }, false},
		{"variant bad signature", "v", func(b *builder) { b.sig("a{vs}").u32(0) }, false},
		{"bool", "b", func(b *builder) { b.u32(2) }, false},
		{"bool array", "ab", func(b *builder) { b.u32(4).u32(2) }, false},
		{"padding", "(yu)", func(b *builder) { b.raw(1, 0, 9, 0).u32(5) }, false},
		{"padding of empty array", "at", func(b *builder) { b.u32(0).raw(0, 0, 1, 0) }, false},
		{"array past end", "ay", func(b *builder) { b.u32(5).raw(1, 2, 3) }, false},
		{"array string overrun", "as", func(b *builder) { b.u32(6).str("abcd") }, false},
		{"array not on element", "ai", func(b *builder) { b.u32(6).u32(1).raw(0, 0) }, false},
		{"array too long", "ay", func(b *builder) { b.u32(1<<26 + 1) }, false},
		{"variant 33 arrays", "v", func(b *builder) { b.sig(strings.Repeat("a", 33) + "y").u32(0) }, false},
		{"variant dict outside array", "v", func(b *builder) { b.sig("{sv}") }, false},
		{"variant empty struct", "v", func(b *builder) { b.sig("()") }, false},
		{"signature 33 structs", "g", func(b *builder) { b.sig(strings.Repeat("(", 33) + "y" + strings.Repeat(")", 33)) }, false},
		{"unknown type code", "v", func(b *builder) { b.sig("m").raw(0) }, false},
		{"variant fd", "v", func(b *builder) { b.sig("h").u32(0) }, true},
		{"empty arrays 65 deep", "v", func(b *builder) {
			// 33 variants around 32 arrays: elements 65 deep, but
			// there are none.
			for range 32 {
				b.sig("v")
			}
			b.sig(strings.Repeat("a", 32) + "y")
			for j := 31; j >= 0; j-- {
				b.u32(uint32(4 * j))
			}
		}, true},
		{"65 variants", "v", deep(65), false},
		{"trailing byte", "y", func(b *builder) { b.raw(1, 2) }, false},
	}
	for _, c := range cases {
		b := &builder{}
		c.body(b)
		r := NewReader(b.b, false)
		var w Writer
		if err := Copy(&w, &r, c.sig); err == nil && r.Rest() == 0 {
			t.Fatalf("%s: Copy accepts it", c.name)
		}
		rc := dialRaw(t, bus.Address)
		rc.serial++
		frame := AppendSignal(nil, rc.serial, "/a", "a.b", "C", rc.name, c.sig, b.b)
		if err := rc.send(frame); err != nil {
			t.Fatal(err)
		}
		_, err := rc.call("GetId")
		switch {
		case err == nil && !c.strict:
			t.Errorf("%s: the daemon accepts it", c.name)
		case err == nil:
			t.Logf("%s: the daemon accepts it, Copy is stricter", c.name)
		case c.strict:
			t.Logf("%s: the daemon refuses it too: %v", c.name, err)
		}
	}
	// Deep but allowed.
	rc := dialRaw(t, bus.Address)
	b := &builder{}
	deep(64)(b)
	if err := rc.send(AppendSignal(nil, 50, "/a", "a.b", "C", rc.name, "v", b.b)); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.call("GetId"); err != nil {
		t.Fatalf("64 variants: %v", err)
	}
}
