// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// internalAPI serves org.eclipse.bluechi.internal.Agent on one controller connection.
// (ListUnits is not here: a RawMethod passes systemd's answer on as
// bytes, see Agent.listUnitsRaw.)
type internalAPI struct {
	daemonapi.UnimplementedInternalAgentServer
	a    *Agent
	sess *session
}

func (s *internalAPI) StartUnit(ctx context.Context, name, mode string, id uint32) error {
	return s.a.lifecycle(ctx, s.sess, "StartUnit", name, mode, id)
}

func (s *internalAPI) StopUnit(ctx context.Context, name, mode string, id uint32) error {
	return s.a.lifecycle(ctx, s.sess, "StopUnit", name, mode, id)
}

func (s *internalAPI) RestartUnit(ctx context.Context, name, mode string, id uint32) error {
	return s.a.lifecycle(ctx, s.sess, "RestartUnit", name, mode, id)
}

func (s *internalAPI) ReloadUnit(ctx context.Context, name, mode string, id uint32) error {
	return s.a.lifecycle(ctx, s.sess, "ReloadUnit", name, mode, id)
}

func (s *internalAPI) StartTransientUnit(ctx context.Context, name, mode string, props []bluechi.UnitProperty, aux []bluechi.AuxUnit) (dbus.ObjectPath, error) {
	return s.a.sd.StartTransientUnit(ctx, name, mode, props, aux)
}

func (s *internalAPI) JobCancel(ctx context.Context, id uint32) error {
	return s.a.cancelJob(s.sess, id)
}

func (s *internalAPI) FreezeUnit(ctx context.Context, name string) error {
	return s.a.sd.FreezeUnit(ctx, name)
}

func (s *internalAPI) ThawUnit(ctx context.Context, name string) error {
	return s.a.sd.ThawUnit(ctx, name)
}

func (s *internalAPI) KillUnit(ctx context.Context, name, who string, signal int32) error {
	return s.a.sd.KillUnit(ctx, name, who, signal)
}

func (s *internalAPI) GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error) {
	return s.a.sd.GetUnitProperties(ctx, name, iface)
}

func (s *internalAPI) GetUnitProperty(ctx context.Context, name, iface, property string) (dbus.Variant, error) {
	return s.a.sd.GetUnitProperty(ctx, name, iface, property)
}

func (s *internalAPI) SetUnitProperties(ctx context.Context, name string, runtime bool, kv []bluechi.UnitProperty) error {
	return s.a.sd.SetUnitProperties(ctx, name, runtime, kv)
}

func (s *internalAPI) EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (bool, []bluechi.UnitFileChange, error) {
	return s.a.sd.EnableUnitFiles(ctx, files, runtime, force)
}

func (s *internalAPI) DisableUnitFiles(ctx context.Context, files []string, runtime bool) ([]bluechi.UnitFileChange, error) {
	return s.a.sd.DisableUnitFiles(ctx, files, runtime)
}

func (s *internalAPI) ListUnitFiles(ctx context.Context) ([]bluechi.UnitFileInfo, error) {
	return s.a.sd.ListUnitFiles(ctx)
}

func (s *internalAPI) GetUnitFileState(ctx context.Context, file string) (string, error) {
	return s.a.sd.GetUnitFileState(ctx, file)
}

func (s *internalAPI) Reload(ctx context.Context) error {
	return s.a.sd.Reload(ctx)
}

func (s *internalAPI) ResetFailed(ctx context.Context) error {
	return s.a.sd.ResetFailed(ctx)
}

func (s *internalAPI) ResetFailedUnit(ctx context.Context, name string) error {
	return s.a.sd.ResetFailedUnit(ctx, name)
}

func (s *internalAPI) GetDefaultTarget(ctx context.Context) (string, error) {
	return s.a.sd.GetDefaultTarget(ctx)
}

func (s *internalAPI) SetDefaultTarget(ctx context.Context, target string, force bool) ([]bluechi.UnitFileChange, error) {
	return s.a.sd.SetDefaultTarget(ctx, target, force)
}

