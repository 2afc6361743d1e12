// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/systemd"
)

// maxEarly bounds the remembered results of jobs removed before being tracked.
const maxEarly = 1024

// unitEventWindow is how long real unit events may wait in the
// controller connection's socket (batchConn): systemd's signals of one unit change come a
// few milliseconds apart, and sending them together wakes the controller
// once instead of several times (the monitor event storm of a busy node).
// Anything else the agent sends (job events, replies, heartbeats) leaves
// at once and takes the held events with it, in order.
const unitEventWindow = 10 * time.Millisecond

// events consumes systemd's signals in order until ctx ends.
func (a *Agent) events(ctx context.Context) {
	ch := a.sd.Events()
	window := time.NewTimer(time.Hour)
	window.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			a.handle(ev)
			if !armed && a.unitEventsQueued() {
				window.Reset(unitEventWindow)
				armed = true
			}
		case <-window.C:
			armed = false
			a.flushUnitEvents()
		}
	}
}

// unitEventsQueued reports whether the current session has queued events.
func (a *Agent) unitEventsQueued() bool {
	a.mu.Lock()
	sess := a.sess
	a.mu.Unlock()
	return sess != nil && sess.queued.Load()
}

// flushUnitEvents sends the current session's queued unit events.
func (a *Agent) flushUnitEvents() {
	a.mu.Lock()
	sess := a.sess
	a.mu.Unlock()
	if sess != nil {
		a.flushSession(sess)
	}
}

// flushSession sends the unit events queued on sess.
func (a *Agent) flushSession(sess *session) {
	if sess.queued.Swap(false) {
		a.flushHeld(sess)
	}
}

// flushHeld writes what sess's socket holds back. It leaves sess.queued to
// the events loop: an event queued meanwhile (queued is set before the
// message is written) still gets the loop's flush.
func (a *Agent) flushHeld(sess *session) {
	if err := sess.out.Flush(); err != nil && sess.conn.Err() == nil {
		a.slog().Warn("send unit events", "error", err)
		sess.conn.Close()
	}
}

// handle applies one systemd event.
func (a *Agent) handle(ev systemd.Event) {
	switch e := ev.(type) {
	case *systemd.JobRemoved:
		a.jobRemoved(e.Job, e.Result)
	case *systemd.UnitNew:
		a.unitNew(e.ID)
	case *systemd.UnitRemoved:
		a.unitRemoved(e.ID)
	case *systemd.PropertiesChanged:
		if e.IsJob() {
			if s, ok := e.String("State"); ok {
				a.jobState(e.Path, s)
			}
		} else if e.Unit != "" {
			a.unitChanged(e)
		}
	}
}

// track records a systemd job started for controller job id.
// start is when the systemd request was sent.
func (a *Agent) track(sess *session, path dbus.ObjectPath, id uint32, unit, method string, start time.Time) {
	a.mu.Lock()
	j := &trackedJob{sess: sess, id: id, path: path, unit: unit, method: method, start: start}
	a.jobs[path] = append(a.jobs[path], j)
	a.byID[jobKey{sess, id}] = j
	a.mu.Unlock()
}

func (a *Agent) jobRemoved(path dbus.ObjectPath, result string) {
	a.mu.Lock()
	js := a.jobs[path]
	if len(js) == 0 {
		if len(a.early) >= maxEarly {
			for k := range a.early {
				delete(a.early, k)
				break
			}
		}
		a.early[path] = result
		a.mu.Unlock()
		return
	}
	delete(a.jobs, path)
	for _, j := range js {
		delete(a.byID, jobKey{j.sess, j.id})
	}
	current := a.sess
	metrics := current != nil && current.metrics
	a.mu.Unlock()
	now := time.Now()
	for _, j := range js {
		if j.sess != current {
			continue // its controller connection is gone, and the job with it
		}
		sess := j.sess
		if metrics {
			if err := daemonapi.EmitInternalAgentMetricsAgentJobMetricsWire(sess.conn, string(daemonapi.InternalAgentMetricsPath), daemonapi.InternalAgentMetricsAgentJobMetricsSignal{
				Unit: j.unit, Method: j.method, SystemdJobTimeMicros: uint64(now.Sub(j.start).Microseconds()),
			}); err != nil {
				a.slog().Warn("send AgentJobMetrics", "job", j.id, "error", err)
			}
		}
		if err := sess.sendJobDone(j.id, result); err != nil {
			a.slog().Warn("send JobDone", "job", j.id, "error", err)
		}
	}
}

// sendJobDone sends JobDone(id, result). Unit events held back before it
// leave first, as with any write (batchConn).
func (s *session) sendJobDone(id uint32, result string) error {
	return daemonapi.EmitInternalAgentJobDoneWire(s.conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentJobDoneSignal{ID: id, Result: result})
}

func (a *Agent) jobState(path dbus.ObjectPath, state string) {
	a.mu.Lock()
	js := a.jobs[path]
	current := a.sess
	a.mu.Unlock()
	for _, j := range js {
		if j.sess == current {
			j.sess.queueJobState(j.id, state)
		}
	}
}

// queueJobState sends JobStateChanged(id, state), held back with the unit
// events: it leaves with the next write, at the latest when the events
// loop flushes, and a JobDone of the same job soon after goes out in the
// same write.
func (s *session) queueJobState(id uint32, state string) {
	if daemonapi.EmitInternalAgentJobStateChangedWire(s.conn, string(daemonapi.InternalAgentPath),
		daemonapi.InternalAgentJobStateChangedSignal{ID: id, State: state}) == nil {
		s.queued.Store(true)
	}
}

// lifecycle runs a job method on systemd and tracks the job for id.
func (a *Agent) lifecycle(ctx context.Context, sess *session, method, name, mode string, id uint32) error {
	ctx, cancel := context.WithTimeout(ctx, SystemdCallTimeout)
	defer cancel()
	start := time.Now()
	track := func(p dbus.ObjectPath) { a.track(sess, p, id, name, method, start) }
	var (
		path dbus.ObjectPath
		err  error
	)
	switch method {
	case "StartUnit":
		path, err = a.sd.StartUnit(ctx, name, mode, track)
	case "StopUnit":
		path, err = a.sd.StopUnit(ctx, name, mode, track)
	case "RestartUnit":
		path, err = a.sd.RestartUnit(ctx, name, mode, track)
	case "ReloadUnit":
		path, err = a.sd.ReloadUnit(ctx, name, mode, track)
	}
	if err != nil {
		return err
	}
	// A JobRemoved that overtook the reply was kept aside: deliver it now.
	a.mu.Lock()
	result, early := a.early[path]
	delete(a.early, path)
	a.mu.Unlock()
	if early {
		a.jobRemoved(path, result)
	}
	return nil
}
