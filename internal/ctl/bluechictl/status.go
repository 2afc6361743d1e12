// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/ctl/table"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
)

// NodeJSON is one node of "status -o json".
type NodeJSON struct {
	Node  string `json:"node"`
	State string `json:"state"`
	IP    string `json:"ip"`
	// LastSeen is "now", "never" or the local time, as in the table.
	LastSeen string `json:"last_seen"`
	// LastSeenTimestamp is the node's LastSeenTimestamp (µs since the epoch, 0 = never).
	LastSeenTimestamp uint64 `json:"last_seen_timestamp"`
}

// UnitStatusJSON is one unit of "status NODE UNIT... -o json".
type UnitStatusJSON struct {
	Node          string `json:"node"`
	Unit          string `json:"unit"`
	ID            string `json:"id"`
	LoadState     string `json:"load_state"`
	ActiveState   string `json:"active_state"`
	SubState      string `json:"sub_state"`
	FreezerState  string `json:"freezer_state"`
	UnitFileState string `json:"unit_file_state"`
}

func runStatus(a *app) int {
	if len(a.args) >= 2 {
		if !a.checkUnits(a.args[1:]...) {
			return 1
		}
		if a.bus() == nil {
			return 1
		}
		return a.unitStatus(a.args[0], a.args[1:])
	}
	if a.bus() == nil {
		return 1
	}
	return a.nodeStatus(a.optionalNode())
}

// nodeState is one row of the node table while it is shown.
type nodeState struct {
	name, path, state, ip string
	lastSeen              uint64
}

func (a *app) lastSeen(n *nodeState) error {
	return a.call(func(ctx context.Context) (err error) {
		n.lastSeen, err = bluechi.NewNodeClient(a.conn, bluechi.NodeBusName, dbus.ObjectPath(n.path)).GetLastSeenTimestamp(ctx)
		return
	})
}

func (a *app) printNodes(nodes []*nodeState, watch bool) {
	if a.json {
		out := []NodeJSON{}
		for _, n := range nodes {
			out = append(out, NodeJSON{n.name, n.state, n.ip, table.LastSeen(n.state, n.lastSeen, time.Local), n.lastSeen})
		}
		a.writeJSON(out, watch)
		return
	}
	rows := make([]table.NodeRow, len(nodes))
	for i, n := range nodes {
		rows[i] = table.NodeRow{Name: n.name, State: n.state, IP: n.ip, LastSeen: table.LastSeen(n.state, n.lastSeen, time.Local)}
	}
	table.Nodes(a.env.Stdout, rows, watch)
}

func (a *app) nodeStatus(only string) int {
	var list []bluechi.NodeInfo
	if err := a.call(func(ctx context.Context) (err error) {
		list, err = a.controller().ListNodes(ctx)
		return
	}); err != nil {
		a.errorf("Failed to list nodes: %s", dbusrt.ErrorMessage(err))
		return 1
	}
	var nodes []*nodeState
	for _, n := range list {
		if only != "" && n.Name != only {
			continue
		}
		ns := &nodeState{name: n.Name, path: string(n.Path), state: n.Status, ip: n.PeerIP}
		// The table shows the time only for offline nodes; JSON has it always.
		if n.Status == "offline" || a.json {
			if err := a.lastSeen(ns); err != nil {
				a.errorf("Failed to get last seen property of node %s: %s", n.Name, dbusrt.ErrorMessage(err))
				return 1
			}
		}
		nodes = append(nodes, ns)
	}
	if only != "" && len(nodes) == 0 {
		a.errorf("Node %s not found", only)
		return 1
	}
	watch := a.opts.Has("watch")
	if !watch {
		a.printNodes(nodes, false)
		return 0
	}
	ctx, cancel := a.interruptible()
	defer cancel()
	type change struct {
		n      *nodeState
		status string
	}
	changes := make(chan change, 64)
	for _, n := range nodes {
		sub, err := bluechi.NewNodeClient(a.conn, bluechi.NodeBusName, dbus.ObjectPath(n.path)).OnPropertiesChanged(ctx, func(p *bluechi.NodePropertiesChanged) {
			if s, ok := p.Status(); ok {
				select {
				case changes <- change{n, s}:
				case <-ctx.Done():
				}
			}
		})
		if err != nil {
			a.errorf("Failed to create callback for NodeConnectionStateChanged: %v", err)
			return 1
		}
		defer sub.Close()
	}
	a.printNodes(nodes, true)
	for {
		select {
		case <-ctx.Done():
			return 0
		case c := <-changes:
			c.n.state = c.status
			if err := a.lastSeen(c.n); err != nil {
				a.errorf("Failed to get last seen property of node %s: %s", c.n.name, dbusrt.ErrorMessage(err))
				return 1
			}
			a.call(func(ctx context.Context) (err error) {
				c.n.ip, err = bluechi.NewNodeClient(a.conn, bluechi.NodeBusName, dbus.ObjectPath(c.n.path)).GetPeerIP(ctx)
				return
			})
			a.printNodes(nodes, true)
		}
	}
}

