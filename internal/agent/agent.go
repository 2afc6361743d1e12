// SPDX-License-Identifier: Apache-2.0

// Package agent is bluechi-agent's core: it connects to the controller,
// registers its node, keeps the connection alive (heartbeats, reconnects
// forever), executes the controller's requests on the local systemd and
// relays job progress back.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/logging"
	"github.com/bluechi-go/bluechi/internal/monoclock"
	"github.com/bluechi-go/bluechi/internal/systemd"
	"github.com/bluechi-go/bluechi/internal/tlslink"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// controllerBusName is the destination used for calls to the controller.
const controllerBusName = bluechi.ControllerBusName

// RegisterTimeout bounds one registration attempt.
const RegisterTimeout = 10 * time.Second

// checkPeriod is how often heartbeat thresholds are checked.
const checkPeriod = 250 * time.Millisecond

// SystemdCallTimeout bounds every call to systemd.
const SystemdCallTimeout = 30 * time.Second

// Systemd is what the agent needs of the local systemd (*systemd.Client).
type Systemd interface {
	StartUnit(ctx context.Context, name, mode string, track func(dbus.ObjectPath)) (dbus.ObjectPath, error)
	StopUnit(ctx context.Context, name, mode string, track func(dbus.ObjectPath)) (dbus.ObjectPath, error)
	RestartUnit(ctx context.Context, name, mode string, track func(dbus.ObjectPath)) (dbus.ObjectPath, error)
	ReloadUnit(ctx context.Context, name, mode string, track func(dbus.ObjectPath)) (dbus.ObjectPath, error)
	StartTransientUnit(ctx context.Context, name, mode string, props []bluechi.UnitProperty, aux []bluechi.AuxUnit) (dbus.ObjectPath, error)
	CancelJob(ctx context.Context, job dbus.ObjectPath) error
	FreezeUnit(ctx context.Context, name string) error
	ThawUnit(ctx context.Context, name string) error
	KillUnit(ctx context.Context, name, who string, signal int32) error
	GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error)
	GetUnitProperty(ctx context.Context, name, iface, property string) (dbus.Variant, error)
	SetUnitProperties(ctx context.Context, name string, runtime bool, props []bluechi.UnitProperty) error
	EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (bool, []bluechi.UnitFileChange, error)
	DisableUnitFiles(ctx context.Context, files []string, runtime bool) ([]bluechi.UnitFileChange, error)
	ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error)
	// ListUnitsRaw is ListUnits as the reply's bytes (systemd.Client).
	ListUnitsRaw(ctx context.Context) ([]byte, error)
	ListUnitFiles(ctx context.Context) ([]bluechi.UnitFileInfo, error)
	GetUnitFileState(ctx context.Context, file string) (string, error)
	Reload(ctx context.Context) error
	ResetFailed(ctx context.Context) error
	ResetFailedUnit(ctx context.Context, name string) error
	GetDefaultTarget(ctx context.Context) (string, error)
	SetDefaultTarget(ctx context.Context, target string, force bool) ([]bluechi.UnitFileChange, error)
	Events() <-chan systemd.Event
}

// Agent is one running agent.
type Agent struct {
	cfg *config.Agent
	log *logging.Logger
	sd  Systemd
	pub *daemonapi.AgentObject // nil when not published on a bus
	// seen is when the controller was last heard of (monoclock, ns): set
	// by touch, read by the liveness check.
	seen atomic.Int64

	tlsd *tlslink.Dialer // UseTLS: set by UseTLS before Run, then read only

	// mu guards sess, jobs, byID, early, switched, address, resolveHost,
	// freshAddress and each session's metrics.
	mu       sync.Mutex
	sess     *session
	jobs     map[dbus.ObjectPath][]*trackedJob // systemd merges requests: one path, several ids
	byID     map[jobKey]*trackedJob
	early    map[dbus.ObjectPath]string // JobRemoved results for jobs not tracked yet
	switched chan struct{}              // closed by SwitchController to cut the connection
	// address (under mu) is the controller address of the next connection
	// attempt. resolveHost: it comes from ControllerHost and is resolved
	// again before each attempt (until SwitchController sets one);
	// freshAddress: it was resolved in New, and the first attempt uses it
	// as it is.
	address                   string
	resolveHost, freshAddress bool
	// addrMu serialises changes of address with their announcement as
	// ControllerAddress (SwitchController, a new resolution); taken
	// before mu.
	addrMu sync.Mutex

	// unitMu guards the unit table and the subscriptions of the session
	// that receives unit events; it is held while unit events are sent so
	// that virtual and real events leave in order.
	unitMu sync.Mutex
	units  map[string]*unitState // loaded units
	usess  *session              // session receiving unit events, nil between connections

	// proxyMu guards the proxies (proxy.go) and the session they are
	// exported on, which is set only once the node is registered.
	proxyMu sync.Mutex
	proxies map[proxyKey]*proxy
	psess   *session
	// proxiesClosed is set at shutdown: no new proxies from then on.
	proxiesClosed bool
}

