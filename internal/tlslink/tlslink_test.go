// SPDX-License-Identifier: Apache-2.0

package tlslink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testcerts"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
)

// logSink collects log lines for the tests to wait on.
type logSink struct {
	mu    sync.Mutex
	lines []string
	ch    chan struct{}
}

func newLogSink() *logSink { return &logSink{ch: make(chan struct{}, 1)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.lines = append(s.lines, strings.TrimSpace(string(p)))
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count returns how many lines contain part.
func (s *logSink) count(part string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, part) {
			n++
		}
	}
	return n
}

// wait returns the first line containing every one of parts.
func (s *logSink) wait(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				s.mu.Unlock()
				return l
			}
		}
		s.mu.Unlock()
		select {
		case <-s.ch:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("no log line with %q in:\n%s", parts, strings.Join(s.lines, "\n"))
		}
	}
}

type fixture struct {
	set  *testcerts.Set
	ctrl *tlsconfig.Holder
	log  *logSink
	l    *Listener
	// accepted receives what the listener's Accept returns.
	accepted chan *Conn
}

func holder(t *testing.T, f tlsconfig.Files) *tlsconfig.Holder {
	t.Helper()
	h, _, err := tlsconfig.NewHolder(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newFixture starts a Listener on loopback with a controller certificate
// for 127.0.0.1 and localhost, and certificates for node1 and node2.
func newFixture(t *testing.T, opts ListenerOptions) *fixture {
	t.Helper()
	set, err := testcerts.New(t.TempDir(), nil, "node1", "node2")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{set: set, ctrl: holder(t, set.Controller), log: newLogSink(), accepted: make(chan *Conn, 16)}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Log = f.log.logger()
	f.l = NewListener(inner, f.ctrl, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := f.l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("accept: %v", err)
				return
			}
			f.accepted <- nc.(*Conn)
		}
	}()
	t.Cleanup(func() {
		f.l.Close()
		<-done
		close(f.accepted)
		for c := range f.accepted {
			c.Close()
		}
	})
	return f
}

func (f *fixture) addr() string { return f.l.Addr().String() }

func (f *fixture) next(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-f.accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("nothing accepted")
		return nil
	}
}

func (f *fixture) dialer(t *testing.T, files tlsconfig.Files) *Dialer {
	return &Dialer{Holder: holder(t, files), ServerName: "127.0.0.1"}
}

func (f *fixture) dial(t *testing.T, d *Dialer) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, "tcp:host=127.0.0.1,port="+f.addr()[strings.LastIndexByte(f.addr(), ':')+1:])
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// roundTrip writes a line on a and reads it on b.
func roundTrip(t *testing.T, a, b net.Conn, line string) {
	t.Helper()
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(a, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(b).ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("read %q, %v; want %q", got, err, line)
	}
}

// TestAcceptAndNames: a node of the fleet connects over TLS 1.3, the
// accepted connection carries its verified names, Register's check
// allows its own name only and answers AccessDenied otherwise.
func TestAcceptAndNames(t *testing.T) {
	f := newFixture(t, ListenerOptions{})
	client, err := f.dial(t, f.dialer(t, f.set.Nodes["node1"]))
	if err != nil {
		t.Fatal(err)
	}
	srv := f.next(t)
	roundTrip(t, client, srv, "\x00AUTH EXTERNAL 30")
	roundTrip(t, srv, client, "OK 0123")
	if v := srv.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %#x", v)
	}
	if got := srv.PeerNames(); len(got) != 1 || got[0] != "node1" {
		t.Errorf("PeerNames %q", got)
	}
	if err := CheckNodeName(srv, "node1"); err != nil {
		t.Errorf("node1 as node1: %v", err)
	}
	err = CheckNodeName(srv, "node2")
	var ne *NameError
	if !errors.As(err, &ne) || ne.Name != "node2" || !strings.Contains(err.Error(), `names ["node1"], not "node2"`) ||
		!strings.Contains(err.Error(), client.LocalAddr().String()) {
		t.Fatalf("node1 as node2: %v", err)
	}
	if n, m := dbusrt.ErrorName(err), dbusrt.ErrorMessage(err); n != dbusrt.ErrAccessDenied || m != "Node name not allowed" {
		t.Errorf("reply %s %q", n, m)
	}
	if PeerClosed(srv) {
		t.Error("PeerClosed with the peer connected")
	}
	client.Close()
	waitFor(t, "PeerClosed", func() bool { return PeerClosed(srv) })

	// Not a TLS connection: the check does not apply.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if CheckNodeName(a, "anything") != nil {
		t.Error("a plain connection is checked")
	}

	// A certificate without SAN names its CN.
	cn, err := f.set.CNOnly("node3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.dial(t, f.dialer(t, cn)); err != nil {
		t.Fatal(err)
	}
	srv = f.next(t)
	if got := srv.PeerNames(); len(got) != 1 || got[0] != "node3" || CheckNodeName(srv, "node3") != nil || CheckNodeName(srv, "node1") == nil {
		t.Errorf("CN-only certificate: names %q", got)
	}
}

