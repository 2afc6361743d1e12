// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/monoclock"
	"github.com/bluechi-go/bluechi/internal/tlslink"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// agentBusName is the destination of the controller's calls on the agent
// object, proxyBusName that of its calls on proxy objects, as upstream
// sends them (internal-protocol.md §2.3); agents do not filter on them.
const (
	agentBusName = bluechi.AgentBusName
	proxyBusName = bluechi.ControllerBusName
)

// PeerWriteTimeout bounds how long the writes to an agent that stopped
// reading may wait in its queue (wireconn's QueueWrites) before it is cut
// off; a queue that passes its bound cuts it off at once.
const PeerWriteTimeout = 10 * time.Second

// UnregisteredLimits bound what a peer may send before it registers
// (issue 13: 64 kB messages, a partial message stalled 10 s closes the
// connection); a registered one gets wireconn.RegisteredLimits. A
// variable for tests, set before Serve.
var UnregisteredLimits = wireconn.UnregisteredLimits

// peer is one agent connection, anonymous until it registers.
type peer struct {
	c     *Controller
	conn  *wireconn.Conn // set before the connection starts reading
	agent *daemonapi.InternalAgentWireClient
	ip    string // the peer's IP address; empty on a unix socket
	addr  string // the peer for the log (peerAddr)
	// label is the peer's security context where the kernel has one
	// (SO_PEERSEC: SELinux on a unix socket), otherwise empty.
	label string
	gone  sync.Once // disconnected runs once per peer
	node  *node     // guarded by c.mu; nil while anonymous
}

// admission bounds the connections that have not registered (the keys
// RegistrationTimeout and MaxUnregisteredPeers, 0 disabling each): all of
// the controller's listeners share it. handshaking counts the connections
// still in the SASL exchange, which count against the same maximum.
type admission struct {
	adm         wireconn.Admission
	timeout     time.Duration // 0: none
	handshaking atomic.Int64
}

// admission returns the controller's admission policy, made on first use.
func (c *Controller) admission() *admission {
	c.admOnce.Do(func() {
		a := &admission{adm: wireconn.Admission{Max: int(c.cfg.MaxUnregisteredPeers)}}
		if a.adm.Max <= 0 {
			a.adm.Max = math.MaxInt
		}
		a.timeout = time.Duration(c.cfg.RegistrationTimeout) * time.Millisecond
		a.adm.Timeout = a.timeout
		if a.timeout <= 0 {
			a.adm.Timeout = time.Duration(math.MaxInt64)
		}
		c.adm = a
	})
	return c.adm
}

// Serve accepts agents on l until ctx ends, then closes l and waits for
// the handshakes in progress. Accept errors are logged and never stop it.
func (c *Controller) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	defer l.Close()
	backoff := time.Duration(0)
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			c.logger().Warn("agent connection not accepted", "listener", l.Addr().String(), "error", err)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		backoff = 0
		a := c.admission()
		if n := a.handshaking.Load() + int64(a.adm.Unregistered()); n >= int64(a.adm.Max) {
			// Refused before the handshake, so that a flood of silent
			// connections costs neither a goroutine nor a buffer each.
			c.logger().Warn("agent connection refused: too many unregistered connections",
				"peer", peerAddr(nc), "max", a.adm.Max)
			nc.Close()
			continue
		}
		a.handshaking.Add(1)
		wg.Go(func() {
			defer a.handshaking.Add(-1)
			c.ServeConn(ctx, nc)
		})
	}
}

// peerAddr names a connection's remote end for the log: address and port
// on TCP, the socket path on a unix socket.
func peerAddr(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok && a != nil {
		return a.String()
	}
	return nc.LocalAddr().Network() + ":" + nc.LocalAddr().String()
}

