// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// Behaviours that were implemented but had no end-to-end test.

// TestCoverageControllerAPI shares one fresh controller, with a real
// agent on n1 and a node "raw" that a hand-made peer registers as,
// between: the counters' start values (api.md §1: first monitor
// .../monitor/1, first job .../job/1; §6.4: first peer id 1), the agent's
// public JobCancel of the job it tracks for the controller's id
// (api.md §8, internal-protocol.md §7.1), Controller.SetLogLevel with an
// invalid level (api.md §3), and Register sent twice on one connection
// (internal-protocol.md §3, §4.3).
func TestCoverageControllerAPI(t *testing.T) {
	c := newClusterWith(t, "LogLevel=DEBUG\n[node raw]\nAllowed=true\n", "n1")
	ctx := context.Background()
	c.startAgent("n1")
	c.waitStatus("n1", "online")

	t.Run("counters-and-agent-job-cancel", func(t *testing.T) {
		// Nothing has made a monitor, a peer or a job yet.
		mon := newMonitor(t, c.client)
		if want := dbus.ObjectPath("/org/eclipse/bluechi/monitor/1"); mon.Path() != want {
			t.Errorf("first monitor %s, want %s", mon.Path(), want)
		}
		peer := c.busClient()
		if id, err := mon.AddPeer(ctx, peer.Names()[0]); err != nil || id != 1 {
			t.Errorf("first AddPeer: id %d, %v; want 1", id, err)
		}
		if err := mon.Close(ctx); err != nil {
			t.Fatal(err)
		}

		// The first job: a start that systemd runs for 30 s.
		const unit = "bc-cov-slow.service"
		if err := c.nodes["n1"].WriteUnit(unit, "[Service]\nType=oneshot\nExecStart=/bin/sleep 30\n"); err != nil {
			t.Fatal(err)
		}
		if err := c.node("n1").Reload(ctx); err != nil {
			t.Fatal(err)
		}
		jobs := c.jobs()
		job, err := c.node("n1").StartUnit(ctx, unit, "replace")
		if err != nil {
			t.Fatal(err)
		}
		if want := dbus.ObjectPath("/org/eclipse/bluechi/job/1"); job != want {
			t.Errorf("first job %s, want %s", job, want)
		}
		jobc := bluechi.NewJobClient(c.client, bluechi.ControllerBusName, job)
		id, err := jobc.GetID(ctx)
		if err != nil || id != 1 {
			t.Errorf("first job's Id %d, %v; want 1", id, err)
		}
		c.waitFor("the job running", func() bool { s, _ := jobc.GetState(ctx); return s == "running" })

		// The agent tracks the job under the controller's id: its public
		// JobCancel of that id cancels the systemd job.
		agent := c.agentAPI("n1")
		if err := agent.JobCancel(ctx, id); err != nil {
			t.Fatalf("agent JobCancel(%d) of a tracked job: %v", id, err)
		}
		if r := jobs.result(job); r != "canceled" {
			t.Errorf("JobRemoved result %q, want canceled", r)
		}
		if _, err := jobc.GetState(ctx); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
			t.Errorf("job object after JobRemoved: %v, want UnknownObject", err)
		}
		// The start under way is not stopped (api.md §5.1).
		if s := c.localState("n1", unit); s != "activating" {
			t.Errorf("%s after its job was cancelled: %s, want activating", unit, s)
		}
		// The job is forgotten with its JobDone: a second cancel fails.
		if err := agent.JobCancel(ctx, id); dbusrt.ErrorName(err) != dbusrt.ErrFailed ||
			dbusrt.ErrorMessage(err) != fmt.Sprintf("No job with ID %d found", id) {
			t.Errorf("agent JobCancel(%d) once the job ended: %v, want Failed \"No job with ID %d found\"", id, err, id)
		}
		if _, err := c.node("n1").StopUnit(ctx, unit, "replace"); err != nil {
			t.Errorf("stop %s: %v", unit, err)
		}
	})

	t.Run("set-log-level-invalid", func(t *testing.T) {
		ctrl := c.controller()
		level := func() string {
			t.Helper()
			v, err := ctrl.GetLogLevel(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := level(); v != "DEBUG" {
			t.Fatalf("LogLevel %q, want the configured DEBUG", v)
		}
		bad := []string{"debug", "Info", "", "TRACE", "WARNING", " INFO", "ERROR\n", "INF"}
		check := func(want string) {
			t.Helper()
			for _, l := range bad {
				if err := ctrl.SetLogLevel(ctx, l); dbusrt.ErrorName(err) != dbusrt.ErrInvalidArgs ||
					dbusrt.ErrorMessage(err) != "Invalid input for log level" {
					t.Errorf("SetLogLevel(%q): %v, want InvalidArgs \"Invalid input for log level\"", l, err)
				}
				if v := level(); v != want {
					t.Errorf("LogLevel after SetLogLevel(%q): %q, want %q unchanged", l, v, want)
				}
			}
		}
		check("DEBUG")
		// A valid level takes, and the invalid ones keep it.
		if err := ctrl.SetLogLevel(ctx, "WARN"); err != nil {
			t.Fatal(err)
		}
		check("WARN")
		if err := ctrl.SetLogLevel(ctx, "DEBUG"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("register-twice", func(t *testing.T) {
		// A Register sent after the first one's reply finds the internal
		// controller object gone (internal-protocol.md §3, §4.4 step 7);
		// one in the same write as the first is dispatched to it before
		// the first has run, and gets §4.3's "Can't register twice".
		// Which of the two the pipelined one meets depends on scheduling,
		// so connections are tried until the second has been seen.
		handler, try := false, 0
		for ; try < 20 && !handler; try++ {
			nc := c.hostile(t, true)
			r := bufio.NewReader(nc)
			var out []byte
			for serial := uint32(1); serial <= 2; serial++ {
				out = appendRegister(out, serial, "raw")
			}
			if _, err := nc.Write(out); err != nil {
				t.Fatal(err)
			}
			replies := readReplies(t, nc, r, 1, 2)
			if m := replies[1]; m.Type != wire.TypeMethodReturn {
				t.Fatalf("first Register: %s", describeReply(m))
			}
			switch m := replies[2]; {
			case m.Type == wire.TypeError && m.ErrorName == dbusrt.ErrAddressInUse && errorText(m) == "Can't register twice":
				handler = true
			case m.Type == wire.TypeError && m.ErrorName == dbusrt.ErrUnknownObject:
			default:
				t.Fatalf("second Register in the same write: %s, want AddressInUse \"Can't register twice\" (or UnknownObject)", describeReply(m))
			}
			// After the reply, always the unknown object.
			if _, err := nc.Write(appendRegister(nil, 3, "raw")); err != nil {
				t.Fatal(err)
			}
			if m := readReplies(t, nc, r, 3)[3]; m.Type != wire.TypeError || m.ErrorName != dbusrt.ErrUnknownObject {
				t.Fatalf("Register on a registered connection: %s, want UnknownObject", describeReply(m))
			}
			// The first registration stands; the connection stays open.
			if s, err := c.node("raw").GetStatus(ctx); err != nil || s != "online" {
				t.Fatalf("node raw after the refused Registers: %q %v, want online", s, err)
			}
			nc.Close()
			c.waitStatus("raw", "offline")
		}
		if !handler {
			t.Errorf("no pipelined second Register reached the handler in 20 connections")
		}
		t.Logf("the pipelined Register reached the handler on connection %d", try)
	})
}

// appendRegister appends a Register(name) call with serial to dst.
func appendRegister(dst []byte, serial uint32, name string) []byte {
	var w wire.Writer
	w.String(name)
	return wire.AppendCall(dst, serial, bluechi.ControllerBusName, string(daemonapi.InternalControllerPath),
		daemonapi.InternalControllerInterface, daemonapi.InternalControllerMethodRegister, "s", w.Buf)
}

// readReplies reads messages from the controller until the replies to
// serials are in (skipping its heartbeats and calls) and returns them.
func readReplies(t *testing.T, nc net.Conn, r *bufio.Reader, serials ...uint32) map[uint32]*wire.Message {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetReadDeadline(time.Time{})
	got := map[uint32]*wire.Message{}
	for len(got) < len(serials) {
		hdr := make([]byte, wire.HeaderSize)
		if _, err := io.ReadFull(r, hdr); err != nil {
			t.Fatalf("reading from the controller: %v", err)
		}
		size, _, err := wire.FrameSize(hdr)
		if err != nil {
			t.Fatal(err)
		}
		frame := append(hdr, make([]byte, size-len(hdr))...)
		if _, err := io.ReadFull(r, frame[len(hdr):]); err != nil {
			t.Fatalf("reading from the controller: %v", err)
		}
		m := &wire.Message{}
		if err := wire.Parse(frame, m); err != nil {
			t.Fatal(err)
		}
		if (m.Type == wire.TypeMethodReturn || m.Type == wire.TypeError) && slices.Contains(serials, m.ReplySerial) {
			got[m.ReplySerial] = m
		}
	}
	return got
}

// errorText is an error reply's message.
func errorText(m *wire.Message) string {
	if !strings.HasPrefix(m.Signature, "s") {
		return ""
	}
	rd := wire.NewReader(m.Body, m.BigEndian)
	s, _ := rd.String()
	return s
}

func describeReply(m *wire.Message) string {
	if m.Type == wire.TypeError {
		return fmt.Sprintf("error %s %q", m.ErrorName, errorText(m))
	}
	return fmt.Sprintf("message type %d", m.Type)
}

// TestCoverageAgentQuietAndStatus: with the controller unreachable and
// ConnectionRetryCountUntilQuiet=3 the agent logs its failed attempts,
// the third as "further attempts are not logged", then nothing at all;
// once it registers its log speaks again (config.md §4,
// internal-protocol.md §4.5). Its public Status goes online on each
// registration, offline when the controller stops and when the agent
// stops, and then its bus name goes away (api.md §8).
func TestCoverageAgentQuietAndStatus(t *testing.T) {
	const quietAfter = 3
	c := newCluster(t, "n1")
	ctx := context.Background()
	stop(c.ctrlCmd)
	// In the controller's place, a listener that counts the agent's
	// attempts and makes each fail.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			conn.Close()
		}
	}()
	agent := c.startAgentWith("n1", fmt.Sprintf("[bluechi-agent]\nLogTarget=stderr\nLogLevel=DEBUG\nHeartbeatInterval=200\nConnectionRetryCountUntilQuiet=%d\n", quietAfter))
	// An attempt is logged before the next one connects: once attempt
	// quietAfter+3 came, the log holds all that the first quietAfter+2
	// made it write.
	c.waitFor("attempts", func() bool { return attempts.Load() >= quietAfter+3 })
	const quietLine = "controller still unreachable; further attempts are not logged"
	log := readLog(c, "agent-n1")
	if n := strings.Count(log, "cannot connect to controller"); n != quietAfter-1 {
		t.Errorf("%d lines for failed attempts before the quiet one, want %d", n, quietAfter-1)
	}
	if n := strings.Count(log, quietLine); n != 1 {
		t.Fatalf("%d lines %q, want 1", n, quietLine)
	}
	line := log[strings.Index(log, quietLine):]
	if !strings.Contains(line[:strings.IndexByte(line, '\n')], fmt.Sprintf("attempts=%d", quietAfter)) {
		t.Errorf("the quiet line does not count %d attempts: %q", quietAfter, line)
	}
	afterQuiet := func() string {
		l := readLog(c, "agent-n1")
		i := strings.Index(l, quietLine)
		return l[i+strings.IndexByte(l[i:], '\n')+1:]
	}
	if rest := afterQuiet(); rest != "" {
		t.Errorf("the agent logged after going quiet:\n%s", rest)
	}

	// The agent's public side while it cannot reach the controller.
	conn, err := c.nodes["n1"].Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pub := bluechi.NewAgentClient(conn, bluechi.AgentBusName, bluechi.AgentPath)
	if s, err := pub.GetStatus(ctx); err != nil || s != "offline" {
		t.Fatalf("agent Status while unreachable: %q %v", s, err)
	}
	var mu sync.Mutex
	var events []string
	event := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
	waitEvents := func(want ...string) {
		t.Helper()
		c.waitFor(fmt.Sprint(want), func() bool { return len(got()) >= len(want) })
		if e := got(); !slices.Equal(e, want) {
			t.Fatalf("agent signals %q, want %q", e, want)
		}
	}
	sub, err := pub.OnPropertiesChanged(ctx, func(pc *bluechi.AgentPropertiesChanged) {
		if v, ok := pc.Changed["Status"]; ok {
			event(fmt.Sprint(v.Value()))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	nsub, err := dbusrt.Subscribe(ctx, conn, dbusrt.Match{Sender: "org.freedesktop.DBus", Interface: "org.freedesktop.DBus",
		Member: "NameOwnerChanged", Arg0: bluechi.AgentBusName}, func(s *dbus.Signal) {
		if len(s.Body) == 3 && s.Body[2] == "" {
			event("name gone")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nsub.Close()

	// A controller comes: the agent registers and logs again.
	ln.Close()
	<-accepting
	c.startController()
	c.waitStatus("n1", "online")
	waitEvents("online")
	c.waitFor("the registration logged after the quiet spell", func() bool { return strings.Contains(afterQuiet(), "registered with controller") })
	if n := strings.Count(afterQuiet(), "cannot connect to controller"); n != 0 {
		t.Errorf("%d failed attempts logged while quiet", n)
	}

	// The controller stops: offline; it comes back: online.
	stop(c.ctrlCmd)
	waitEvents("online", "offline")
	c.waitFor("the lost connection logged", func() bool { return strings.Contains(afterQuiet(), "lost controller connection") })
	c.startController()
	c.waitStatus("n1", "online")
	waitEvents("online", "offline", "online")

	// The agent stops: offline, then its name leaves the bus (signals on
	// one connection arrive in order).
	stop(agent)
	if code := agent.ProcessState.ExitCode(); code != 0 {
		t.Errorf("agent stopped with SIGINT: exit %d, want 0", code)
	}
	waitEvents("online", "offline", "online", "offline", "name gone")
	c.waitStatus("n1", "offline")
}
