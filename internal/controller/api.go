// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"sync"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/wire"
)

// controllerAPI serves org.eclipse.bluechi.Controller.
type controllerAPI struct {
	daemonapi.UnimplementedControllerServer
	c *Controller

	// nodes is the last ListNodes answer and body its encoding, both
	// guarded by c.mu. Neither is changed once handed out (they are
	// encoded or written after the lock is released): a change of any
	// node builds new ones.
	nodes []bluechi.NodeInfo
	body  []byte
}

// sigListNodes is the reply signature of ListNodes.
const sigListNodes = daemonapi.ControllerListNodesOutSig

// listNodesRaw serves ListNodes with the cached list's encoding: with a
// thousand nodes, encoding the reply by reflection was most of the call.
func (a *controllerAPI) listNodesRaw(ctx context.Context, _ []any) ([]any, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !a.nodesCurrentLocked() || a.body == nil {
		a.refreshNodesLocked()
		var skipped int
		a.body, skipped = encodeNodeList(a.nodes)
		if skipped > 0 {
			c.logger().Error("ListNodes: nodes left out, a name or address is not a valid D-Bus string", "count", skipped)
		}
	}
	return []any{dbusrt.RawReply{Signature: sigListNodes, Body: a.body}}, nil
}

// encodeNodeList encodes nodes as the body of signature sigListNodes.
// A node with a string that is not a valid D-Bus string (configuration
// loading refuses such names, so only a hand-built configuration can have
// one) is left out, lest the bus drop the connection over the reply;
// skipped counts them. The check runs when the cache is rebuilt, not per
// call.
func encodeNodeList(nodes []bluechi.NodeInfo) (body []byte, skipped int) {
	w := wire.Writer{Buf: make([]byte, 0, 64*len(nodes)+8)}
	m := w.BeginArray(8)
	for _, n := range nodes {
		if !wire.ValidString(n.Name) || !wire.ValidObjectPath(string(n.Path)) || !wire.ValidString(n.Status) || !wire.ValidString(n.PeerIP) {
			skipped++
			continue
		}
		w.BeginStruct()
		w.String(n.Name)
		w.ObjectPath(string(n.Path))
		w.String(n.Status)
		w.String(n.PeerIP)
	}
	w.EndArray(m)
	return w.Buf, skipped
}

// ListNodes answers from the cached list while no node's status or
// address changed: checking is a pass over the nodes that allocates
// nothing, where building the list for 1000 nodes allocated 1000 strings.
func (a *controllerAPI) ListNodes(ctx context.Context) ([]bluechi.NodeInfo, error) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !a.nodesCurrentLocked() {
		a.refreshNodesLocked()
	}
	return a.nodes, nil
}

// refreshNodesLocked builds a new list of the nodes; c.mu is held.
func (a *controllerAPI) refreshNodesLocked() {
	c := a.c
	out := make([]bluechi.NodeInfo, len(c.nodes))
	for i, n := range c.nodes {
		status, ip := nodeState(n)
		out[i] = bluechi.NodeInfo{Name: n.name, Path: n.path, Status: status, PeerIP: ip}
	}
	a.nodes, a.body = out, nil
}

// nodeState is what ListNodes reports of n; c.mu is held.
func nodeState(n *node) (status, ip string) {
	if n.peer != nil {
		return "online", n.peer.ip
	}
	return "offline", ""
}

// nodesCurrentLocked tells whether a.nodes still describes every node.
func (a *controllerAPI) nodesCurrentLocked() bool {
	if len(a.nodes) != len(a.c.nodes) {
		return false
	}
	for i, n := range a.c.nodes {
		status, ip := nodeState(n)
		if a.nodes[i].Status != status || a.nodes[i].PeerIP != ip {
			return false
		}
	}
	return true
}

func (a *controllerAPI) GetNode(ctx context.Context, name string) (dbus.ObjectPath, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	n := a.c.byName[name]
	if n == nil {
		return "", notFound("Node not found")
	}
	return n.path, nil
}

func (a *controllerAPI) SetLogLevel(ctx context.Context, level string) error {
	if !validLevel(level) {
		return invalid("Invalid input for log level")
	}
	if err := a.c.log.SetLevel(level); err != nil {
		return invalid("Invalid input for log level")
	}
	return a.c.obj.SetLogLevel(level)
}

func (a *controllerAPI) ListUnits(ctx context.Context) (map[string][]bluechi.UnitInfo, error) {
	return fanOut(ctx, a.c, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) ([]bluechi.UnitInfo, error) {
		var units []bluechi.UnitInfo
		err := onWire(ctx, func(done func(error)) {
			ag.GoListUnits(ctx, func(u []bluechi.UnitInfo, err error) { units = u; done(err) })
		})
		return units, err
	})
}

func (a *controllerAPI) ListUnitFiles(ctx context.Context) (map[string][]bluechi.UnitFileInfo, error) {
	return fanOut(ctx, a.c, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) ([]bluechi.UnitFileInfo, error) {
		var files []bluechi.UnitFileInfo
		err := onWire(ctx, func(done func(error)) {
			ag.GoListUnitFiles(ctx, func(f []bluechi.UnitFileInfo, err error) { files = f; done(err) })
		})
		return files, err
	})
}

// fanOut asks every online node in parallel. A node that fails or does not
// answer within FanOutTimeout is left out (and logged): one bad node neither
// fails nor stalls the answer for the others.
func fanOut[T any](ctx context.Context, c *Controller, call func(context.Context, *daemonapi.InternalAgentWireClient) ([]T, error)) (map[string][]T, error) {
	type target struct {
		name  string
		agent *daemonapi.InternalAgentWireClient
	}
	c.mu.Lock()
	var targets []target
	for _, n := range c.nodes {
		if n.agent != nil {
			targets = append(targets, target{n.name, n.agent})
		}
	}
	c.mu.Unlock()
	results := make([][]T, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, FanOutTimeout)
			defer cancel()
			results[i], errs[i] = call(cctx, t.agent)
		})
	}
	wg.Wait()
	out := make(map[string][]T, len(targets))
	for i, t := range targets {
		if errs[i] != nil {
			c.logger().Warn("node left out of fan-out answer", "node", t.name, "error", errs[i])
			continue
		}
		out[t.name] = results[i]
	}
	return out, nil
}

func (a *controllerAPI) CreateMonitor(ctx context.Context) (dbus.ObjectPath, error) {
	return a.c.CreateMonitor(ctx)
}

func (a *controllerAPI) EnableMetrics(ctx context.Context) error { return a.c.EnableMetrics() }

func (a *controllerAPI) DisableMetrics(ctx context.Context) error { return a.c.DisableMetrics() }
