// SPDX-License-Identifier: Apache-2.0

package exporter

// This file is the only one that talks D-Bus: it implements Bus and Session
// with the generated BlueChi client.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// DialBus returns a Dialer for the system bus, or the session bus when user
// is set.
func DialBus(user bool) Dialer {
	return func(ctx context.Context) (Bus, error) {
		var conn *dbus.Conn
		var err error
		if user {
			conn, _, err = dbusrt.ConnectSessionBus()
		} else {
			conn, _, err = dbusrt.ConnectSystemBus()
		}
		if err != nil {
			return nil, err
		}
		return &dbusBus{conn: conn}, nil
	}
}

// DialAddress returns a Dialer for the bus at a D-Bus address.
func DialAddress(address string) Dialer {
	return func(ctx context.Context) (Bus, error) {
		conn, _, err := dbusrt.ConnectBus(address)
		if err != nil {
			return nil, err
		}
		return &dbusBus{conn: conn}, nil
	}
}

type dbusBus struct {
	conn  *dbus.Conn
	owner *dbusrt.Subscription
}

func (b *dbusBus) Done() <-chan struct{} { return b.conn.Context().Done() }

func (b *dbusBus) Close() error {
	if b.owner != nil {
		b.owner.Close()
	}
	return b.conn.Close()
}

func (b *dbusBus) WatchOwner(ctx context.Context, fn func(string)) (string, error) {
	sub, err := dbusrt.WatchNameOwner(ctx, b.conn, bluechi.ControllerBusName, func(c dbusrt.OwnerChange) { fn(c.NewOwner) })
	if err != nil {
		return "", err
	}
	b.owner = sub
	owner, err := dbusrt.NameOwner(ctx, b.conn, bluechi.ControllerBusName)
	if dbusrt.ErrorName(err) == "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return "", nil
	}
	return owner, err
}

type dbusSession struct {
	conn    *dbus.Conn
	ctrl    *bluechi.ControllerClient
	monitor *bluechi.MonitorClient
	subs    []*dbusrt.Subscription
}

func (b *dbusBus) Open(ctx context.Context, h Handler) (_ Session, err error) {
	const dest = bluechi.ControllerBusName
	s := &dbusSession{conn: b.conn, ctrl: bluechi.NewControllerClient(b.conn, dest, bluechi.ControllerPath)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	add := func(sub *dbusrt.Subscription, err error) error {
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		s.subs = append(s.subs, sub)
		return nil
	}
	if err := add(s.ctrl.OnPropertiesChanged(ctx, func(p *dbusrt.PropertiesChanged) {
		if v, ok := p.Changed[bluechi.ControllerPropertyStatus].Value().(string); ok {
			h.ControllerStatusChanged(v)
		}
	})); err != nil {
		return nil, err
	}
	// One match rule for every node (a bus limits rules per connection:
	// 512 on the system bus by default).
	m := dbusrt.Match{Sender: dest, PathNamespace: dbus.ObjectPath(strings.TrimSuffix(bluechi.NodePathPrefix, "/")),
		Interface: dbusrt.PropertiesInterface, Member: "PropertiesChanged", Arg0: bluechi.NodeInterface}
	if err := add(dbusrt.Subscribe(ctx, b.conn, m, func(sig *dbus.Signal) {
		p, err := dbusrt.ParsePropertiesChanged(sig)
		if err != nil || !strings.HasPrefix(string(p.Path), bluechi.NodePathPrefix) {
			return
		}
		if v, ok := p.Changed["Status"].Value().(string); ok {
			h.NodeStatusChanged(dbusrt.UnescapeLabel(string(p.Path)[len(bluechi.NodePathPrefix):]), v)
		}
	})); err != nil {
		return nil, err
	}
	if err := add(s.ctrl.OnJobNew(ctx, func(j *bluechi.ControllerJobNewSignal) { h.JobNew(j.ID, string(j.Job)) })); err != nil {
		return nil, err
	}
	if err := add(s.ctrl.OnJobRemoved(ctx, func(j *bluechi.ControllerJobRemovedSignal) {
		h.JobRemoved(j.ID, string(j.Job), j.Node, j.Unit, j.Result)
	})); err != nil {
		return nil, err
	}
	metrics := bluechi.NewMetricsClient(b.conn, dest, bluechi.MetricsPath)
	if err := add(metrics.OnAgentJobMetrics(ctx, func(m *bluechi.MetricsAgentJobMetricsSignal) {
		h.AgentJob(m.NodeName, m.Unit, m.Method, time.Duration(m.SystemdJobTimeMicros)*time.Microsecond)
	})); err != nil {
		return nil, err
	}
	if err := add(metrics.OnStartUnitJobMetrics(ctx, func(m *bluechi.MetricsStartUnitJobMetricsSignal) {
		h.StartUnitJob(m.NodeName, m.Unit, time.Duration(m.JobMeasuredTimeMicros)*time.Microsecond)
	})); err != nil {
		return nil, err
	}
	path, err := s.ctrl.CreateMonitor(ctx)
	if err != nil {
		return nil, fmt.Errorf("create monitor: %w", err)
	}
	s.monitor = bluechi.NewMonitorClient(b.conn, dest, path)
	if err := add(s.monitor.OnUnitStateChanged(ctx, func(u *bluechi.MonitorUnitStateChangedSignal) {
		h.UnitStateChanged(u.Node, u.Unit, u.ActiveState, u.SubState, u.Reason == "virtual")
	})); err != nil {
		return nil, err
	}
	if err := add(s.monitor.OnUnitRemoved(ctx, func(u *bluechi.MonitorUnitRemovedSignal) {
		h.UnitRemoved(u.Node, u.Unit, u.Reason == "virtual")
	})); err != nil {
		return nil, err
	}
	if _, err := s.monitor.Subscribe(ctx, "*", "*"); err != nil {
		return nil, fmt.Errorf("monitor subscribe: %w", err)
	}
	return s, nil
}

func (s *dbusSession) Close() error {
	for _, sub := range s.subs {
		sub.Close()
	}
	s.subs = nil
	if s.monitor != nil && s.conn.Context().Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.monitor.Close(ctx) // the controller may be gone already
	}
	return nil
}

