// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// FormatUnitNew renders a UnitNew event as monitor prints it.
func FormatUnitNew(s *bluechi.MonitorUnitNewSignal) string {
	return fmt.Sprintf("[%s] %s\n\tUnit created (reason: %s)\n", s.Node, s.Unit, s.Reason)
}

// FormatUnitRemoved renders a UnitRemoved event.
func FormatUnitRemoved(s *bluechi.MonitorUnitRemovedSignal) string {
	return fmt.Sprintf("[%s] %s\n\tUnit removed (reason: %s)\n", s.Node, s.Unit, s.Reason)
}

// FormatUnitStateChanged renders a UnitStateChanged event.
func FormatUnitStateChanged(s *bluechi.MonitorUnitStateChangedSignal) string {
	return fmt.Sprintf("[%s] %s\n\tUnit state changed (reason: %s)\n\tActive: %s (%s)\n", s.Node, s.Unit, s.Reason, s.ActiveState, s.SubState)
}

// FormatUnitPropertiesChanged renders a UnitPropertiesChanged event: one
// line per changed property whose value is a string, by name.
func FormatUnitPropertiesChanged(s *bluechi.MonitorUnitPropertiesChangedSignal) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s\n\tUnit properties changed (Interface: %s)\n", s.Node, s.Unit, s.Interface)
	names := make([]string, 0, len(s.Props))
	for n := range s.Props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if v, ok := s.Props[n].Value().(string); ok {
			fmt.Fprintf(&b, "\t%s: %s\n", n, v)
		}
	}
	return b.String()
}

func runMonitor(a *app) int {
	node, units := "*", []string{"*"}
	if len(a.args) > 0 {
		node = a.args[0]
	}
	if len(a.args) > 1 {
		units = strings.Split(a.args[1], ",")
		for _, u := range units {
			if u != "*" && !a.checkUnits(u) {
				return 1
			}
		}
	}
	if a.bus() == nil {
		return 1
	}
	ctx, cancel := a.interruptible()
	defer cancel()
	var path dbus.ObjectPath
	if err := a.call(func(ctx context.Context) (err error) {
		path, err = a.controller().CreateMonitor(ctx)
		return
	}); err != nil {
		a.errorf("Failed to issue method call: %s", dbusrt.ErrorMessage(err))
		return 1
	}
	a.printf("Monitor path: %s\n", path)
	mon := bluechi.NewMonitorClient(a.conn, bluechi.ControllerBusName, path)
	defer a.closeMonitor(mon)
	// Signals arrive on one goroutine in wire order; one channel keeps it.
	lines := make(chan string, 256)
	emit := func(s string) {
		select {
		case lines <- s:
		case <-ctx.Done():
		}
	}
	var subs []*dbusrt.Subscription
	add := func(s *dbusrt.Subscription, err error) error {
		if err == nil {
			subs = append(subs, s)
		}
		return err
	}
	err := add(mon.OnUnitNew(ctx, func(s *bluechi.MonitorUnitNewSignal) { emit(FormatUnitNew(s)) }))
	if err == nil {
		err = add(mon.OnUnitRemoved(ctx, func(s *bluechi.MonitorUnitRemovedSignal) { emit(FormatUnitRemoved(s)) }))
	}
	if err == nil {
		err = add(mon.OnUnitStateChanged(ctx, func(s *bluechi.MonitorUnitStateChangedSignal) { emit(FormatUnitStateChanged(s)) }))
	}
	if err == nil {
		err = add(mon.OnUnitPropertiesChanged(ctx, func(s *bluechi.MonitorUnitPropertiesChangedSignal) { emit(FormatUnitPropertiesChanged(s)) }))
	}
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	if err != nil {
		a.errorf("Failed to match signals of monitor %s: %v", path, err)
		return 1
	}
	for _, u := range units {
		a.printf("Subscribing to node '%s' and unit '%s'\n", node, u)
	}
	if err := a.call(func(ctx context.Context) error {
		_, err := mon.SubscribeList(ctx, node, units)
		return err
	}); err != nil {
		a.errorf("Failed to issue method call: %s", dbusrt.ErrorMessage(err))
		return 1
	}
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-a.conn.Context().Done():
			a.errorf("Connection to the bus lost")
			return 1
		case l := <-lines:
			a.printf("%s", l)
		}
	}
}

// FormatStartUnitJobMetrics renders a StartUnitJobMetrics signal as
// "metrics listen" prints it (µs shown as ms with one decimal).
func FormatStartUnitJobMetrics(s *bluechi.MetricsStartUnitJobMetricsSignal) string {
	return fmt.Sprintf("[%s] Job %s to start unit %s:\n\tBlueChi job gross measured time: %.1fms\n\tUnit net start time (from properties): %.1fms\n",
		s.NodeName, s.JobID, s.Unit, float64(s.JobMeasuredTimeMicros)/1000, float64(s.UnitStartPropTimeMicros)/1000)
}

// FormatAgentJobMetrics renders an AgentJobMetrics signal.
func FormatAgentJobMetrics(s *bluechi.MetricsAgentJobMetricsSignal) string {
	return fmt.Sprintf("[%s] Agent systemd %s job on %s net measured time: %.1fms\n",
		s.NodeName, s.Method, s.Unit, float64(s.SystemdJobTimeMicros)/1000)
}

func runMetrics(a *app) int {
	switch a.args[0] {
	case "enable", "disable", "listen":
	default:
		a.errorf("Unknown metrics command: %s", a.args[0])
		return 1
	}
	if a.bus() == nil {
		return 1
	}
	switch a.args[0] {
	case "enable", "disable":
		err := a.call(func(ctx context.Context) error {
			if a.args[0] == "enable" {
				return a.controller().EnableMetrics(ctx)
			}
			return a.controller().DisableMetrics(ctx)
		})
		if err != nil {
			a.errorf("Failed to issue method call: %s", dbusrt.ErrorMessage(err))
			return 1
		}
		a.printf("Done\n")
		return 0
	}
	ctx, cancel := a.interruptible()
	defer cancel()
	metrics := bluechi.NewMetricsClient(a.conn, bluechi.ControllerBusName, bluechi.MetricsPath)
	lines := make(chan string, 256)
	emit := func(s string) {
		select {
		case lines <- s:
		case <-ctx.Done():
		}
	}
	sub, err := metrics.OnStartUnitJobMetrics(ctx, func(s *bluechi.MetricsStartUnitJobMetricsSignal) { emit(FormatStartUnitJobMetrics(s)) })
	if err != nil {
		a.errorf("Failed to match signal: %v", err)
		return 1
	}
	defer sub.Close()
	sub2, err := metrics.OnAgentJobMetrics(ctx, func(s *bluechi.MetricsAgentJobMetricsSignal) { emit(FormatAgentJobMetrics(s)) })
	if err != nil {
		a.errorf("Failed to match signal: %v", err)
		return 1
	}
	defer sub2.Close()
	a.printf("Waiting for metrics signals...\n")
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-a.conn.Context().Done():
			a.errorf("Connection to the bus lost")
			return 1
		case l := <-lines:
			a.printf("%s", l)
		}
	}
}
