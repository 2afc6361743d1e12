package controller

import (
	"context"
	"net"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
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
	c    *Controller
	srv  *dbusrt.Server
	ip   string
	conn *dbus.Conn
	reg  *bluechi.InternalControllerObject
	node *node // guarded by c.mu; nil while anonymous
}

func peerFromConn(conn *dbus.Conn) *peer {
	p, _ := conn.Context().Value(peerKey{}).(*peer)
	return p
}

// newPeer prepares the object server of a new connection, with the
// registration object exported before godbus reads the first message.
func (c *Controller) newPeer(nc net.Conn) *peer {
	p := &peer{c: c, srv: dbusrt.NewServer(), ip: transport.PeerIP(nc)}
	p.srv.ServeBusShim()
	p.srv.SetOrdered() // calls in wire order; a flooding peer is refused past the queue limit
	reg, err := bluechi.ExportInternalControllerOn(p.srv, bluechi.InternalControllerPath, &registrar{p: p}, bluechi.InternalControllerProperties{})
	if err != nil {
		c.logger().Error("export registration object", "error", err)
	}
	p.reg = reg
	return p
}

// start runs once the connection is authenticated.
func (p *peer) start(conn *dbus.Conn) {
	p.srv.Bind(conn)
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
	p.c.logger().Debug("agent connected", "peer", p.ip)
	go func() {
		<-conn.Context().Done()
		p.c.disconnected(p)
	}()
}

// registrar serves org.eclipse.bluechi.internal.Controller on one peer.
type registrar struct {
	bluechi.UnimplementedInternalControllerServer
	p *peer
}

func (r *registrar) Register(ctx context.Context, name string) error {
	p, c := r.p, r.p.c
	conn := dbusrt.ConnFrom(ctx)
	c.emu.Lock()
	defer c.emu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.node != nil {
		return dbusrt.NewError(dbusrt.ErrAddressInUse, "Can't register twice")
	}
	n := c.byName[name]
	if n == nil {
		c.logger().Warn("registration refused: unexpected node name", "name", name, "peer", p.ip)
		return notFound("Unexpected node name")
	}
	if n.peer != nil {
		c.logger().Warn("registration refused: node already connected", "node", name, "peer", p.ip)
		return dbusrt.NewError(dbusrt.ErrAddressInUse, "The node is already connected")
	}
	if c.closed {
		return failed("Controller is shutting down")
	}
	if conn.Context().Err() != nil {
		// The connection dropped while this call waited: disconnected()
		// already ran and found nothing to detach, so attaching now would
		// leave the node online on a dead connection.
		return failed("Connection closed during registration")
	}
	if p.conn == nil {
		p.conn = conn
	}
	if err := n.attachLocked(p, conn); err != nil {
		return failed("%s", err.Error())
	}
	c.registeredLocked(n, p)
	if p.reg != nil {
		p.reg.Unexport()
	}
	c.updateStatusLocked()
	if c.cfg.HeartbeatInterval > 0 {
		// A first heartbeat right away arms the agent's liveness check
		// (our agents arm it on the first controller heartbeat).
		bluechi.EmitInternalControllerHeartbeat(conn, "", bluechi.InternalControllerPath, bluechi.InternalControllerHeartbeatSignal{})
	}
	c.logger().Info("node registered", "node", name, "peer", p.ip)
	return nil
}

// disconnected handles the loss of a peer connection.
func (c *Controller) disconnected(p *peer) {
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
