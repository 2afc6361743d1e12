// SPDX-License-Identifier: Apache-2.0

package tlslink

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/testcerts"
)

// TestDialerVerifiesController: the agent refuses a controller whose
// certificate does not carry TLSServerName or comes from another CA, with
// an error naming the address, the server name and the CA file.
func TestDialerVerifiesController(t *testing.T) {
	f := newFixture(t, ListenerOptions{})
	node1 := f.set.Nodes["node1"]
	d := f.dialer(t, node1)
	d.ServerName = "elsewhere"
	_, err := f.dial(t, d)
	if err == nil || !strings.Contains(err.Error(), `TLS handshake with the controller at `+f.addr()+` (server name "elsewhere", TLSCA `+node1.CA+`)`) ||
		!strings.Contains(err.Error(), "not elsewhere") {
		t.Fatalf("wrong server name: %v", err)
	}
	f.log.wait(t, "handshake failed") // the controller sees the agent give up

	// No TLSServerName: the host dialed, here an address of the
	// certificate's IP SANs, or a name it does not carry.
	d.ServerName = ""
	if _, err := f.dial(t, d); err != nil {
		t.Fatalf("server name from the address: %v", err)
	}
	f.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for host, want := range map[string]string{"ctrl.invalid": `server name "ctrl.invalid"`, "": "set TLSServerName"} {
		nc, err := net.Dial("tcp", f.addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Client(ctx, nc, host); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("host %q: %v", host, err)
		}
	}

	// A controller whose certificate another CA signed.
	otherSet, err := testcerts.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	impostor := NewListener(inner, holder(t, otherSet.Controller), ListenerOptions{})
	defer impostor.Close()
	_, port, _ := net.SplitHostPort(inner.Addr().String())
	if _, err := f.dialer(t, node1).Dial(ctx, "tcp:host=127.0.0.1,port="+port); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("controller of another CA: %v", err)
	}
	// Nothing listening: the usual dial error, wrapped with the address.
	impostor.Close()
	if _, err := f.dialer(t, node1).Dial(ctx, "tcp:host=127.0.0.1,port="+port); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed port: %v", err)
	}
}

// TestReloadNewConnectionsOnly: after the controller's files change and
// the Holder reloads, an established connection goes on and the next one
// gets the new certificate.
func TestReloadNewConnectionsOnly(t *testing.T) {
	f := newFixture(t, ListenerOptions{})
	d := f.dialer(t, f.set.Nodes["node1"])
	old, err := f.dial(t, d)
	if err != nil {
		t.Fatal(err)
	}
	oldSrv := f.next(t)
	roundTrip(t, old, oldSrv, "before")
	oldSerial := old.(*ClientConn).ConnectionState().PeerCertificates[0].SerialNumber

	if _, err := f.set.Issue("controller", testcerts.Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true}); err != nil {
		t.Fatal(err)
	}
	sink := newLogSink()
	if err := Reload(f.ctrl, sink.logger()); err != nil {
		t.Fatal(err)
	}
	newSerial := f.ctrl.Current().Pair.Leaf.SerialNumber
	sink.wait(t, "certificates reloaded", "serial="+newSerial.String())
	roundTrip(t, old, oldSrv, "after")
	roundTrip(t, oldSrv, old, "and back")

	c, err := f.dial(t, d)
	if err != nil {
		t.Fatal(err)
	}
	f.next(t)
	if got := c.(*ClientConn).ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(newSerial) != 0 || got.Cmp(oldSerial) == 0 {
		t.Fatalf("new connection: serial %s, want %s", got, newSerial)
	}

	// A broken file keeps the old material and says which file.
	if err := os.WriteFile(f.set.Controller.PrivateKey, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Reload(f.ctrl, sink.logger()); err == nil || !strings.Contains(err.Error(), f.set.Controller.PrivateKey) {
		t.Fatalf("reload of a broken key: %v", err)
	}
	sink.wait(t, "reload failed", "keeping the certificates")
	if _, err := f.dial(t, d); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	f.next(t)
}

// TestMaxHandshakes: with every handshake slot taken by silent peers,
// one more connection is closed at once with a log line; a slot freed by
// the timeout serves the next node.
func TestMaxHandshakes(t *testing.T) {
	f := newFixture(t, ListenerOptions{MaxHandshakes: 2, HandshakeTimeout: time.Second})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", f.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// Both are in their handshake once a third is refused.
	var extra net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", f.addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			extra = c
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection refused")
		}
	}
	defer extra.Close()
	f.log.wait(t, "too many handshakes", "peer="+extra.LocalAddr().String(), "max=2")
	for _, c := range silent {
		f.log.wait(t, "no handshake", "peer="+c.LocalAddr().String())
	}
	if _, err := f.dial(t, f.dialer(t, f.set.Nodes["node1"])); err != nil {
		t.Fatal(err)
	}
	f.next(t)
}

