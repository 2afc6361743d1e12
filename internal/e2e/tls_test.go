// SPDX-License-Identifier: Apache-2.0

// The scenarios of issue 15 (mutual TLS on the agent link) on the real
// binaries.
//
// What the daemons log, as these tests look for it: the controller logs a
// *tlslink.NameError as an attribute (`node name \"X\" refused for TLS
// peer ...`, quotes escaped by the log) and answers Register with its
// AccessDenied "Node name not allowed", which the agent logs; tlslink's
// own lines (plain D-Bus refused, handshake failed, certificates reloaded)
// go to the daemons' log (Options.Log = Slog()).

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/testcerts"
	"github.com/bluechi-go/bluechi/internal/tlsconfig"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// tlsCluster is a cluster whose controller has UseTLS=yes, with the
// certificates of its nodes.
type tlsCluster struct {
	*cluster
	certs *testcerts.Set
	spare *sandbox.Node // runs the refused agents (every agent needs a bus of its own)
}

// tlsKeys are the configuration lines of a daemon's TLS files.
func tlsKeys(f tlsconfig.Files) string {
	return fmt.Sprintf("%s=yes\n%s=%s\n%s=%s\n%s=%s\n", config.KeyUseTLS, config.KeyTLSCertificate, f.Certificate,
		config.KeyTLSPrivateKey, f.PrivateKey, config.KeyTLSCA, f.CA)
}

const tlsAgentBase = "[bluechi-agent]\nLogTarget=stderr\nLogLevel=DEBUG\nHeartbeatInterval=500\n"

func newTLSCluster(t *testing.T, names ...string) *tlsCluster {
	return newTLSClusterBin(t, "", "", names...)
}

// newTLSClusterBin is newTLSCluster with the controller binary bin ("":
// the one built with -race) and extra lines in its configuration.
func newTLSClusterBin(t *testing.T, bin, extra string, names ...string) *tlsCluster {
	t.Helper()
	certs, err := testcerts.New(t.TempDir(), []string{"localhost", "127.0.0.1"}, names...)
	if err != nil {
		t.Fatal(err)
	}
	c := newClusterBin(t, bin, "LogLevel=DEBUG\n"+tlsKeys(certs.Controller)+extra, nil, names...)
	return &tlsCluster{cluster: c, certs: certs}
}

// startTLSAgent runs node name's agent over TLS with files (TLSServerName
// defaults to ControllerHost, 127.0.0.1, an IP SAN of the controller).
func (c *tlsCluster) startTLSAgent(name string, files tlsconfig.Files) *exec.Cmd {
	return c.startAgentWith(name, tlsAgentBase+tlsKeys(files))
}

// spareAgent runs an agent that claims to be name on the spare node with
// the configuration conf; its log is agent-spare-<label>.
func (c *tlsCluster) spareAgent(label, name, conf string) *exec.Cmd {
	c.t.Helper()
	if c.spare == nil {
		c.spare = sandbox.StartT(c.t, sandbox.Options{Name: "spare"})
	}
	file := filepath.Join(c.dir, "agent-spare-"+label+".conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	cmd := c.spare.Command(context.Background(), filepath.Join(binDir, "bluechi-agent"), "-u", "-n", name, "-c", file,
		"-H", "127.0.0.1", "-p", fmt.Sprint(c.port))
	log := c.logFile("agent-spare-" + label)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { stop(cmd) })
	return cmd
}

// logCount counts the occurrences of text in a log of the cluster.
func logCount(c *cluster, name, text string) int {
	data, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	return strings.Count(string(data), text)
}

// waitLog waits until every one of texts is in the log.
func (c *tlsCluster) waitLog(name string, texts ...string) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%q in %s.log", texts, name), func() bool {
		for _, s := range texts {
			if !logContains(c.cluster, name, s) {
				return false
			}
		}
		return true
	})
}

// statusWatch records every node that went offline.
type statusWatch struct {
	mu      sync.Mutex
	offline []string
}

