// SPDX-License-Identifier: Apache-2.0

// Package controller is bluechi-controller's core: it serves the public
// org.eclipse.bluechi API on a bus, accepts agents on peer-to-peer
// connections, registers them as nodes, relays Node calls to them and tracks
// their jobs.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/monoclock"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// checkPeriod is how often node liveness is checked.
const checkPeriod = 250 * time.Millisecond

// AgentCallTimeout bounds every call the controller makes to an agent.
const AgentCallTimeout = 30 * time.Second

// FanOutTimeout bounds one node's part of Controller.ListUnits and
// ListUnitFiles: a node that has not answered by then is left out of the
// result (and logged) instead of stalling or failing the whole call.
const FanOutTimeout = 10 * time.Second

// ResultShutdown and ResultDisconnected are the JobRemoved results of jobs
// that end because the controller stops or their node goes away. Upstream
// drops jobs of a disconnected node silently, so waiting clients hang; we
// end them with a result instead.
const (
	ResultShutdown     = "cancelled due to shutdown"
	ResultDisconnected = "cancelled due to node disconnect"
)

// Logger is what the controller needs of a logger: slog plus a settable level.
type Logger interface {
	Slog() *slog.Logger
	SetLevel(level string) error
	Level() string
	Target() string
}

// Controller is one running controller.
type Controller struct {
	cfg *config.Controller
	log Logger
	api *dbusrt.Server // serves the objects on the bus connection
	bus Bus
	obj *daemonapi.ControllerObject

	// mu guards the nodes' connection fields (node.peer, agent,
	// lastSeenMono), peer.node, jobs, nextJob, peers and closed; nodes
	// and byName are fixed after New.
	mu      sync.Mutex
	nodes   []*node
	byName  map[string]*node
	jobs    map[uint32]*job
	nextJob uint32
	peers   map[*peer]struct{}
	closed  bool

	// adm bounds the unregistered agent connections (peer.go); made
	// once, on the first Serve.
	adm     *admission
	admOnce sync.Once

	// emu guards monitors, subscriptions, metrics and each node's agent
	// as seen by them (node.ev). It is held while monitor and metrics
	// signals are sent, so that they leave in the order their causes
	// happened. Lock order: emu before mu.
	emu         sync.Mutex
	monitors    map[uint32]*monitor
	nextMonitor uint32
	nextSub     uint32 // subscription ids, of monitors and proxies alike (api.md §6.2)
	nextPeer    uint32
	metrics     *daemonapi.MetricsObject // nil while metrics are off
	evClosed    bool
	scratch     []*subscription

	// The fast path (fastpath.go): the bus connection, and a buffer
	// reused under emu.
	busWire *wireconn.Conn
	rawBody wire.Writer
	// flushPending is set while a flush of busWire is scheduled (kickFlush).
	flushPending atomic.Bool

	bg sync.WaitGroup // background work that Close waits for
}

// Bus is what the controller asks of the message bus besides serving its
// objects: whether the clients that own its monitors are still there.
type Bus interface {
	NameHasOwner(ctx context.Context, name string) (bool, error)
	// WatchNameOwner calls fn for every change of name's owner until stop.
	WatchNameOwner(ctx context.Context, name string, fn func(oldOwner, newOwner string)) (stop func(), err error)
}

