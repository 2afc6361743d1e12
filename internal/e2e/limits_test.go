// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// maxControllerRSS bounds the controller's resident memory while hostile
// peers try to make it hold data (issue 13).
const maxControllerRSS = 40 << 20

var plain struct {
	once sync.Once
	path string
	err  error
}

// plainController returns a bluechi-controller built without -race, whose
// memory use is the real one.
func plainController(t *testing.T) string {
	plain.once.Do(func() {
		dir := binDir + "-plain" // not in binDir: TestEveryBinaryVersion runs all there
		cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/bluechi-go/bluechi/cmd/bluechi-controller")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		plain.err = cmd.Run()
		plain.path = filepath.Join(dir, "bluechi-controller")
	})
	if plain.err != nil {
		t.Fatalf("building bluechi-controller: %v", plain.err)
	}
	return plain.path
}

// rssWatch samples a process's VmRSS until stopped and keeps the largest.
type rssWatch struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(t *testing.T, pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss := vmRSS(pid); rss > w.max.Load() {
				w.max.Store(rss)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *rssWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// vmRSS returns a process's resident set in bytes (0 if unreadable).
func vmRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// hostile connects to the controller's agent port, authenticating unless
// silent.
func (c *cluster) hostile(t *testing.T, authenticate bool) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if authenticate {
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := transport.ClientHandshake(bufio.NewReader(nc), nc, transport.MechanismAnonymous, ""); err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Time{})
	}
	return nc
}

// closedWithin reports whether the controller closes nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		if _, err := nc.Read(buf); err != nil {
			return !errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// logCount counts the lines of the controller's log containing text.
func (c *cluster) logCount(text string) int {
	data, _ := os.ReadFile(filepath.Join(c.dir, "controller.log"))
	return bytes.Count(data, []byte(text))
}

// checkNode makes sure node name is online and answers a relayed call.
func (c *cluster) checkNode(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := c.node(name).GetStatus(ctx); err != nil || s != "online" {
		t.Fatalf("node %s: status %q, %v", name, s, err)
	}
	if _, err := c.node(name).GetDefaultTarget(ctx); err != nil {
		t.Fatalf("node %s: GetDefaultTarget: %v", name, err)
	}
}