// session is one controller connection. Subscriptions and the metrics
// switch belong to it, so a new connection starts without them and the
// controller's replay yields fresh virtual events.
type session struct {
	conn   *wireconn.Conn
	out    *batchConn  // its socket: real unit events wait there (queue)
	queued atomic.Bool // something was queued since the last flush
	heard  atomic.Bool // a controller heartbeat arrived: the liveness check is armed

	subs     map[string]bool // guarded by Agent.unitMu
	wildcard bool            // guarded by Agent.unitMu

	metrics bool // guarded by Agent.mu: the metrics object is exported
}

// trackedJob links a systemd job to the controller's job id.
type trackedJob struct {
	sess   *session // the controller connection that asked; ids are its own
	id     uint32
	path   dbus.ObjectPath
	unit   string
	method string
	start  time.Time
	// cancelling is set while a JobCancel of this job is on its way to
	// systemd: further ones for it answer at once and start nothing.
	cancelling atomic.Bool
}

// jobKey names a job: controller job ids are only unique per connection
// (a restarted controller counts from 1 again).
type jobKey struct {
	sess *session
	id   uint32
}

// UseTLS makes every TCP connection to the controller run over d (mutual
// TLS); call it before Run.
func (a *Agent) UseTLS(d *tlslink.Dialer) { a.tlsd = d }

// New prepares an agent. api, if not nil, serves the public
// org.eclipse.bluechi.Agent object on the bus (the caller requests the
// name).
func New(cfg *config.Agent, log *logging.Logger, sd Systemd, api *dbusrt.Server) (*Agent, error) {
	address, resolved, err := initialAddress(cfg)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log, sd: sd, address: address, resolveHost: resolved, freshAddress: resolved,
		jobs: map[dbus.ObjectPath][]*trackedJob{}, byID: map[jobKey]*trackedJob{}, early: map[dbus.ObjectPath]string{},
		switched: make(chan struct{}), units: map[string]*unitState{}, proxies: map[proxyKey]*proxy{}}
	if api != nil {
		pub, err := daemonapi.ExportAgentOn(api, bluechi.AgentPath, &publicAPI{a: a}, bluechi.AgentProperties{
			Status: "offline", LogLevel: log.Level(), LogTarget: log.Target(), ControllerAddress: a.address,
		})
		if err != nil {
			return nil, err
		}
		a.pub = pub
	}
	return a, nil
}

func (a *Agent) slog() *slog.Logger { return a.log.Slog() }

// Run connects and reconnects to the controller until ctx ends. It never
// returns because the controller is away.
func (a *Agent) Run(ctx context.Context) error {
	// The first dial goes on while the unit table is seeded: each waits
	// on its peer's answers, and the node is online sooner.
	a.mu.Lock()
	firstSwitched := a.switched // taken before the dial, as in the loop
	a.mu.Unlock()
	first := make(chan dialed, 1)
	go func() { sess, err := a.dial(ctx); first <- dialed{sess, err} }()
	defer func() { // unless the loop took it
		if first != nil {
			if d := <-first; d.sess != nil {
				d.sess.conn.Close()
			}
		}
	}()
	if err := a.seedUnits(ctx); err != nil {
		return err
	}
	a.restoreProxies()
	events := make(chan struct{})
	defer func() { <-events }()
	go func() { defer close(events); a.events(ctx) }()
	interval := time.Duration(a.cfg.HeartbeatInterval) * time.Millisecond
	var backoff time.Duration
	failures := int64(0)
	for ctx.Err() == nil {
		var sess *session
		var err error
		var switched chan struct{}
		if first != nil {
			d := <-first
			first, switched, sess, err = nil, firstSwitched, d.sess, d.err
		} else {
			a.mu.Lock()
			switched = a.switched // a switch during connect must still end this session
			a.mu.Unlock()
			sess, err = a.dial(ctx)
		}
		if err == nil {
			err = a.register(ctx, sess)
		}
		if err != nil {
			failures++
			if a.cfg.ConnectionRetryCountUntilQuiet > 0 && failures == a.cfg.ConnectionRetryCountUntilQuiet {
				a.slog().Warn("controller still unreachable; further attempts are not logged", "attempts", failures)
				a.log.SetQuiet(true)
			} else {
				a.slog().Warn("cannot connect to controller", "address", a.currentAddress(), "error", err)
			}
			if interval <= 0 {
				// Upstream never retries without a timer; we retry every 2 s.
				interval = 2 * time.Second
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), interval)
			if !a.sleep(ctx, backoff) {
				break
			}
			continue
		}
		failures, backoff = 0, 0
		a.serve(ctx, sess, switched)
		// Connection lost: retry at once (backoff 0 for the first attempt).
	}
	a.setOffline()
	a.dropProxies()
	return nil
}

