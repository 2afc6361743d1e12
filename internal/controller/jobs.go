// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// job is one lifecycle request. It is registered before the agent is asked,
// so a JobDone that overtakes the agent's reply is not lost.
type job struct {
	id       uint32
	node     *node
	unit     string
	kind     string // start, stop, restart, reload
	obj      *daemonapi.JobObject
	state    string // last state before the object exists
	done     bool
	result   string
	finished bool
	started  time.Time // the request arrived
	doneAt   time.Time // the agent's JobDone arrived; zero otherwise
	// cancelling is set while a Cancel of this job is on its way to the
	// agent: further ones answer at once and send nothing.
	cancelling atomic.Bool
}

// lifecycle runs Start/Stop/Restart/ReloadUnit on a node and returns the job path.
func (c *Controller) lifecycle(ctx context.Context, n *node, kind, name, mode string) (dbus.ObjectPath, error) {
	started := time.Now()
	agent, err := n.agentFor() // the offline rule comes before argument checks
	if err != nil {
		return "", err
	}
	if err := checkUnit(name); err != nil { // the mode goes to systemd unchanged (api.md §2)
		return "", err
	}
	c.mu.Lock()
	c.nextJob++
	j := &job{id: c.nextJob, node: n, unit: name, kind: kind, state: "waiting", started: started}
	c.jobs[j.id] = j
	c.mu.Unlock()

	cctx, cancel := callCtx(ctx)
	defer cancel()
	err = onWire(cctx, func(done func(error)) {
		switch kind {
		case "start":
			agent.GoStartUnit(cctx, name, mode, j.id, done)
		case "stop":
			agent.GoStopUnit(cctx, name, mode, j.id, done)
		case "restart":
			agent.GoRestartUnit(cctx, name, mode, j.id, done)
		case "reload":
			agent.GoReloadUnit(cctx, name, mode, j.id, done)
		}
	})
	if err != nil {
		c.mu.Lock()
		delete(c.jobs, j.id)
		c.mu.Unlock()
		return "", fromAgent(err)
	}

	path := bluechi.JobPath(j.id)
	obj, err := daemonapi.ExportJobOn(c.api, path, &jobAPI{c: c, j: j}, bluechi.JobProperties{
		ID: j.id, Node: n.name, Unit: name, JobType: kind, State: "waiting",
	})
	if err != nil {
		c.mu.Lock()
		delete(c.jobs, j.id)
		c.mu.Unlock()
		return "", failed("export job: %v", err)
	}
	c.mu.Lock()
	if j.finished { // node went away or controller closed while we waited
		c.mu.Unlock()
		obj.Unexport()
		return "", failed("Job %d ended before it was created: %s", j.id, j.result)
	}
	// JobNew goes out before the job is published in j.obj: a JobDone
	// handled from now on emits JobRemoved, which must follow JobNew.
	if err := c.queueJobNew(j.id, path); err != nil {
		c.logger().Warn("emit JobNew", "error", err)
	}
	if j.state != "waiting" {
		// Queued after JobNew: both leave with the reply. Under c.mu,
		// as JobNew, so that a state read by the agent connection after
		// j.obj is published cannot be overtaken by this older one (a
		// queue only waits for a write in progress on the bus).
		if err := obj.Export().QueueProperty("State", j.state); err != nil {
			c.logger().Debug("job state not sent", "job", j.id, "error", err)
		}
	}
	j.obj = obj
	done, result := j.done, j.result
	c.mu.Unlock()
	if done {
		c.finishJob(j, result)
	}
	return path, nil
}

// queueJobNew holds JobNew on the bus connection, so that it leaves in
// one write with the reply that follows it (the bus wakes once, not
// twice, on every job request). Anything written on the connection before
// the reply takes it along, in order.
func (c *Controller) queueJobNew(id uint32, path dbus.ObjectPath) error {
	var w wire.Writer
	w.Uint32(id)
	w.ObjectPath(string(path))
	return c.busWire.HoldSignal("", string(bluechi.ControllerPath), bluechi.ControllerInterface,
		bluechi.ControllerSignalJobNew, daemonapi.ControllerJobNewSig, w.Buf)
}

// sendJobRemoved emits JobRemoved encoded by internal/wire (it ends every
// job), with the signals held before it.
func (c *Controller) sendJobRemoved(j *job, path dbus.ObjectPath, result string) error {
	var w wire.Writer
	w.Uint32(j.id)
	w.ObjectPath(string(path))
	w.String(j.node.name)
	w.String(j.unit)
	w.String(result)
	return c.busWire.EmitTo("", string(bluechi.ControllerPath), bluechi.ControllerInterface,
		bluechi.ControllerSignalJobRemoved, daemonapi.ControllerJobRemovedSig, w.Buf)
}

