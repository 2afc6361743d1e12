// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busnames"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
)

// Unit properties read for StartUnitJobMetrics. They are systemd's: the IDL
// declares no properties of systemd's interfaces (the agent reads them
// through org.freedesktop.DBus.Properties), so they are named here.
const (
	propInactiveExitMono = "InactiveExitTimestampMonotonic"
	propActiveEnterMono  = "ActiveEnterTimestampMonotonic"
)

// metricsAPI serves org.eclipse.bluechi.Metrics (signals only).
type metricsAPI struct {
	daemonapi.UnimplementedMetricsServer
}

// EnableMetrics exports the Metrics object and switches metrics on at
// every online agent (agents registering later are switched on then).
func (c *Controller) EnableMetrics() error {
	c.emu.Lock()
	defer c.emu.Unlock()
	if c.evClosed {
		return failed("Controller is shutting down")
	}
	if c.metrics != nil {
		return inconsistent("Metrics already enabled")
	}
	obj, err := daemonapi.ExportMetricsOn(c.api, bluechi.MetricsPath, &metricsAPI{}, bluechi.MetricsProperties{})
	if err != nil {
		return failed("export metrics: %v", err)
	}
	c.metrics = obj
	for _, n := range c.nodes {
		n.tellLocked(daemonapi.InternalAgentMethodEnableMetrics, (*agentClient).SendEnableMetrics)
	}
	c.logger().Info("metrics enabled")
	return nil
}

// DisableMetrics removes the Metrics object and switches metrics off at
// every online agent.
func (c *Controller) DisableMetrics() error {
	c.emu.Lock()
	defer c.emu.Unlock()
	if c.metrics == nil {
		return inconsistent("Metrics already disabled")
	}
	c.metrics.Unexport()
	c.metrics = nil
	for _, n := range c.nodes {
		n.tellLocked(daemonapi.InternalAgentMethodDisableMetrics, (*agentClient).SendDisableMetrics)
	}
	c.logger().Info("metrics disabled")
	return nil
}

// agentJobMetrics relays the agent's AgentJobMetrics while metrics are on.
func (c *Controller) agentJobMetrics(n *node, p *peer, s *daemonapi.InternalAgentMetricsAgentJobMetricsSignal) {
	c.emu.Lock()
	defer c.emu.Unlock()
	if n.ev != p || c.metrics == nil {
		return
	}
	if err := c.metrics.EmitAgentJobMetrics(bluechi.MetricsAgentJobMetricsSignal{
		NodeName: n.name, Unit: s.Unit, Method: s.Method, SystemdJobTimeMicros: s.SystemdJobTimeMicros,
	}); err != nil {
		c.logger().Debug("emit AgentJobMetrics", "error", err)
	}
}

func (c *Controller) metricsOn() bool {
	c.emu.Lock()
	defer c.emu.Unlock()
	return c.metrics != nil
}

// startJobMetrics emits StartUnitJobMetrics for a finished start job: the
// gross time from the StartUnit request to the agent's JobDone, and the
// unit's own start time read from its node (a unit that never became
// active counts 0). A failure to read the timestamps suppresses the signal.
func (c *Controller) startJobMetrics(j *job, agent *daemonapi.InternalAgentWireClient, path dbus.ObjectPath, gross time.Duration) {
	ctx, cancel := callCtx(context.Background())
	defer cancel()
	// Both requests go out at once: JobRemoved waits for the answers.
	var (
		enter uint64
		err2  error
		wg    sync.WaitGroup
	)
	wg.Go(func() { enter, err2 = unitTimestamp(ctx, agent, j.unit, propActiveEnterMono) })
	exit, err1 := unitTimestamp(ctx, agent, j.unit, propInactiveExitMono)
	wg.Wait()
	if err := firstErr(err1, err2); err != nil {
		c.logger().Debug("no start metrics: unit timestamps unreadable", "node", j.node.name, "unit", j.unit, "error", err)
		return
	}
	var net uint64
	if enter > exit {
		net = enter - exit
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	if c.metrics == nil {
		return
	}
	if err := c.metrics.EmitStartUnitJobMetrics(bluechi.MetricsStartUnitJobMetricsSignal{
		NodeName: j.node.name, JobID: string(path), Unit: j.unit,
		JobMeasuredTimeMicros: uint64(gross.Microseconds()), UnitStartPropTimeMicros: net,
	}); err != nil {
		c.logger().Debug("emit StartUnitJobMetrics", "error", err)
	}
}

func unitTimestamp(ctx context.Context, agent *daemonapi.InternalAgentWireClient, unit, prop string) (uint64, error) {
	v, err := agent.GetUnitProperty(ctx, unit, busnames.Systemd1UnitInterface, prop)
	if err != nil {
		return 0, err
	}
	t, ok := v.Value().(uint64)
	if !ok {
		return 0, failed("%s of %s has type %s, want t", prop, unit, v.Signature())
	}
	return t, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// goBackground runs fn in a goroutine that Close waits for, unless the
// controller is closing. Callers must not hold c.emu.
func (c *Controller) goBackground(fn func()) bool {
	c.emu.Lock()
	defer c.emu.Unlock()
	if c.evClosed {
		return false
	}
	c.bg.Go(fn)
	return true
}