// sleep waits d or until ctx ends or the controller is switched.
func (a *Agent) sleep(ctx context.Context, d time.Duration) bool {
	a.mu.Lock()
	sw := a.switched
	a.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-sw:
		return true
	case <-t.C:
		return true
	}
}

func (a *Agent) currentAddress() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.address
}

// dialed is the outcome of dial.
type dialed struct {
	sess *session
	err  error
}

// dial opens a new session's connection to the controller; register
// starts it.
func (a *Agent) dial(ctx context.Context) (*session, error) {
	so := transport.SocketOptions{
		KeepAliveTime: time.Duration(a.cfg.KeepAlive.Time) * time.Second, KeepAliveInterval: time.Duration(a.cfg.KeepAlive.Interval) * time.Second,
		KeepAliveCount: int(a.cfg.KeepAlive.Count), IPReceiveErrors: a.cfg.IPReceiveErrors,
	}
	dctx, cancel := context.WithTimeout(ctx, RegisterTimeout)
	defer cancel()
	address, tlsName, err := a.dialAddress(dctx)
	if err != nil {
		return nil, err
	}
	sess := &session{subs: map[string]bool{}}
	conn, out, err := dialController(dctx, address, tlsName, so, a.tlsd, wireconn.Options{
		Signal: func(_ *wireconn.Conn, m *wire.Message) { a.controllerSignal(sess, m) },
	})
	if err != nil {
		return nil, err
	}
	sess.conn, sess.out = conn, out
	return sess, nil
}

// register exports the internal agent object on a dialed session, starts
// its connection and registers the node; on an error the connection is
// closed.
func (a *Agent) register(ctx context.Context, sess *session) error {
	dctx, cancel := context.WithTimeout(ctx, RegisterTimeout)
	defer cancel()
	conn := sess.conn
	// ListUnits passes systemd's answer on as bytes: decoding and encoding
	// a few hundred units costs more than systemd takes to list them.
	conn.Export(string(daemonapi.InternalAgentPath), daemonapi.InternalAgentWireInterface(&internalAPI{a: a, sess: sess},
		wireconn.RawMethod{Member: daemonapi.InternalAgentMethodListUnits, Call: a.listUnitsRaw}))
	// The controller subscribes before it answers Register: unit events
	// go to this connection from now on.
	a.setUnitSession(sess)
	conn.Start()
	fail := func(err error) error {
		conn.Close()
		a.endUnitSession(sess)
		return err
	}
	// The session is current before Register returns: the controller may
	// start jobs right after its reply, and their JobDone must not be lost.
	a.mu.Lock()
	a.sess = sess
	a.mu.Unlock()
	reg := daemonapi.NewInternalControllerWireClient(conn, controllerBusName, string(daemonapi.InternalControllerPath))
	if err := reg.Register(dctx, a.cfg.NodeName); err != nil {
		a.mu.Lock()
		if a.sess == sess {
			a.sess = nil
		}
		a.mu.Unlock()
		return fail(fmt.Errorf("register as %q: %w", a.cfg.NodeName, err))
	}
	a.touch()
	// Logging silenced after failed attempts (ConnectionRetryCountUntilQuiet)
	// is restored first, so that the registration itself is logged.
	a.log.SetQuiet(a.cfg.Log.IsQuiet)
	if a.pub != nil {
		a.pub.SetDisconnectTimestamp(0)
		a.pub.SetDisconnectTimestampMonotonic(0)
		a.pub.SetStatus("online")
	}
	a.slog().Info("registered with controller", "node", a.cfg.NodeName, "address", a.currentAddress())
	a.attachProxies(sess)
	return nil
}

// controllerSignal handles a signal from the controller (on the
// connection's reader goroutine): its heartbeat.
func (a *Agent) controllerSignal(sess *session, m *wire.Message) {
	if m.Interface != daemonapi.InternalControllerInterface || m.Member != daemonapi.InternalControllerSignalHeartbeat {
		return
	}
	if _, err := daemonapi.DecodeInternalControllerHeartbeat(m); err != nil {
		return
	}
	if !sess.heard.Swap(true) {
		a.slog().Debug("controller sends heartbeats: liveness check armed")
	}
	a.touch()
}