func (c *tlsCluster) watchStatus() *statusWatch {
	c.t.Helper()
	conn := c.cluster.client
	if err := conn.AddMatchSignal(dbus.WithMatchSender(bluechi.ControllerBusName), dbus.WithMatchMember("PropertiesChanged")); err != nil {
		c.t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 64)
	conn.Signal(ch)
	w := &statusWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range ch {
			if len(s.Body) < 2 {
				continue
			}
			changed, _ := s.Body[1].(map[string]dbus.Variant)
			if v, ok := changed[bluechi.NodePropertyStatus]; ok && v.Value() == "offline" {
				w.mu.Lock()
				w.offline = append(w.offline, string(s.Path))
				w.mu.Unlock()
			}
		}
	}()
	c.t.Cleanup(func() { conn.RemoveSignal(ch); close(ch); <-done })
	return w
}

func (w *statusWatch) wentOffline() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.offline...)
}

// dialTLS opens a TLS connection to the controller's port with a node's
// certificate (pair overrides it when set) and returns the controller's
// certificate, or the error of the first read (TLS 1.3 gives the
// controller's verdict on the client certificate after the handshake).
func (c *tlsCluster) dialTLS(files tlsconfig.Files, pair *tls.Certificate) (*tls.Conn, error) {
	c.t.Helper()
	h, _, err := tlsconfig.NewHolder(files)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := h.ClientConfig("127.0.0.1")
	if pair != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair, nil }
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", c.port), cfg)
	if err != nil {
		return nil, err
	}
	c.t.Cleanup(func() { tc.Close() })
	// A D-Bus client's first bytes; the controller answers or cuts off.
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	tc.Write([]byte("\x00AUTH ANONYMOUS\r\n"))
	if _, err := tc.Read(make([]byte, 1)); err != nil {
		return tc, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// sClient runs openssl s_client against the controller's port.
func (c *tlsCluster) sClient(args ...string) string {
	c.t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		c.t.Fatal("openssl is needed (Debian package openssl)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", c.port),
		"-verify_return_error", "-CAfile", c.certs.CAFile}, args...)...)
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestTLSNodesOnline: every node registers over mutual TLS and works (a
// job on each); PeerIp is still the agent's address; openssl s_client
// sees TLS 1.3 on the agent port with a verified controller certificate.
func TestTLSNodesOnline(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	c := newTLSCluster(t, names...)
	for _, n := range names {
		c.startTLSAgent(n, c.certs.Nodes[n])
	}
	ctx := context.Background()
	jobs := c.jobs()
	for _, n := range names {
		c.waitStatus(n, "online")
		if ip, err := c.node(n).GetPeerIP(ctx); err != nil || ip != "127.0.0.1" {
			t.Errorf("%s: PeerIp %q, %v", n, ip, err)
		}
		job, err := c.node(n).StartUnit(ctx, sandbox.SimpleServiceName, "replace")
		if err != nil {
			t.Fatal(err)
		}
		if r := jobs.result(job); r != "done" {
			t.Errorf("%s: job %s", n, r)
		}
	}
	node := c.certs.Nodes["n1"]
	out := c.sClient("-cert", node.Certificate, "-key", node.PrivateKey)
	if !strings.Contains(out, "TLSv1.3") || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Fatalf("s_client on the agent port:\n%s", out)
	}
	out = c.sClient("-tls1_2", "-cert", node.Certificate, "-key", node.PrivateKey)
	if !strings.Contains(out, "Cipher is (NONE)") {
		t.Errorf("s_client with TLS 1.2 was not refused:\n%s", out)
	}
}

