// SPDX-License-Identifier: Apache-2.0

package exporter

// This file is the only one that talks D-Bus: it implements Bus and Session
// with the public generated BlueChi client (gen/bluechi) on plain godbus
// connections, as any program of another module would.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busnames"
)

// errNameHasNoOwner is the bus's error reply to GetNameOwner of a name
// nobody owns.
const errNameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"

// connect wraps a new bus connection (godbus has authenticated it and said
// Hello).
func connect(conn *dbus.Conn, err error) (Bus, error) {
	if err != nil {
		return nil, err
	}
	return &dbusBus{conn: conn}, nil
}

// DialBus returns a Dialer for the system bus, or the session bus when user
// is set.
func DialBus(user bool) Dialer {
	return func(ctx context.Context) (Bus, error) {
		if user {
			return connect(dbus.ConnectSessionBus(connOptions(ctx)...))
		}
		return connect(dbus.ConnectSystemBus(connOptions(ctx)...))
	}
}

// connOptions are the options of the exporter's bus connections: godbus's
// sequential signal handler keeps signals in arrival order when the
// exporter falls behind (the default one may reorder them, and the client
// would then drop the signals of a controller that just took its name).
func connOptions(ctx context.Context) []dbus.ConnOption {
	return []dbus.ConnOption{dbus.WithContext(ctx), dbus.WithSignalHandler(dbus.NewSequentialSignalHandler())}
}

// DialAddress returns a Dialer for the bus at a D-Bus address.
func DialAddress(address string) Dialer {
	return func(ctx context.Context) (Bus, error) {
		return connect(dbus.Connect(address, connOptions(ctx)...))
	}
}

type dbusBus struct {
	conn  *dbus.Conn
	owner *bluechi.Subscription
}

func (b *dbusBus) Done() <-chan struct{} { return b.conn.Context().Done() }

func (b *dbusBus) Close() error {
	if b.owner != nil {
		b.owner.Close()
	}
	return b.conn.Close()
}

func (b *dbusBus) WatchOwner(ctx context.Context, fn func(string)) (string, error) {
	m := bluechi.Match{Sender: busnames.DBusBusName, Path: busnames.DBusPath, Interface: busnames.DBusInterface,
		Member: busnames.DBusSignalNameOwnerChanged, Arg0: bluechi.ControllerBusName}
	sub, err := bluechi.Subscribe(ctx, b.conn, m, func(sig *dbus.Signal) {
		var name, old, owner string
		if dbus.Store(sig.Body, &name, &old, &owner) == nil && name == bluechi.ControllerBusName {
			fn(owner)
		}
	})
	if err != nil {
		return "", err
	}
	b.owner = sub
	var owner string
	err = b.conn.BusObject().CallWithContext(ctx, busnames.DBusInterface+"."+busnames.DBusMethodGetNameOwner, 0, bluechi.ControllerBusName).Store(&owner)
	var derr dbus.Error
	if errors.As(err, &derr) && derr.Name == errNameHasNoOwner {
		return "", nil
	}
	return owner, err
}

type dbusSession struct {
	conn    *dbus.Conn
	ctrl    *bluechi.ControllerClient
	monitor *bluechi.MonitorClient
	subs    []*bluechi.Subscription
}

func (b *dbusBus) Open(ctx context.Context, h Handler) (_ Session, err error) {
	const dest = bluechi.ControllerBusName
	s := &dbusSession{conn: b.conn, ctrl: bluechi.NewControllerClient(b.conn, dest, bluechi.ControllerPath)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	add := func(sub *bluechi.Subscription, err error) error {
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		s.subs = append(s.subs, sub)
		return nil
	}
	if err := add(s.ctrl.OnPropertiesChanged(ctx, func(p *bluechi.ControllerPropertiesChanged) {
		if v, ok := p.Status(); ok {
			h.ControllerStatusChanged(v)
		}
	})); err != nil {
		return nil, err
	}
	// One match rule for every node (a bus limits rules per connection:
	// 512 on the system bus by default).
	m := bluechi.Match{Sender: dest, PathNamespace: dbus.ObjectPath(strings.TrimSuffix(bluechi.NodePathPrefix, "/")),
		Interface: busnames.DBusPropertiesInterface, Member: busnames.DBusPropertiesSignalPropertiesChanged, Arg0: bluechi.NodeInterface}
	if err := add(bluechi.Subscribe(ctx, b.conn, m, func(sig *dbus.Signal) {
		p, err := bluechi.ParsePropertiesChanged(sig)
		if err != nil {
			return
		}
		name, isNode := bluechi.NodeNameFromPath(p.Path)
		if v, ok := (&bluechi.NodePropertiesChanged{PropertiesChanged: *p}).Status(); ok && isNode {
			h.NodeStatusChanged(name, v)
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
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bluechi.ErrNoReply)) {
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
	if errors.Is(err, bluechi.ErrInconsistentMessage) { // already on
		return nil
	}
	return err
}