// ServeConn authenticates an accepted agent socket (SASL EXTERNAL or
// ANONYMOUS), serves the registration object on it and reads from it
// until it ends. It returns once the connection is reading (or failed).
// Serve calls it for every connection; socket activation and tests may
// call it directly.
func (c *Controller) ServeConn(ctx context.Context, nc net.Conn) {
	a := c.admission()
	p := &peer{c: c, ip: transport.PeerIP(nc), addr: peerAddr(nc)}
	p.label, _ = transport.PeerSecurityContext(nc) // none: a node that requires one refuses it
	limits := UnregisteredLimits
	opts := wireconn.Options{
		Signal:       p.signal,
		Closed:       p.closed,
		BusShim:      true,
		Limits:       &limits,
		WriteTimeout: PeerWriteTimeout,
		// Writes to a peer that stopped reading are queued, not waited
		// for: the controller writes to its agents with its locks held,
		// and one such peer must not stall the others.
		QueueWrites: true,
	}
	if a.timeout > 0 {
		opts.HandshakeTimeout = min(a.timeout, transport.DefaultHandshakeTimeout)
	}
	conn, err := wireconn.Accept(ctx, nc, opts)
	if err != nil {
		c.logger().Warn("agent connection failed", "peer", peerAddr(nc), "error", err)
		return
	}
	p.conn = conn
	p.agent = daemonapi.NewInternalAgentWireClient(conn, agentBusName, string(daemonapi.InternalAgentPath))
	if err := a.adm.Admit(conn); err != nil {
		c.logger().Warn("agent connection refused: too many unregistered connections", "peer", p.addr, "max", a.adm.Max)
		conn.Close()
		return
	}
	// The registration object is there before the first message is read
	// (it may have come with the handshake).
	conn.Export(string(daemonapi.InternalControllerPath), daemonapi.InternalControllerWireInterface(&registrar{p: p}))
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.peers[p] = struct{}{}
	}
	c.mu.Unlock()
	if closed {
		conn.Close()
		return
	}
	c.logger().Debug("agent connected", "peer", p.addr)
	conn.Start()
}

// closed handles the end of the connection (Options.Closed): why it broke
// is logged (a node's disconnection is logged where it is handled, with
// the node's name; an orderly close needs no word), then the node is
// detached.
func (p *peer) closed(_ *wireconn.Conn, err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, wireconn.ErrClosed) {
		p.c.logger().Warn("agent connection closed", "peer", p.peerName(), "error", err)
	}
	p.c.disconnected(p)
}

// peerName names the peer for the log: its node, if it registered, and
// its address.
func (p *peer) peerName() string {
	p.c.mu.Lock()
	n := p.node
	p.c.mu.Unlock()
	if n != nil {
		return p.addr + " (node " + n.name + ")"
	}
	return p.addr
}

// registrar serves org.eclipse.bluechi.internal.Controller on one peer.
type registrar struct {
	daemonapi.UnimplementedInternalControllerServer
	p *peer
}