// TestRefused: plain D-Bus, garbage, no certificate, another CA's
// certificate, an expired one and a silent peer are cut off with a log
// line naming the peer and the reason; the agent's side of a refused
// certificate says that the controller refused it.
func TestRefused(t *testing.T) {
	f := newFixture(t, ListenerOptions{HandshakeTimeout: 300 * time.Millisecond})
	raw := func(data string) string {
		t.Helper()
		c, err := net.Dial("tcp", f.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if data != "" {
			io.WriteString(c, data)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("%q: the server answered (%d, %v)", data, n, err)
		}
		return c.LocalAddr().String()
	}
	peer := raw("\x00AUTH EXTERNAL 30\r\n")
	f.log.wait(t, "plain D-Bus connection refused", "peer="+peer)
	peer = raw("AUTH ANONYMOUS\r\n")
	f.log.wait(t, "plain D-Bus connection refused", "peer="+peer)
	peer = raw("GET / HTTP/1.0\r\n\r\n")
	f.log.wait(t, "not a TLS handshake", "peer="+peer, "first_byte=0x47")
	peer = raw("")
	f.log.wait(t, "no handshake", "peer="+peer, "timeout")

	refused := func(what string, c net.Conn, serverLog string) {
		t.Helper()
		// The client's handshake is done before the server's verdict.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "\x00AUTH EXTERNAL 30\r\n")
		_, err := c.Read(make([]byte, 1))
		if err == nil || !strings.Contains(err.Error(), "the controller at "+f.addr()+" refused the TLS connection") {
			t.Errorf("%s: client read: %v", what, err)
		}
		f.log.wait(t, "handshake failed", "peer="+c.LocalAddr().String(), serverLog)
		t.Logf("%s: %v", what, err)
	}
	other, err := f.set.OtherCA("node1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.dial(t, f.dialer(t, other))
	if err != nil {
		t.Fatal(err)
	}
	refused("certificate of another CA", c, "unknown authority")

	// Configurations a Holder does not make: no certificate, an expired one.
	node1 := holder(t, f.set.Nodes["node1"])
	rawTLS := func(cfg *tls.Config) net.Conn {
		t.Helper()
		tc, err := tls.Dial("tcp", f.addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
		return &ClientConn{Conn: tc, cert: "test"}
	}
	noCert := node1.ClientConfig("127.0.0.1")
	noCert.GetClientCertificate = nil
	refused("no certificate", rawTLS(noCert), "didn't provide a certificate")
	exp, err := f.set.Expired("node1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(exp.Certificate, exp.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	expired := node1.ClientConfig("127.0.0.1")
	expired.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	refused("expired certificate", rawTLS(expired), "expired")

	select {
	case c := <-f.accepted:
		t.Fatalf("accepted a refused peer: %v", c.PeerNames())
	default:
	}
}