// stringProp returns a string property, "" when missing or of another type.
func stringProp(props map[string]dbus.Variant, name string) string {
	s, _ := props[name].Value().(string)
	return s
}

// unitState reads the properties shown for one unit.
func (a *app) unitState(node, unit string) (UnitStatusJSON, error) {
	var props map[string]dbus.Variant
	err := a.call(func(ctx context.Context) (err error) {
		props, err = a.node(node).GetUnitProperties(ctx, unit, "")
		return
	})
	return UnitStatusJSON{
		Node: node, Unit: unit,
		ID:            stringProp(props, "Id"),
		LoadState:     stringProp(props, "LoadState"),
		ActiveState:   stringProp(props, "ActiveState"),
		SubState:      stringProp(props, "SubState"),
		FreezerState:  stringProp(props, "FreezerState"),
		UnitFileState: stringProp(props, "UnitFileState"),
	}, err
}

// printUnits prints the unit table (or JSON) for every unit; false after
// reporting a failed call.
func (a *app) printUnits(node string, units []string, watch bool) bool {
	width := table.NameWidth(units)
	out := []UnitStatusJSON{}
	if watch && !a.json {
		a.printf("%s", table.ClearScreen)
	}
	if !a.json {
		table.UnitHeader(a.env.Stdout, width)
	}
	for _, u := range units {
		st, err := a.unitState(node, u)
		if err != nil {
			a.errorf("Failed to get status of unit %s on node %s - %s", u, node, message(err, node))
			return false
		}
		if a.json {
			out = append(out, st)
			continue
		}
		if st.LoadState == "not-found" {
			id := st.ID
			if id == "" {
				id = "(null)"
			}
			a.errorf("Unit %s could not be found.", id)
			continue
		}
		table.UnitRow(a.env.Stdout, table.UnitStatus{ID: st.ID, LoadState: st.LoadState, ActiveState: st.ActiveState,
			SubState: st.SubState, FreezerState: st.FreezerState, UnitFileState: st.UnitFileState}, width)
	}
	if a.json {
		a.writeJSON(out, watch)
	}
	return true
}

func (a *app) unitStatus(node string, units []string) int {
	watch := a.opts.Has("watch")
	if !watch {
		if !a.printUnits(node, units, false) {
			return 1
		}
		return 0
	}
	ctx, cancel := a.interruptible()
	defer cancel()
	if !a.printUnits(node, units, false) {
		return 1
	}
	changed := make(chan struct{}, 1)
	// One monitor per unit, as upstream does.
	for _, u := range units {
		var path dbus.ObjectPath
		if err := a.call(func(ctx context.Context) (err error) {
			path, err = a.controller().CreateMonitor(ctx)
			return
		}); err != nil {
			a.errorf("Failed to create monitor: %s", dbusrt.ErrorMessage(err))
			return 1
		}
		mon := bluechi.NewMonitorClient(a.conn, bluechi.ControllerBusName, path)
		sub, err := mon.OnUnitStateChanged(ctx, func(*bluechi.MonitorUnitStateChangedSignal) {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		if err != nil {
			a.errorf("Failed to create callback for UnitStateChanged: %v", err)
			return 1
		}
		defer sub.Close()
		if err := a.call(func(ctx context.Context) error {
			_, err := mon.Subscribe(ctx, node, u)
			return err
		}); err != nil {
			a.errorf("Failed to subscribe to monitor: %s", dbusrt.ErrorMessage(err))
			return 1
		}
		defer a.closeMonitor(mon)
	}
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-changed:
			if !a.printUnits(node, units, true) {
				return 1
			}
		}
	}
}

// closeMonitor closes a monitor on the way out (the controller would also
// close it when this process leaves the bus).
func (a *app) closeMonitor(mon *bluechi.MonitorClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	mon.Close(ctx)
}