// listUnitsRaw answers the controller's ListUnits with systemd's reply
// bytes (a RawMethod: on the reader goroutine, the work queued in order).
func (a *Agent) listUnitsRaw(c *wireconn.Conn, m *wire.Message) {
	call := wireconn.CallOf(m)
	if m.Signature != daemonapi.InternalAgentListUnitsInSig {
		c.ErrorCall(call, wireconn.ErrInvalidArgs, "Invalid arguments for ListUnits")
		return
	}
	c.Serve(call, func(ctx context.Context) {
		body, err := a.sd.ListUnitsRaw(ctx)
		if err != nil {
			name := dbusrt.ErrorName(err)
			if name == "" {
				name = dbusrt.ErrFailed
			}
			c.ErrorCall(call, name, dbusrt.ErrorMessage(err))
			return
		}
		c.ReplyCall(call, daemonapi.InternalAgentListUnitsOutSig, body)
	})
}

// serve keeps a registered session alive until it is lost.
func (a *Agent) serve(ctx context.Context, sess *session, sw <-chan struct{}) {
	interval := time.Duration(a.cfg.HeartbeatInterval) * time.Millisecond
	threshold := time.Duration(a.cfg.ControllerHeartbeatThreshold) * time.Millisecond
	armed := a.cfg.ControllerHeartbeatThresholdExplicit()
	// Liveness is checked often; heartbeats go out every interval.
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(min(interval, checkPeriod))
		defer t.Stop()
		tick = t.C
	}
	lost := func(why string) {
		a.slog().Warn("lost controller connection", "reason", why)
	}
	var lastSent time.Duration
	// A heartbeat is written on a goroutine of its own, one at a time: a
	// write that blocks (a controller that stopped reading, its socket
	// buffers full) must not stop the liveness check, which closes the
	// connection and so ends the write.
	sent := make(chan error, 1)
	sending := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-sw:
			lost("switching controller")
			break loop
		case <-sess.conn.Done():
			lost("connection closed")
			break loop
		case err := <-sent:
			sending = false
			if err != nil {
				lost(err.Error())
				break loop
			}
		case <-tick:
			now := monoclock.Now()
			// The default threshold is armed only once the controller sends
			// heartbeats at all (upstream controllers do not by default); a
			// threshold the user configured is armed at once.
			if threshold > 0 && (armed || sess.heard.Load()) && now-a.lastSeen() > threshold {
				lost("controller heartbeat timeout")
				break loop
			}
			if !sending && now-lastSent >= interval {
				lastSent, sending = now, true
				go func() {
					sent <- daemonapi.EmitInternalAgentHeartbeatWire(sess.conn, string(daemonapi.InternalAgentPath), daemonapi.InternalAgentHeartbeatSignal{})
				}()
			}
		}
	}
	sess.conn.Close()
	a.mu.Lock()
	if a.sess == sess {
		a.sess = nil
	}
	a.mu.Unlock()
	a.detachProxies(sess)
	a.endUnitSession(sess)
	a.setOffline()
}

func (a *Agent) setOffline() {
	if a.pub == nil {
		return
	}
	if a.pub.Status() == "online" {
		a.pub.SetDisconnectTimestamp(monoclock.RealtimeMicros())
		a.pub.SetDisconnectTimestampMonotonic(monoclock.Micros())
	}
	a.pub.SetStatus("offline")
}

// touch records that the controller was heard of: for the liveness check
// and, when published, in the LastSeenTimestamp properties.
func (a *Agent) touch() {
	a.seen.Store(int64(monoclock.Now()))
	if a.pub == nil {
		return
	}
	a.pub.SetLastSeenTimestamp(monoclock.RealtimeMicros())
	a.pub.SetLastSeenTimestampMonotonic(monoclock.Micros())
}

// lastSeen returns when the controller was last heard of (monotonic).
func (a *Agent) lastSeen() time.Duration { return time.Duration(a.seen.Load()) }

// current returns the registered session, or nil.
func (a *Agent) current() *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sess
}

// SwitchController makes the agent drop its connection and reconnect to addr.
func (a *Agent) SwitchController(addr string) error {
	a.addrMu.Lock()
	defer a.addrMu.Unlock()
	a.mu.Lock()
	if addr == a.address {
		a.mu.Unlock()
		return dbusrt.NewError(dbusrt.ErrFailed, "Controller address is already %s", addr)
	}
	if _, err := transport.ParseAddress(addr); err != nil {
		a.mu.Unlock()
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "Invalid controller address %q: %v", addr, err)
	}
	a.address, a.resolveHost, a.freshAddress = addr, false, false
	a.mu.Unlock()
	// The new address is announced before the disconnect it causes:
	// bluechi-is-online --switch-timeout tells a switch from a failure by
	// this order.
	if a.pub != nil {
		a.pub.SetControllerAddress(addr)
	}
	a.mu.Lock()
	close(a.switched)
	a.switched = make(chan struct{})
	a.mu.Unlock()
	return nil
}

var _ Systemd = (*systemd.Client)(nil)