// TestTLSHostName: an agent whose ControllerHost is a host name verifies
// the controller against that name, not against the address it resolved
// to: the controller's certificate carries only DNS:localhost.
func TestTLSHostName(t *testing.T) {
	certs, err := testcerts.New(t.TempDir(), []string{"localhost"}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	c := newClusterWith(t, "LogLevel=DEBUG\n"+tlsKeys(certs.Controller), "n1")
	c.startAgentConf("n1", tlsAgentBase+tlsKeys(certs.Nodes["n1"]), "-H", "localhost", "-p", fmt.Sprint(c.port))
	c.waitStatus("n1", "online")
	want := localhostAddress(t, c.port)
	if v, err := c.agentAPI("n1").GetControllerAddress(context.Background()); err != nil || v != want {
		t.Errorf("ControllerAddress %q, %v; want %q", v, err, want)
	}
}

// TestTLSRefused: the controller refuses, each with a log line, an agent
// registering with another node's certificate (AccessDenied "Node name not
// allowed"), a certificate of another CA, an expired certificate (the
// agent itself refuses to start with it, naming the file), no
// certificate, and a plain agent; the node stays offline and its real
// agent then registers.
func TestTLSRefused(t *testing.T) {
	c := newTLSCluster(t, "n1", "n2")
	c.startTLSAgent("n1", c.certs.Nodes["n1"])
	c.waitStatus("n1", "online")
	ctx := context.Background()
	offline := func(what string) {
		t.Helper()
		if s, _ := c.node("n2").GetStatus(ctx); s != "offline" {
			t.Fatalf("%s: n2 is %s", what, s)
		}
	}

	// n1's certificate claiming n2.
	impostor := c.spareAgent("impostor", "n2", tlsAgentBase+tlsKeys(c.certs.Nodes["n1"]))
	// (The log escapes the quotes of the error's text.)
	c.waitLog("controller", `node name \"n2\" refused for TLS peer 127.0.0.1:`, `names [\"n1\"], not \"n2\"`)
	c.waitLog("agent-spare-impostor", "Node name not allowed")
	offline("n1's certificate as n2")
	stop(impostor)

	// A certificate of another CA.
	other, err := c.certs.OtherCA("n2")
	if err != nil {
		t.Fatal(err)
	}
	stranger := c.spareAgent("other-ca", "n2", tlsAgentBase+tlsKeys(other))
	c.waitLog("controller", "TLS: handshake failed", "certificate signed by unknown authority")
	c.waitLog("agent-spare-other-ca", "refused the TLS connection", "unknown certificate authority")
	offline("certificate of another CA")
	stop(stranger)

	// An expired certificate: the agent does not start with it ...
	expired, err := c.certs.Expired("n2")
	if err != nil {
		t.Fatal(err)
	}
	late := c.spareAgent("expired", "n2", tlsAgentBase+tlsKeys(expired))
	code := waitExit(t, late, "the agent with an expired certificate")
	if code != 1 || !logContains(c.cluster, "agent-spare-expired", "TLSCertificate "+expired.Certificate) ||
		!logContains(c.cluster, "agent-spare-expired", "expired on") {
		t.Errorf("agent with an expired certificate: exit %d", code)
	}
	// ... and the controller refuses a client that offers one anyway.
	pair, err := tls.LoadX509KeyPair(expired.Certificate, expired.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.dialTLS(c.certs.Nodes["n2"], &pair); err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Errorf("client with an expired certificate: %v", err)
	}
	c.waitLog("controller", "certificate has expired")

	// No certificate.
	n := logCount(c.cluster, "controller", "didn't provide a certificate")
	c.sClient()
	c.waitFor("refusal without a certificate", func() bool {
		return logCount(c.cluster, "controller", "didn't provide a certificate") > n
	})

	// A plain agent (UseTLS off), as an upstream agent would connect.
	plain := c.spareAgent("plain", "n2", tlsAgentBase)
	c.waitLog("controller", "TLS: plain D-Bus connection refused, this port speaks TLS only")
	offline("plain agent")
	stop(plain)

	// The real n2.
	c.startTLSAgent("n2", c.certs.Nodes["n2"])
	c.waitStatus("n2", "online")
	if s, _ := c.node("n1").GetStatus(ctx); s != "online" {
		t.Errorf("n1 after the refusals: %s", s)
	}
}

// TestTLSRotation: new certificates for the controller and a node, loaded
// by SIGHUP, keep every node online; new connections get the controller's
// new certificate; after a controller restart every node is back over TLS
// with the rotated files.
func TestTLSRotation(t *testing.T) {
	names := []string{"n1", "n2"}
	c := newTLSCluster(t, names...)
	agents := map[string]*exec.Cmd{}
	for _, n := range names {
		agents[n] = c.startTLSAgent(n, c.certs.Nodes[n])
	}
	for _, n := range names {
		c.waitStatus(n, "online")
	}
	watch := c.watchStatus()
	before, _ := c.dialTLS(c.certs.Nodes["n1"], nil)
	if before == nil {
		t.Fatal("no TLS connection before the rotation")
	}
	oldSerial := before.ConnectionState().PeerCertificates[0].SerialNumber

	// The controller's pair, rewritten in place as an administrator
	// would, then SIGHUP.
	if _, err := c.certs.Issue("controller", testcerts.Leaf{CN: "localhost", DNS: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.ctrlCmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitLog("controller", "TLS: certificates reloaded")
	after, err := c.dialTLS(c.certs.Nodes["n1"], nil)
	if after == nil {
		t.Fatalf("no TLS connection after the rotation: %v", err)
	}
	newSerial := after.ConnectionState().PeerCertificates[0].SerialNumber
	if newSerial.Cmp(oldSerial) == 0 {
		t.Fatalf("a new connection after SIGHUP got the old certificate (serial %s)", oldSerial)
	}

	// A node's pair, then SIGHUP to its agent.
	if _, err := c.certs.Node("n2"); err != nil {
		t.Fatal(err)
	}
	if err := agents["n2"].Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.waitLog("agent-n2", "TLS: certificates reloaded")

	// The established links carried on: a job on every node, no node
	// went offline, the agents are the same processes.
	ctx := context.Background()
	jobs := c.jobs()
	for _, n := range names {
		job, err := c.node(n).StartUnit(ctx, sandbox.SimpleServiceName, "replace")
		if err != nil {
			t.Fatalf("%s after the rotation: %v", n, err)
		}
		if r := jobs.result(job); r != "done" {
			t.Errorf("%s: job %s", n, r)
		}
		if c.agents[n] != agents[n] || agents[n].ProcessState != nil {
			t.Errorf("%s: the agent was restarted", n)
		}
	}
	if off := watch.wentOffline(); len(off) > 0 {
		t.Fatalf("nodes went offline during the rotation: %v", off)
	}

	// A controller restart: every node comes back over TLS, n2 with its
	// new certificate.
	stop(c.ctrlCmd)
	c.startController()
	for _, n := range names {
		c.waitStatus(n, "online")
	}
	if logContains(c.cluster, "controller", "TLS: handshake failed") {
		t.Errorf("the controller refused a TLS handshake")
	}
}

// TestTLSPeerThatStopsReading is TestPeerThatStopsReading over mutual
// TLS, where no write can be tried without waiting: a peer with node r2's
// certificate that calls without reading is cut off once its queue passes
// its bound, and the agent of r1 never loses the controller meanwhile.
func TestTLSPeerThatStopsReading(t *testing.T) {
	c := newTLSClusterBin(t, plainController(t), stopReadingController, "r1", "r2")
	c.startAgentWith("r1", "[bluechi-agent]\nLogTarget=stderr\n"+stopReadingAgent+tlsKeys(c.certs.Nodes["r1"]))
	c.waitStatus("r1", "online")
	h, _, err := tlsconfig.NewHolder(c.certs.Nodes["r2"])
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	tc, err := tls.DialWithDialer(&d, "tcp", fmt.Sprintf("127.0.0.1:%d", c.port), h.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := transport.ClientHandshake(bufio.NewReader(tc), tc, transport.MechanismAnonymous, ""); err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Time{})
	peerStopsReading(t, c.cluster, tc)
}