func (s *internalAPI) SetLogLevel(ctx context.Context, level string) error {
	if err := s.a.log.SetLevel(level); err != nil {
		return dbusrt.NewError(dbusrt.ErrFailed, "Invalid input for log level")
	}
	if s.a.pub != nil {
		s.a.pub.SetLogLevel(level)
	}
	return nil
}

func (s *internalAPI) Subscribe(ctx context.Context, unit string) error {
	if err := s.a.subscribe(s.sess, unit); err != nil {
		return err
	}
	// The virtual events leave in front of the reply. A Subscribe without
	// one (the controller sends them with NO_REPLY_EXPECTED) must not
	// leave them waiting for the next message or heartbeat.
	if call, ok := wireconn.CallFrom(ctx); ok && call.NoReply {
		s.a.flushHeld(s.sess)
	}
	return nil
}

func (s *internalAPI) Unsubscribe(ctx context.Context, unit string) error {
	return s.a.unsubscribe(s.sess, unit)
}

// StartDep starts bluechi-dep@unit for a proxy on another node; it always succeeds.
func (s *internalAPI) StartDep(ctx context.Context, unit string) error {
	s.a.dep(ctx, true, unit)
	return nil
}

// StopDep stops bluechi-dep@unit; it always succeeds.
func (s *internalAPI) StopDep(ctx context.Context, unit string) error {
	s.a.dep(ctx, false, unit)
	return nil
}

// EnableMetrics starts timing jobs and exports the metrics object.
func (s *internalAPI) EnableMetrics(ctx context.Context) error {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.sess.metrics {
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Metrics already enabled")
	}
	s.sess.conn.Export(string(daemonapi.InternalAgentMetricsPath), daemonapi.InternalAgentMetricsWireInterface(&metricsAPI{}))
	s.sess.metrics = true
	a.slog().Debug("metrics enabled")
	return nil
}

// DisableMetrics stops timing jobs and removes the metrics object.
func (s *internalAPI) DisableMetrics(ctx context.Context) error {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if !s.sess.metrics {
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Metrics already disabled")
	}
	s.sess.conn.Unexport(string(daemonapi.InternalAgentMetricsPath), daemonapi.InternalAgentMetricsInterface)
	s.sess.metrics = false
	a.slog().Debug("metrics disabled")
	return nil
}

// metricsAPI serves org.eclipse.bluechi.internal.Agent.Metrics (a signal source).
type metricsAPI struct {
	daemonapi.UnimplementedInternalAgentMetricsServer
}

// cancelJob asks systemd to cancel the job tracked for id, without waiting.
func (a *Agent) cancelJob(sess *session, id uint32) error {
	a.mu.Lock()
	j := a.byID[jobKey{sess, id}]
	a.mu.Unlock()
	if j == nil {
		return dbusrt.NewError(dbusrt.ErrFailed, "No job with ID %d found", id)
	}
	if !j.cancelling.CompareAndSwap(false, true) {
		return nil // one cancel per job is on its way; it has the same effect
	}
	go func() {
		defer j.cancelling.Store(false)
		ctx := context.Background()
		if err := a.sd.CancelJob(ctx, j.path); err != nil {
			a.slog().Warn("cancel systemd job", "job", j.path, "error", err)
		}
	}()
	return nil
}

// publicAPI serves org.eclipse.bluechi.Agent on the local bus.
type publicAPI struct {
	daemonapi.UnimplementedAgentServer
	a *Agent
}

func (p *publicAPI) SwitchController(ctx context.Context, addr string) error {
	return p.a.SwitchController(addr)
}

func (p *publicAPI) JobCancel(ctx context.Context, id uint32) error {
	return p.a.cancelJob(p.a.current(), id)
}

func (p *publicAPI) CreateProxy(ctx context.Context, service, node, unit string) error {
	return p.a.CreateProxy(ctx, service, node, unit)
}

func (p *publicAPI) RemoveProxy(ctx context.Context, service, node, unit string) error {
	return p.a.RemoveProxy(service, node, unit)
}