// TestPeerLimits runs hostile peers against the real controller binary
// (built without -race) next to a real agent (issue 13): a header that
// announces 120 MB followed by 100 MB of body, 500 silent connections and
// a slowloris that trickles a message. Each is cut off with a log line,
// the controller's RSS stays under 40 MB and the agent keeps working.
func TestPeerLimits(t *testing.T) {
	c := newClusterBin(t, plainController(t), "RegistrationTimeout=3000\n", nil, "l1")
	c.startOnline("l1")
	rss := watchRSS(t, c.ctrlCmd.Process.Pid)
	t.Logf("controller RSS with one node: %.1f MB", float64(vmRSS(c.ctrlCmd.Process.Pid))/(1<<20))

	t.Run("120 MB message", func(t *testing.T) {
		nc := c.hostile(t, true)
		hdr := []byte{'l', wire.TypeMethodCall, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(hdr[4:], 120_000_000)
		chunk := make([]byte, 1<<20)
		nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := nc.Write(hdr)
		sent := 0
		for ; err == nil && sent < 100<<20; sent += len(chunk) {
			_, err = nc.Write(chunk)
		}
		if err == nil {
			t.Fatalf("the controller took 100 MB of a message announced at 120 MB")
		}
		t.Logf("write failed after %d MB of body: %v", sent>>20, err)
		if !closedWithin(nc, 5*time.Second) {
			t.Fatal("connection not closed")
		}
		c.waitFor("log line", func() bool { return c.logCount("peer announced a message of 120000016 bytes") == 1 })
		c.checkNode(t, "l1")
	})

	t.Run("500 silent connections", func(t *testing.T) {
		const n, admitted = 500, 64
		conns := make([]net.Conn, n)
		for i := range conns {
			conns[i] = c.hostile(t, false)
		}
		start := time.Now()
		var closed atomic.Int32
		var wg sync.WaitGroup
		for _, nc := range conns {
			wg.Go(func() {
				if closedWithin(nc, 2*time.Second) {
					closed.Add(1)
				}
			})
		}
		wg.Wait()
		if got := int(closed.Load()); got != n-admitted {
			t.Errorf("%d of %d silent connections closed at once, want %d", got, n, n-admitted)
		}
		if got := c.logCount("too many unregistered connections"); got < n-admitted {
			t.Errorf("%d log lines about refused connections, want %d", got, n-admitted)
		}
		c.checkNode(t, "l1")
		// The admitted ones go when their RegistrationTimeout (3 s) ends.
		for _, nc := range conns {
			wg.Go(func() {
				if closedWithin(nc, 10*time.Second) {
					closed.Add(1)
				}
			})
		}
		wg.Wait()
		if got := int(closed.Load()); got != 2*n-admitted {
			t.Errorf("%d silent connections still open after %v", 2*n-admitted-got, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("all closed after %v", time.Since(start).Round(time.Millisecond))
		c.checkNode(t, "l1")
	})

	t.Run("slowloris", func(t *testing.T) {
		nc := c.hostile(t, true)
		var w wire.Writer
		w.String("l1")
		msg := wire.AppendCall(nil, 1, "org.eclipse.bluechi", "/org/eclipse/bluechi/internal", "org.eclipse.bluechi.internal.Controller", "Register", "s", w.Buf)
		start := time.Now()
		closed := make(chan struct{})
		go func() {
			closedWithin(nc, 10*time.Second)
			close(closed)
		}()
	trickle:
		for i := 0; i < len(msg)-1; i++ {
			if _, err := nc.Write(msg[i : i+1]); err != nil {
				break
			}
			select {
			case <-closed:
				break trickle
			case <-time.After(200 * time.Millisecond):
			}
		}
		<-closed
		d := time.Since(start)
		if d < 2500*time.Millisecond || d > 5*time.Second {
			t.Errorf("slowloris closed after %v, want RegistrationTimeout (3 s)", d)
		}
		c.waitFor("log line", func() bool { return c.logCount("peer did not register in time") >= 1 })
		c.checkNode(t, "l1")
	})

	rss.end()
	t.Logf("controller RSS at most %.1f MB", float64(rss.max.Load())/(1<<20))
	if rss.max.Load() > maxControllerRSS {
		t.Errorf("controller RSS reached %.1f MB, want under %d MB", float64(rss.max.Load())/(1<<20), maxControllerRSS>>20)
	}
}

// TestPeerThatStopsReading: a peer that registers as a node, then keeps
// calling (Introspect) without reading a reply, is cut off once the
// replies queued for it pass their bound, with a log line. Meanwhile the
// controller's writes to everyone else go on: its heartbeats reach the
// other node, whose agent drops a controller silent for 1.5 s, so that
// node stays online, and the API answers. (When writes to a peer waited,
// up to PeerWriteTimeout, 10 s, the heartbeat loop waited with them.)
func TestPeerThatStopsReading(t *testing.T) {
	c := newClusterBin(t, plainController(t), stopReadingController, nil, "r1", "r2")
	c.startAgentWith("r1", "[bluechi-agent]\nLogTarget=stderr\n"+stopReadingAgent)
	c.waitStatus("r1", "online")
	peerStopsReading(t, c, c.hostile(t, true))
}

// The heartbeat settings of TestPeerThatStopsReading: the controller's
// heartbeats every 200 ms, an agent that drops it after 1.5 s of silence.
const (
	stopReadingController = "HeartbeatInterval=200\nNodeHeartbeatThreshold=60000\n"
	stopReadingAgent      = "HeartbeatInterval=200\nControllerHeartbeatThreshold=1500\n"
)

// peerStopsReading registers the authenticated connection nc as node r2,
// calls without reading until the controller cuts it off, and checks that
// the agent of r1 never lost the controller meanwhile.
func peerStopsReading(t *testing.T, c *cluster, nc net.Conn) {
	t.Helper()
	var w wire.Writer
	w.String("r2")
	reg := wire.AppendCall(nil, 1, "org.eclipse.bluechi", "/org/eclipse/bluechi/internal", "org.eclipse.bluechi.internal.Controller", "Register", "s", w.Buf)
	nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(reg); err != nil {
		t.Fatal(err)
	}
	c.waitStatus("r2", "online")
	// Batches of calls, each answered as it is read (fewer at once than
	// the calls a peer may have waiting), until the controller gives up.
	start := time.Now()
	serial := uint32(1)
	for sent := 0; sent < 400000; sent += 200 {
		var batch []byte
		for range 200 {
			serial++
			batch = wire.AppendCall(batch, serial, "org.eclipse.bluechi", "/org/eclipse/bluechi/internal", "org.freedesktop.DBus.Introspectable", "Introspect", "", nil)
		}
		if _, err := nc.Write(batch); err != nil {
			t.Logf("writing calls after %d: %v", sent, err)
			break
		}
	}
	if !closedWithin(nc, 30*time.Second) {
		t.Fatal("a peer that reads nothing is still connected after 30 s")
	}
	t.Logf("peer cut off after %v", time.Since(start).Round(time.Millisecond))
	c.waitFor("log line", func() bool { return c.logCount("peer does not read") >= 1 })
	if logContains(c, "agent-r1", "lost controller connection") {
		t.Error("the agent of r1 lost the controller while the peer was cut off")
	}
	c.checkNode(t, "r1")
}
