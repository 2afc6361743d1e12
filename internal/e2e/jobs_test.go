// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	localcluster "github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/controller"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// jobLog records what a state manager's bus connection receives about
// jobs, in wire order, on the connection's reader (which also hands the
// replies to the calls): "new <job>", "removed <job> <result>", and
// "state <job> <state>" from the PropertiesChanged of job objects.
type jobLog struct {
	mu     sync.Mutex
	events []string
}

func (l *jobLog) add(format string, args ...any) {
	l.mu.Lock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *jobLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *jobLog) index(event string) int { return slices.Index(l.snapshot(), event) }

// signal takes note of JobNew, JobRemoved and the State of job objects.
func (l *jobLog) signal(_ *wireconn.Conn, m *wire.Message) {
	if m.Interface == dbusrt.PropertiesInterface && m.Member == "PropertiesChanged" {
		body, err := dbusrt.DecodeBody(m.Signature, m.Body, m.BigEndian)
		if err != nil || len(body) != 3 || body[0] != bluechi.JobInterface {
			return
		}
		changed, _ := body[1].(map[string]dbus.Variant)
		if v, ok := changed["State"]; ok {
			l.add("state %s %v", m.Path, v.Value())
		}
		return
	}
	if m.Interface != bluechi.ControllerInterface {
		return
	}
	r := wire.NewReader(m.Body, m.BigEndian)
	if _, err := r.Uint32(); err != nil {
		return
	}
	job, _ := r.String()
	switch {
	case m.Member == bluechi.ControllerSignalJobNew && m.Signature == "uo":
		l.add("new %s", job)
	case m.Member == bluechi.ControllerSignalJobRemoved && m.Signature == "uosss":
		r.String() // node
		r.String() // unit
		if result, err := r.String(); err == nil {
			l.add("removed %s %s", job, result)
		}
	}
}

// jobLogClient connects a state manager to the cluster's bus that logs
// job events (see jobLog), and a godbus client for the other calls.
func (c *cluster) jobLogClient() (*busconn.Conn, *dbus.Conn, *jobLog) {
	l := &jobLog{}
	ctx := context.Background()
	conn, err := busconn.Dial(ctx, c.bus.Address, wireconn.Options{Signal: l.signal})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	if err := conn.AddMatch(ctx, busconn.MatchRule{Sender: bluechi.ControllerBusName}.String()); err != nil {
		c.t.Fatal(err)
	}
	client, _, err := dbusrt.ConnectBus(c.bus.Address)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { client.Close() })
	return conn, client, l
}

// TestJobsOnRealSystemd follows jobs of a slow unit on a real systemd
// through the controller: JobNew before the reply, the Job object's
// properties and State changes, Job.Cancel ending in systemd's
// "canceled", and the open jobs of a node whose agent dies, or of a
// controller that stops, ending with JobRemoved instead of hanging.
func TestJobsOnRealSystemd(t *testing.T) {
	c := newCluster(t, "n1")
	agent := c.startAgent("n1")
	c.waitStatus("n1", "online")
	ctx := context.Background()
	logConn, conn, log := c.jobLogClient()
	node := bluechi.NewNodeClient(conn, bluechi.NodeBusName, bluechi.NodePath("n1"))
	// Start jobs that stay "running" for a minute, however slow the
	// machine: one unit per case, so no job merges into an earlier one.
	cancelled, orphaned, shutDown := "slow-cancel.service", "slow-disconnect.service", "slow-shutdown.service"
	for _, unit := range []string{cancelled, orphaned, shutDown} {
		if err := c.nodes["n1"].WriteUnit(unit, "[Service]\nExecStartPre=/bin/sleep 60\nExecStart=/bin/sleep infinity\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := node.Reload(ctx); err != nil {
		t.Fatal(err)
	}

	// startSlow starts a slow unit and waits until systemd runs its job.
	startSlow := func(unit string) dbus.ObjectPath {
		t.Helper()
		job, err := localcluster.StartUnitRaw(ctx, logConn, "n1", unit)
		if err != nil {
			t.Fatal(err)
		}
		// The reader that handed over the reply has read what came
		// before it.
		if log.index("new "+string(job)) < 0 {
			t.Fatalf("JobNew must come before the reply: %q", log.snapshot())
		}
		c.waitFor("job running", func() bool { return log.index(fmt.Sprintf("state %s running", job)) >= 0 })
		return job
	}
	removed := func(job dbus.ObjectPath, want string) {
		t.Helper()
		c.waitFor("JobRemoved of "+string(job), func() bool {
			for _, e := range log.snapshot() {
				if e == fmt.Sprintf("removed %s %s", job, want) {
					return true
				}
			}
			return false
		})
	}

	// Job.Cancel on a job that systemd runs: systemd's own result.
	job := startSlow(cancelled)
	jobc := bluechi.NewJobClient(conn, bluechi.ControllerBusName, job)
	props := map[string]string{}
	for _, p := range []struct {
		name string
		get  func(context.Context) (string, error)
	}{{"Node", jobc.GetNode}, {"Unit", jobc.GetUnit}, {"JobType", jobc.GetJobType}, {"State", jobc.GetState}} {
		v, err := p.get(ctx)
		if err != nil {
			t.Fatalf("Job.%s: %v", p.name, err)
		}
		props[p.name] = v
	}
	want := map[string]string{"Node": "n1", "Unit": cancelled, "JobType": "start", "State": "running"}
	if fmt.Sprint(props) != fmt.Sprint(want) {
		t.Fatalf("job properties: %v, want %v", props, want)
	}
	jobID, err := jobc.GetID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := jobc.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	removed(job, "canceled")
	if _, err := jobc.GetState(ctx); dbusrt.ErrorName(err) != dbusrt.ErrUnknownObject {
		t.Fatalf("job object after JobRemoved: %v", err)
	}
	// Cancelling does not stop a start already under way (upstream's
	// bluechi-job-cancel): the unit is still activating.
	if s := c.localState("n1", cancelled); s != "activating" {
		t.Errorf("%s after its job was cancelled: %s, want activating", cancelled, s)
	}
	// The agent's public JobCancel of an id it does not track: Failed
	// (internal-protocol.md §7.1), the ended job's id included.
	for _, id := range []uint32{jobID, 4000000000} {
		if err := c.agentAPI("n1").JobCancel(ctx, id); dbusrt.ErrorName(err) != dbusrt.ErrFailed {
			t.Fatalf("agent JobCancel(%d) of an unknown job: %v", id, err)
		}
	}

	// The agent dies while systemd runs a job: the job ends at once.
	job = startSlow(orphaned)
	agent.Process.Signal(syscall.SIGKILL)
	agent.Wait()
	removed(job, controller.ResultDisconnected)
	c.waitStatus("n1", "offline")

	// The controller stops while a job runs.
	c.startAgent("n1")
	c.waitStatus("n1", "online")
	job = startSlow(shutDown)
	c.ctrlCmd.Process.Signal(syscall.SIGTERM)
	removed(job, controller.ResultShutdown)
}