// New exports the controller and one node object per configured node on
// api, which must be bound to its wireconn bus connection
// (dbusrt.Server.BindWire): monitor signals are written on that
// connection directly. The caller requests the bus name.
func New(cfg *config.Controller, api *dbusrt.Server, bus Bus, log Logger) (*Controller, error) {
	wc := api.Wire()
	if wc == nil {
		return nil, errors.New("controller: the object server has no wireconn connection")
	}
	c := &Controller{cfg: cfg, log: log, api: api, bus: bus, busWire: wc, byName: map[string]*node{}, jobs: map[uint32]*job{}, peers: map[*peer]struct{}{},
		monitors: map[uint32]*monitor{}}
	capi := &controllerAPI{c: c}
	obj, err := daemonapi.ExportControllerOn(api, bluechi.ControllerPath, capi, bluechi.ControllerProperties{
		Status: "down", LogLevel: log.Level(), LogTarget: log.Target(),
	})
	if err != nil {
		return nil, err
	}
	c.obj = obj
	for _, nc := range cfg.Nodes {
		n := &node{c: c, name: nc.Name, path: bluechi.NodePath(nc.Name), interest: map[string]*interest{},
			proxies: map[proxyKey]*proxyRec{}, deps: map[string]int{}, selinuxType: nc.RequiredSelinuxContext}
		for _, t := range nc.AllowDependenciesOn {
			if n.allowDeps == nil {
				n.allowDeps = map[string]bool{} // only read elsewhere: nil when none
			}
			n.allowDeps[t] = true
		}
		n.obj, err = daemonapi.ExportNodeOn(api, n.path, &nodeAPI{n: n}, bluechi.NodeProperties{Name: nc.Name, Status: "offline"})
		if err != nil {
			obj.Unexport()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.byName[nc.Name] = n
	}
	c.addCacheSinks()
	srv := api
	srv.Override(bluechi.ControllerPath, bluechi.ControllerInterface, bluechi.ControllerMethodListUnits, "", c.listUnits)
	srv.Override(bluechi.ControllerPath, bluechi.ControllerInterface, bluechi.ControllerMethodListNodes, "", capi.listNodesRaw)
	for _, n := range c.nodes {
		srv.Override(n.path, bluechi.NodeInterface, bluechi.NodeMethodListUnits, "", c.nodeListUnits(n))
	}
	return c, nil
}

func (c *Controller) logger() *slog.Logger { return c.log.Slog() }

// Heartbeats runs the controller's heartbeat timer until ctx ends: nodes not
// seen for NodeHeartbeatThreshold are disconnected, the others get a
// Heartbeat. It returns at once when HeartbeatInterval <= 0.
func (c *Controller) Heartbeats(ctx context.Context) {
	if c.cfg.HeartbeatInterval <= 0 {
		return
	}
	interval := time.Duration(c.cfg.HeartbeatInterval) * time.Millisecond
	threshold := time.Duration(c.cfg.NodeHeartbeatThreshold) * time.Millisecond
	// Liveness is checked often, so a silent node is found within
	// threshold + checkPeriod; heartbeats go out every interval.
	t := time.NewTicker(min(interval, checkPeriod))
	defer t.Stop()
	var lastSent time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := monoclock.Now()
		send := now-lastSent >= interval
		if send {
			lastSent = now
		}
		c.mu.Lock()
		var online []*node
		for _, n := range c.nodes {
			if n.peer != nil {
				online = append(online, n)
			}
		}
		c.mu.Unlock()
		for _, n := range online {
			c.mu.Lock()
			p, seen := n.peer, n.lastSeenMono
			c.mu.Unlock()
			if p == nil {
				continue
			}
			if threshold > 0 && now-seen > threshold {
				c.logger().Warn("node heartbeat timeout, disconnecting", "node", n.name, "silent", now-seen)
				p.conn.Close()
				continue
			}
			if send {
				if err := daemonapi.EmitInternalControllerHeartbeatWire(p.conn, string(daemonapi.InternalControllerPath), daemonapi.InternalControllerHeartbeatSignal{}); err != nil {
					c.logger().Debug("heartbeat send failed", "node", n.name, "error", err)
				}
			}
		}
	}
}

// Close ends every outstanding job with ResultShutdown, drops all monitors
// (their owners get no signal), switches metrics off, reports the
// controller down and drops all agent connections.
func (c *Controller) Close() {
	c.closeEvents()
	c.emu.Lock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.emu.Unlock()
		return
	}
	c.closed = true
	var jobs []*job
	for _, j := range c.jobs {
		jobs = append(jobs, j)
	}
	c.mu.Unlock()
	c.emu.Unlock()
	// The jobs end first (behaviours.md §9): a client waiting for one,
	// such as bluechictl start, learns it was cancelled by the shutdown
	// before its node is reported offline.
	for _, j := range jobs {
		c.finishJob(j, ResultShutdown)
	}
	c.emu.Lock()
	c.mu.Lock()
	// Then every node is detached (each reports offline once) and the
	// controller reported down once; the connections' own disconnect
	// handling then finds nothing left to do.
	for _, n := range c.nodes {
		if n.peer != nil {
			n.detachLocked()
			n.offlineLocked()
		}
	}
	c.updateStatusLocked()
	var peers []*peer
	for p := range c.peers {
		peers = append(peers, p)
	}
	c.mu.Unlock()
	c.emu.Unlock()
	for _, p := range peers {
		p.conn.Close()
	}
	c.bg.Wait()
}

// updateStatusLocked recomputes Controller.Status from the online nodes.
func (c *Controller) updateStatusLocked() {
	online := 0
	for _, n := range c.nodes {
		if n.peer != nil {
			online++
		}
	}
	status := "down"
	switch {
	case online > 0 && online == len(c.nodes):
		status = "up"
	case online > 0:
		status = "degraded"
	}
	if err := c.obj.SetStatus(status); err != nil {
		c.logger().Warn("emit status", "error", err)
	}
}

func notFound(format string, args ...any) error {
	return dbusrt.NewError(dbusrt.ErrServiceUnknown, format, args...)
}

func failed(format string, args ...any) error {
	return dbusrt.NewError(dbusrt.ErrFailed, format, args...)
}

func invalid(format string, args ...any) error {
	return dbusrt.NewError(dbusrt.ErrInvalidArgs, format, args...)
}

func inconsistent(format string, args ...any) error {
	return dbusrt.NewError(dbusrt.ErrInconsistentMessage, format, args...)
}

var _ = fmt.Sprint
