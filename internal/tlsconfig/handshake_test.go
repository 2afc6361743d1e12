// SPDX-License-Identifier: Apache-2.0

package tlsconfig

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// tlsServer accepts on loopback TCP with cfg; every connection finishes
// its handshake (the result goes to results), then echoes lines.
type tlsServer struct {
	addr    string
	results chan handshake
}

type handshake struct {
	state tls.ConnectionState
	err   error
}

func startServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{addr: l.Addr().String(), results: make(chan handshake, 16)}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				c := tls.Server(nc, cfg)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				err := c.Handshake()
				s.results <- handshake{c.ConnectionState(), err}
				if err != nil {
					return
				}
				c.SetDeadline(time.Time{})
				io.Copy(c, c) // echo
			}()
		}
	}()
	return s
}

// result waits for the server's side of the next handshake.
func (s *tlsServer) result(t *testing.T) handshake {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no handshake on the server")
		return handshake{}
	}
}

// dial connects with cfg and completes the handshake with one echoed line
// (in TLS 1.3 the server's verdict on the client certificate arrives after
// the client's handshake is done).
func dial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := tls.Client(nc, cfg)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := echo(c, "hello"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c *tls.Conn, line string) error {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo: " + got)
	}
	return nil
}

// cluster is a controller's and two nodes' material from one CA.
type cluster struct {
	dir                 string
	ca                  *testCA
	controller          *Holder
	node1, node2, noSAN *Holder
}

func newTestCluster(t *testing.T) *cluster {
	c := &cluster{dir: t.TempDir(), ca: newCA(t, "fleet CA")}
	c.controller = c.holder(t, "controller", leaf{cn: "controller", dns: []string{"controller"}, server: true})
	c.node1 = c.holder(t, "node1", leaf{cn: "node1", dns: []string{"node1"}})
	c.node2 = c.holder(t, "node2", leaf{cn: "ignored", dns: []string{"node2"}})
	c.noSAN = c.holder(t, "cn-only", leaf{cn: "node3"})
	return c
}