func (s *dbusSession) ControllerStatus(ctx context.Context) (string, error) {
	return s.ctrl.GetStatus(ctx)
}

func (s *dbusSession) Nodes(ctx context.Context) ([]Node, error) {
	infos, err := s.ctrl.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]Node, 0, len(infos))
	for _, n := range infos {
		seen, err := s.lastSeen(ctx, n.Path)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		out = append(out, Node{Name: n.Name, Status: n.Status, LastSeen: seen})
	}
	return out, nil
}

func (s *dbusSession) LastSeen(ctx context.Context, node string) (time.Time, error) {
	t, err := s.lastSeen(ctx, bluechi.NodePath(node))
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || dbusrt.ErrorName(err) == dbusrt.ErrNoReply) {
		err = fmt.Errorf("%w: %v", ErrNoAnswer, err)
	}
	return t, err
}

func (s *dbusSession) lastSeen(ctx context.Context, path dbus.ObjectPath) (time.Time, error) {
	us, err := bluechi.NewNodeClient(s.conn, bluechi.ControllerBusName, path).GetLastSeenTimestamp(ctx)
	if err != nil || us == 0 {
		return time.Time{}, err
	}
	return time.UnixMicro(int64(us)), nil
}

func (s *dbusSession) Job(ctx context.Context, job string) (string, string, error) {
	p, err := bluechi.NewJobClient(s.conn, bluechi.ControllerBusName, dbus.ObjectPath(job)).Properties(ctx)
	if err != nil {
		return "", "", err
	}
	return p.Node, p.JobType, nil
}

func (s *dbusSession) Units(ctx context.Context, node string) ([]Unit, error) {
	infos, err := bluechi.NewNodeClient(s.conn, bluechi.ControllerBusName, bluechi.NodePath(node)).ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Unit, len(infos))
	for i, u := range infos {
		out[i] = Unit{Name: u.Name, ActiveState: u.ActiveState, SubState: u.SubState}
	}
	return out, nil
}

func (s *dbusSession) EnableMetrics(ctx context.Context) error {
	err := s.ctrl.EnableMetrics(ctx)
	if dbusrt.ErrorName(err) == dbusrt.ErrInconsistentMessage { // already on
		return nil
	}
	return err
}