// TestCloseEndsHandshakes: Close returns with peers in their handshake
// and leaves no goroutine behind.
func TestCloseEndsHandshakes(t *testing.T) {
	set, err := testcerts.New(t.TempDir(), nil, "node1")
	if err != nil {
		t.Fatal(err)
	}
	h := holder(t, set.Controller)
	before := runtime.NumGoroutine()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, h, ListenerOptions{HandshakeTimeout: time.Hour})
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// One that completes its handshake but is never accepted.
	tc, err := tls.Dial("tcp", l.Addr().String(), holder(t, set.Nodes["node1"]).ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	waitFor(t, "handshakes in progress", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.pending) == 5
	})
	done := make(chan error)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	if _, err := l.Accept(); err != net.ErrClosed {
		t.Errorf("Accept after Close: %v", err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a pending connection is still open")
		}
	}
	waitFor(t, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOpenSSLSeesTLS13: openssl s_client with a node certificate
// negotiates TLS 1.3 with the listener; without a certificate the
// listener refuses it.
func TestOpenSSLSeesTLS13(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed (Debian package openssl)")
	}
	f := newFixture(t, ListenerOptions{})
	node := f.set.Nodes["node1"]
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", f.addr(), "-verify_return_error", "-CAfile", node.CA}, args...)...)
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	out := run("-cert", node.Certificate, "-key", node.PrivateKey)
	if !strings.Contains(out, "TLSv1.3") || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Fatalf("s_client:\n%s", out)
	}
	c := f.next(t)
	if c.ConnectionState().Version != tls.VersionTLS13 || CheckNodeName(c, "node1") != nil {
		t.Errorf("server side: version %#x, names %q", c.ConnectionState().Version, c.PeerNames())
	}
	run()
	f.log.wait(t, "handshake failed", "certificate")
}

// TestLoadAndWatchExpiry: Load logs the warning of a certificate that
// expires within a week, WatchExpiry repeats it every interval and stops
// with its context.
func TestLoadAndWatchExpiry(t *testing.T) {
	set, err := testcerts.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.Issue("soon", testcerts.Leaf{CN: "node1", DNS: []string{"node1"}, NotAfter: time.Now().Add(3 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sink := newLogSink()
	h, err := Load(config.TLS{Use: true, Certificate: files.Certificate, PrivateKey: files.PrivateKey, CA: files.CA}, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	sink.wait(t, "TLS: TLSCertificate "+files.Certificate, "expires on")
	ctx, cancel := context.WithCancel(context.Background())
	daily := newLogSink()
	wait := WatchExpiry(ctx, h, 10*time.Millisecond, daily.logger())
	waitFor(t, "two daily warnings", func() bool { return daily.count("expires on") >= 2 })
	cancel()
	wait()

	if _, err := Load(config.TLS{Use: true, Certificate: files.Certificate}, sink.logger()); err == nil || !strings.Contains(err.Error(), "TLSPrivateKey and TLSCA are not set") {
		t.Errorf("missing keys: %v", err)
	}
}

// TestREADMECertificates runs doc/tls/make-certs.sh, the openssl commands
// the README shows (and holds verbatim), and checks that its files make a
// working fleet: the controller verified under its DNS name and its
// address, each node's certificate naming that node only.
func TestREADMECertificates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (Debian package openssl)")
	}
	script, err := os.ReadFile("../../doc/tls/make-certs.sh")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	body := string(script[strings.Index(string(script), "# The fleet's CA"):])
	if !strings.Contains(string(readme), body) {
		t.Errorf("README.md does not hold the commands of doc/tls/make-certs.sh verbatim")
	}
	dir := t.TempDir()
	abs, err := filepath.Abs("../../doc/tls/make-certs.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-e", abs)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODES=laptop server")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	files := func(name string) config.TLS {
		return config.TLS{Use: true, Certificate: dir + "/" + name + ".crt", PrivateKey: dir + "/" + name + ".key", CA: dir + "/ca.crt"}
	}
	ctrl, err := Load(files("controller"), nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, ctrl, ListenerOptions{})
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for _, c := range []struct{ node, serverName string }{{"laptop", "controller.example.org"}, {"server", "127.0.0.1"}} {
		h, err := Load(files(c.node), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d := Dialer{Holder: h, ServerName: c.serverName}
		nc, err := d.Dial(ctx, "tcp:host=127.0.0.1,port="+port)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.node, err)
		}
		defer nc.Close()
		nc.Write([]byte{0})
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		other := map[string]string{"laptop": "server", "server": "laptop"}[c.node]
		if CheckNodeName(sc, c.node) != nil || CheckNodeName(sc, other) == nil {
			t.Errorf("%s's certificate: names %q", c.node, sc.(*Conn).PeerNames())
		}
	}
}

// pipeListener hands out the server ends of net.Pipe connections, which
// have no socket under them.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
}

func (p *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}
func (p *pipeListener) Close() error   { close(p.closed); return nil }
func (p *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

// TestNoSocket: on a connection without a socket the first byte is read
// and given back to TLS instead of peeked.
func TestNoSocket(t *testing.T) {
	set, err := testcerts.New(t.TempDir(), nil, "node1")
	if err != nil {
		t.Fatal(err)
	}
	pl := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	l := NewListener(pl, holder(t, set.Controller), ListenerOptions{})
	defer l.Close()
	a, b := net.Pipe()
	defer a.Close()
	pl.conns <- b
	tc := tls.Client(a, holder(t, set.Nodes["node1"]).ClientConfig("127.0.0.1"))
	hs := make(chan error, 1)
	go func() { hs <- tc.Handshake() }()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	// A pipe does not buffer: write while the other end reads.
	go io.WriteString(tc, "over a pipe\n")
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := bufio.NewReader(nc).ReadString('\n'); got != "over a pipe\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if CheckNodeName(nc, "node1") != nil {
		t.Errorf("names %q", nc.(*Conn).PeerNames())
	}
	a.Close() // first: nc's close_notify has no reader on a pipe
}