func (r *registrar) Register(ctx context.Context, name string) error {
	c := r.p.c
	for attempt := 0; ; attempt++ {
		stale, err := r.register(ctx, name)
		if _, ok := errors.AsType[*tlslink.NameError](err); ok {
			// Answered, then cut off: the certificate is not this node's.
			if call, ok := wireconn.CallFrom(ctx); ok {
				r.p.conn.ErrorCall(call, dbusrt.ErrorName(err), dbusrt.ErrorMessage(err))
			}
			r.p.conn.Close()
			return err
		}
		if stale == nil {
			if err == nil {
				// Trusted now: the D-Bus message limit instead of the
				// strict one, and its admission slot is free again.
				r.p.conn.MarkRegistered()
			}
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
		case <-stale.conn.Done():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		stale.conn.Close()
		c.disconnected(stale)
	}
}

// A registration that finds its node held by a closed connection waits at
// most staleWait for that connection's reader to take in its last
// messages and see the end, and gives up after maxStaleRetries such
// connections in a row.
const (
	staleWait       = 300 * time.Millisecond
	maxStaleRetries = 3
)

// register attaches the peer to the node called name. When the node is
// still held by a connection whose peer has gone, it returns that peer and
// changes nothing.
func (r *registrar) register(ctx context.Context, name string) (*peer, error) {
	p, c := r.p, r.p.c
	conn := p.conn
	c.emu.Lock()
	defer c.emu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.node != nil {
		return nil, dbusrt.NewError(dbusrt.ErrAddressInUse, "Can't register twice")
	}
	n := c.byName[name]
	if n == nil {
		c.logger().Warn("registration refused: unexpected node name", "name", name, "peer", p.ip)
		return nil, notFound("Unexpected node name")
	}
	if err := tlslink.CheckNodeName(conn.NetConn(), name); err != nil {
		// Register's reply is AccessDenied "Node name not allowed"; the
		// connection is closed once it is out (see Register).
		c.logger().Warn("registration refused: the TLS certificate does not name the node", "error", err)
		return nil, err
	}
	if n.selinuxType != "" && selinuxType(p.label) != n.selinuxType {
		c.logger().Warn("registration refused: the peer's SELinux type is not the node's RequiredSelinuxContext",
			"name", name, "peer", p.ip, "context", p.label, "required", n.selinuxType)
		return nil, dbusrt.NewError(dbusrt.ErrAccessDenied, "Node name not allowed")
	}
	if n.peer != nil {
		if old := n.peer; old.conn.Err() != nil || tlslink.PeerClosed(old.conn.NetConn()) {
			return old, nil
		}
		c.logger().Warn("registration refused: node already connected", "node", name, "peer", p.ip)
		return nil, dbusrt.NewError(dbusrt.ErrAddressInUse, "The node is already connected")
	}
	if c.closed {
		return nil, failed("Controller is shutting down")
	}
	if conn.Err() != nil {
		// The connection dropped while this call waited: disconnected()
		// already ran and found nothing to detach, so attaching now would
		// leave the node online on a dead connection.
		return nil, failed("Connection closed during registration")
	}
	// The registered limits before the subscription replay: it may pass
	// the few kB a peer gets queued before it registers.
	conn.SetLimits(wireconn.RegisteredLimits)
	n.attachLocked(p)
	c.registeredLocked(n, p)
	// Registered connections are not asked to register again.
	conn.Unexport(string(daemonapi.InternalControllerPath), daemonapi.InternalControllerInterface)
	c.updateStatusLocked()
	if c.cfg.HeartbeatInterval > 0 {
		// A first heartbeat right away arms the agent's liveness check
		// (our agents arm it on the first controller heartbeat).
		daemonapi.EmitInternalControllerHeartbeatWire(conn, string(daemonapi.InternalControllerPath), daemonapi.InternalControllerHeartbeatSignal{})
	}
	c.logger().Info("node registered", "node", name, "peer", p.ip)
	return nil, nil
}

// disconnected handles the loss of a peer connection, once.
func (c *Controller) disconnected(p *peer) {
	p.gone.Do(func() { c.detachPeer(p) })
}

// detachPeer runs the steps of internal-protocol.md §10 in order: the
// virtual monitor events and the node's proxy records (goneLocked), its
// jobs, then the node's and the controller's Status. All of it holds
// c.emu, which registration and shutdown take first: the node cannot
// register again, nor the controller report down, halfway through.
func (c *Controller) detachPeer(p *peer) {
	c.emu.Lock()
	defer c.emu.Unlock()
	c.mu.Lock()
	delete(c.peers, p)
	n := p.node
	detached := n != nil && n.peer == p
	var jobs []*job
	if detached {
		jobs = n.detachLocked()
	}
	c.mu.Unlock()
	if n != nil {
		c.goneLocked(n, p)
	}
	if !detached {
		return
	}
	c.dropJobs(jobs, ResultDisconnected)
	c.mu.Lock()
	n.offlineLocked()
	c.updateStatusLocked()
	c.mu.Unlock()
	c.logger().Info("node disconnected", "node", n.name)
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