// jobDone handles JobDone from a node's agent.
func (c *Controller) jobDone(n *node, id uint32, result string) {
	now := time.Now()
	c.mu.Lock()
	j := c.jobs[id]
	if j == nil || j.node != n {
		c.mu.Unlock()
		c.logger().Debug("JobDone for unknown job", "node", n.name, "id", id)
		return
	}
	j.doneAt = now
	if j.obj == nil {
		j.done, j.result = true, result
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.finishJob(j, result)
}

// jobStateChanged handles JobStateChanged from a node's agent.
func (c *Controller) jobStateChanged(n *node, id uint32, state string) {
	switch state {
	case "waiting", "running":
	default:
		state = "invalid"
	}
	c.mu.Lock()
	j := c.jobs[id]
	if j == nil || j.node != n {
		c.mu.Unlock()
		return
	}
	obj := j.obj
	if obj == nil {
		j.state = state
	}
	c.mu.Unlock()
	if obj != nil {
		// Held on the bus connection: this runs in the agent
		// connection's reader, whose signal handler then schedules a
		// flush of the bus connection (kickFlush), so a JobDone read in
		// the same batch sends JobRemoved in the same write.
		if err := obj.Export().QueueProperty("State", state); err != nil {
			c.logger().Debug("job state not sent", "job", id, "error", err)
		}
	}
}

// finishJob emits JobRemoved and removes the job, once.
func (c *Controller) finishJob(j *job, result string) {
	obj, agent, doneAt, ok := c.retireJob(j, result)
	if !ok {
		return
	}
	if j.kind == "start" && !doneAt.IsZero() && agent != nil && c.metricsOn() {
		// The unit's timestamps are read before JobRemoved goes out, so a
		// client acting on JobRemoved cannot change them first.
		if c.goBackground(func() {
			c.startJobMetrics(j, agent, obj.Path(), doneAt.Sub(j.started))
			c.jobRemoved(j, obj, result)
		}) {
			return
		}
	}
	c.jobRemoved(j, obj, result)
}

// retireJob marks j finished with result and forgets it. ok is false when
// it was finished already or has no object yet (the lifecycle call that
// creates it reports the end).
func (c *Controller) retireJob(j *job, result string) (obj *daemonapi.JobObject, agent *daemonapi.InternalAgentWireClient, doneAt time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j.finished {
		return nil, nil, time.Time{}, false
	}
	j.finished, j.result = true, result
	delete(c.jobs, j.id)
	return j.obj, j.node.agent, j.doneAt, j.obj != nil
}

// dropJobs ends the jobs of a node whose connection is gone: JobRemoved
// with result, and no StartUnitJobMetrics (the node cannot be asked for
// the unit's timestamps). Unlike finishJob it never takes c.emu, so that
// detachPeer runs it holding c.emu.
func (c *Controller) dropJobs(jobs []*job, result string) {
	for _, j := range jobs {
		if obj, _, _, ok := c.retireJob(j, result); ok {
			c.jobRemoved(j, obj, result)
		}
	}
}

// jobRemoved removes the job object and emits JobRemoved. The object goes
// first, so a client reacting to JobRemoved never finds it still there.
func (c *Controller) jobRemoved(j *job, obj *daemonapi.JobObject, result string) {
	obj.Unexport()
	if err := c.sendJobRemoved(j, obj.Path(), result); err != nil {
		c.logger().Warn("emit JobRemoved", "error", err)
	}
}

// jobAPI serves org.eclipse.bluechi.Job.
type jobAPI struct {
	daemonapi.UnimplementedJobServer
	c *Controller
	j *job
}

// Cancel asks the agent to cancel the job and replies without waiting.
func (a *jobAPI) Cancel(ctx context.Context) error {
	agent, err := a.j.node.agentFor()
	if err != nil {
		return err
	}
	if !a.j.cancelling.CompareAndSwap(false, true) {
		return nil // one cancel is on its way; it has the same effect
	}
	go func() {
		defer a.j.cancelling.Store(false)
		cctx, cancel := callCtx(context.Background())
		defer cancel()
		if err := agent.JobCancel(cctx, a.j.id); err != nil {
			a.c.logger().Warn("job cancel failed", "job", a.j.id, "node", a.j.node.name, "error", err)
		}
	}()
	return nil
}