func (c *cluster) holder(t *testing.T, name string, l leaf) *Holder {
	t.Helper()
	h, _, err := NewHolder(c.ca.files(c.dir, name, l))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMutualTLS(t *testing.T) {
	c := newTestCluster(t)
	srv := startServer(t, c.controller.ServerConfig())

	// A node of the fleet: TLS 1.3, its verified certificate names it
	// and no other node.
	conn, err := dial(srv.addr, c.node1.ClientConfig("controller"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	r := srv.result(t)
	if r.err != nil || r.state.Version != tls.VersionTLS13 {
		t.Fatalf("server: %v, version %x", r.err, r.state.Version)
	}
	if err := CheckNodeName(r.state, "node1"); err != nil {
		t.Errorf("node1's certificate for node1: %v", err)
	}
	if err := CheckNodeName(r.state, "node2"); err == nil || !strings.Contains(err.Error(), `names ["node1"], not "node2"`) {
		t.Errorf("node1's certificate for node2: %v", err)
	}
	if _, err := dial(srv.addr, c.noSAN.ClientConfig("controller")); err != nil {
		t.Fatal(err)
	}
	r = srv.result(t)
	if CheckNodeName(r.state, "node3") != nil || CheckNodeName(r.state, "node1") == nil {
		t.Errorf("certificate without SAN: CN node3 must name node3 only")
	}
	if err := CheckNodeName(tls.ConnectionState{}, "node1"); !errors.Is(err, ErrNoVerifiedCertificate) {
		t.Errorf("no certificate: %v", err)
	}

	// Refused by the controller.
	stranger := newCA(t, "other CA")
	strangerFiles := stranger.files(c.dir, "stranger", leaf{cn: "node1", dns: []string{"node1"}})
	strangerHolder, _, err := NewHolder(strangerFiles)
	if err != nil {
		t.Fatal(err)
	}
	foreign := strangerHolder.ClientConfig("controller")
	foreign.RootCAs = c.controller.Current().CAs // it trusts the controller, the controller not it
	noCert := c.node1.ClientConfig("controller")
	noCert.GetClientCertificate = nil
	tls12 := c.node1.ClientConfig("controller")
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	expCert, expKey, _ := c.ca.issue(leaf{cn: "node1", dns: []string{"node1"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	expPair, err := tls.X509KeyPair(expCert, expKey)
	if err != nil {
		t.Fatal(err)
	}
	expired := c.node1.ClientConfig("controller")
	expired.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &expPair, nil }
	want := map[string]string{
		"expired certificate":       "certificate has expired",
		"certificate of another CA": "certificate signed by unknown authority",
		"no certificate":            "client didn't provide a certificate",
		"TLS 1.2":                   "unsupported versions",
	}
	for name, cfg := range map[string]*tls.Config{"certificate of another CA": foreign, "no certificate": noCert, "TLS 1.2": tls12, "expired certificate": expired} {
		if conn, err := dial(srv.addr, cfg); err == nil {
			conn.Close()
			t.Errorf("%s: accepted", name)
		}
		if r := srv.result(t); r.err == nil || !strings.Contains(r.err.Error(), want[name]) {
			t.Errorf("%s: the server's handshake: %v, want %q", name, r.err, want[name])
		}
	}

	// Refused by the agent: the controller under another name, or
	// signed by another CA.
	if _, err := dial(srv.addr, c.node1.ClientConfig("elsewhere")); err == nil || !strings.Contains(err.Error(), "certificate is valid for controller, not elsewhere") {
		t.Errorf("wrong server name: %v", err)
	}
	srv.result(t)
	impostor := startServer(t, strangerHolder.ServerConfig())
	if _, err := dial(impostor.addr, c.node1.ClientConfig("node1")); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("controller of another CA: %v", err)
	}
	impostor.result(t)
}

// TestReload: after the files change and Reload, new connections get the
// new certificate while an established one goes on; a broken file is
// refused and the old material stays.
func TestReload(t *testing.T) {
	c := newTestCluster(t)
	srv := startServer(t, c.controller.ServerConfig())
	old, err := dial(srv.addr, c.node1.ClientConfig("controller"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	srv.result(t)
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber

	// Rotate the controller's pair in place, as an administrator would.
	files := c.controller.Current().Files
	certPEM, keyPEM, newCert := c.ca.issue(leaf{cn: "controller", dns: []string{"controller"}, server: true})
	write(t, files.Certificate, certPEM)
	write(t, files.PrivateKey, keyPEM)
	if _, err := c.controller.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := echo(old, "still here"); err != nil {
		t.Fatalf("established connection after the reload: %v", err)
	}
	conn, err := dial(srv.addr, c.node1.ClientConfig("controller"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	srv.result(t)
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(newCert.SerialNumber) != 0 || got.Cmp(oldSerial) == 0 {
		t.Fatalf("new connection got serial %s, want the new %s", got, newCert.SerialNumber)
	}

	// A half-written rotation (key of another pair) is refused; the
	// loaded pair goes on serving.
	_, otherKey, _ := c.ca.issue(leaf{cn: "x"})
	write(t, files.PrivateKey, otherKey)
	if _, err := c.controller.Reload(); err == nil || !strings.Contains(err.Error(), files.PrivateKey) {
		t.Fatalf("reload with a mismatched key: %v", err)
	}
	conn, err = dial(srv.addr, c.node1.ClientConfig("controller"))
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	conn.Close()
	srv.result(t)
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(newCert.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: serial %s, want %s", got, newCert.SerialNumber)
	}

	// The agent side: a reloaded CA bundle is used by the next attempt.
	nodeFiles := c.node1.Current().Files
	write(t, nodeFiles.CA, newCA(t, "unrelated CA").pem)
	if _, err := c.node1.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(srv.addr, c.node1.ClientConfig("controller")); err == nil {
		t.Fatal("agent with a CA bundle that does not hold the controller's CA connected")
	}
	srv.result(t)
}

// TestOpenSSLClient checks the controller's configuration from outside Go:
// openssl s_client with a node certificate negotiates TLS 1.3, without a
// certificate or with TLS 1.2 only it is refused.
func TestOpenSSLClient(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed (Debian package openssl)")
	}
	c := newTestCluster(t)
	srv := startServer(t, c.controller.ServerConfig())
	node := c.node1.Current().Files
	run := func(args ...string) (string, handshake) {
		t.Helper()
		cmd := exec.Command(openssl, append([]string{"s_client", "-connect", srv.addr, "-servername", "controller", "-verify_return_error",
			"-CAfile", node.CA}, args...)...)
		cmd.Stdin = strings.NewReader("ping\n")
		out, _ := cmd.CombinedOutput()
		return string(out), srv.result(t)
	}

	out, r := run("-cert", node.Certificate, "-key", node.PrivateKey)
	if r.err != nil || r.state.Version != tls.VersionTLS13 || !strings.Contains(out, "TLSv1.3") || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Fatalf("s_client with node1's certificate: server %v\n%s", r.err, out)
	}
	if CheckNodeName(r.state, "node1") != nil {
		t.Errorf("s_client's certificate does not name node1")
	}
	out, r = run()
	if r.err == nil || !strings.Contains(r.err.Error(), "certificate") {
		t.Fatalf("s_client without a certificate: server %v\n%s", r.err, out)
	}
	out, r = run("-tls1_2", "-cert", node.Certificate, "-key", node.PrivateKey)
	if r.err == nil || !strings.Contains(out, "Cipher is (NONE)") {
		t.Fatalf("s_client with TLS 1.2: server %v\n%s", r.err, out)
	}
	t.Logf("TLS 1.2 refused: %v", r.err)
}
