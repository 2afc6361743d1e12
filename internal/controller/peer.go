// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/monoclock"
	"github.com/bluechi-go/bluechi/internal/transport"
)

// agentBusName is the destination the controller addresses agents with, as
// upstream does; agents do not filter on it.
const agentBusName = "org.eclipse.bluechi.Agent"

type peerKey struct{}

// peer is one agent connection, anonymous until it registers.
type peer struct {
	c   *Controller
	srv *dbusrt.Server
	nc  net.Conn
	tap *transport.Tap // raw access to the connection (fastpath.go, unitcache.go)
	ip  string
	// label is the peer's security context where the kernel has one
	// (SO_PEERSEC: SELinux on a unix socket), otherwise empty.
	label string
	conn  *dbus.Conn // guarded by c.mu
	gone  sync.Once  // disconnected runs once per peer
	reg   *daemonapi.InternalControllerObject
	node  *node // guarded by c.mu; nil while anonymous
}

func peerFromConn(conn *dbus.Conn) *peer {
	p, _ := conn.Context().Value(peerKey{}).(*peer)
	return p
}

// newPeer prepares the object server of a new connection, with the
// registration object exported before godbus reads the first message.
func (c *Controller) newPeer(nc net.Conn) *peer {
	p := &peer{c: c, srv: dbusrt.NewServer(), nc: nc, ip: transport.PeerIP(nc)}
	p.label, _ = transport.PeerSecurityContext(nc) // none: a node that requires one refuses it
	p.srv.ServeBusShim()
	p.srv.SetOrdered() // calls in wire order; a flooding peer is refused past the queue limit
	reg, err := daemonapi.ExportInternalControllerOn(p.srv, daemonapi.InternalControllerPath, &registrar{p: p}, daemonapi.InternalControllerProperties{})
	if err != nil {
		c.logger().Error("export registration object", "error", err)
	}
	p.reg = reg
	return p
}

// start runs once the connection is authenticated.
func (p *peer) start(conn *dbus.Conn) {
	// p.conn is set (under c.mu, as it is read) before Bind starts
	// dispatching calls whose handlers read it.
	p.c.mu.Lock()
	p.conn = conn
	closed := p.c.closed
	if !closed {
		p.c.peers[p] = struct{}{}
	}
	p.c.mu.Unlock()
	if closed {
		conn.Close()
		return
	}
	p.srv.Bind(conn)
	p.c.logger().Debug("agent connected", "peer", p.ip)
	go func() {
		<-conn.Context().Done()
		p.c.disconnected(p)
	}()
}

// registrar serves org.eclipse.bluechi.internal.Controller on one peer.
type registrar struct {
	daemonapi.UnimplementedInternalControllerServer
	p *peer
}

func (r *registrar) Register(ctx context.Context, name string) error {
	c := r.p.c
	for attempt := 0; ; attempt++ {
		stale, staleConn, err := r.register(ctx, name)
		if stale == nil {
			return err
		}
		if attempt == maxStaleRetries {
			return dbusrt.NewError(dbusrt.ErrAddressInUse, "The node is already connected")
		}
		// The node's previous connection is closed but its end is not
		// handled yet (an agent that reconnects at once, as after
		// SwitchController, can get here first). Let its reader take in
		// what the agent sent before it closed (a JobDone, say), make
		// sure it is gone, then try again.
		c.logger().Info("node reconnected before its old connection was seen to close", "node", name, "peer", r.p.ip)
		t := time.NewTimer(staleWait)
		select {
		case <-staleConn.Context().Done():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		stale.nc.Close()
		c.disconnected(stale)
	}
}

// A registration that finds its node held by a closed connection waits at
// most staleWait for that connection's last messages (longer than the
// reader's confirmEmpty check), and gives up after maxStaleRetries such
// connections in a row.
const (
	staleWait       = 300 * time.Millisecond
	maxStaleRetries = 3
)

// register attaches the peer to the node called name. When the node is
// still held by a connection whose peer has gone, it returns that peer and
// its connection and changes nothing.
func (r *registrar) register(ctx context.Context, name string) (*peer, *dbus.Conn, error) {
	p, c := r.p, r.p.c
	conn := dbusrt.ConnFrom(ctx)
	c.emu.Lock()
	defer c.emu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.node != nil {
		return nil, nil, dbusrt.NewError(dbusrt.ErrAddressInUse, "Can't register twice")
	}
	n := c.byName[name]
	if n == nil {
		c.logger().Warn("registration refused: unexpected node name", "name", name, "peer", p.ip)
		return nil, nil, notFound("Unexpected node name")
	}
	if n.selinuxType != "" && selinuxType(p.label) != n.selinuxType {
		c.logger().Warn("registration refused: the peer's SELinux type is not the node's RequiredSelinuxContext",
			"name", name, "peer", p.ip, "context", p.label, "required", n.selinuxType)
		return nil, nil, dbusrt.NewError(dbusrt.ErrAccessDenied, "Node name not allowed")
	}
	if n.peer != nil {
		if old := n.peer; old.nc != nil && transport.PeerClosed(old.nc) {
			return old, old.conn, nil
		}
		c.logger().Warn("registration refused: node already connected", "node", name, "peer", p.ip)
		return nil, nil, dbusrt.NewError(dbusrt.ErrAddressInUse, "The node is already connected")
	}
	if c.closed {
		return nil, nil, failed("Controller is shutting down")
	}
	if conn.Context().Err() != nil {
		// The connection dropped while this call waited: disconnected()
		// already ran and found nothing to detach, so attaching now would
		// leave the node online on a dead connection.
		return nil, nil, failed("Connection closed during registration")
	}
	if p.conn == nil {
		p.conn = conn
	}
	if err := n.attachLocked(p, conn); err != nil {
		return nil, nil, failed("%s", err.Error())
	}
	c.registeredLocked(n, p)
	if p.reg != nil {
		p.reg.Unexport()
	}
	c.updateStatusLocked()
	if c.cfg.HeartbeatInterval > 0 {
		// A first heartbeat right away arms the agent's liveness check
		// (our agents arm it on the first controller heartbeat).
		daemonapi.EmitInternalControllerHeartbeat(conn, "", daemonapi.InternalControllerPath, daemonapi.InternalControllerHeartbeatSignal{})
	}
	c.logger().Info("node registered", "node", name, "peer", p.ip)
	return nil, nil, nil
}

// disconnected handles the loss of a peer connection, once.
func (c *Controller) disconnected(p *peer) {
	p.gone.Do(func() { c.detachPeer(p) })
}

func (c *Controller) detachPeer(p *peer) {
	c.emu.Lock()
	c.mu.Lock()
	delete(c.peers, p)
	n := p.node
	var jobs []*job
	if n != nil && n.peer == p {
		jobs = n.detachLocked()
		c.updateStatusLocked()
	}
	c.mu.Unlock()
	if n != nil {
		c.goneLocked(n, p)
	}
	c.emu.Unlock()
	for _, j := range jobs {
		c.finishJob(j, ResultDisconnected)
	}
	if n != nil {
		c.logger().Info("node disconnected", "node", n.name)
	}
}

func touch(n *node) {
	n.lastSeenMono = monoclock.Now()
	n.obj.SetLastSeenTimestamp(monoclock.RealtimeMicros())
	n.obj.SetLastSeenTimestampMonotonic(uint64(n.lastSeenMono / 1000))
}

// selinuxType returns the type of an SELinux context
// ("user:role:type:level"), or "" when context has none.
func selinuxType(context string) string {
	f := strings.SplitN(context, ":", 4)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}
