// SPDX-License-Identifier: Apache-2.0

// Package systemd is the agent's adapter to the local systemd manager over
// D-Bus: the calls of internal-protocol.md §7 and an ordered, event-driven
// stream of systemd's signals (no polling).
//
// It talks to systemd on one connection of our own (internal/wireconn)
// through the generated wire clients of idl/systemd, either through a
// message bus (user mode: the session bus; system mode without root: the
// system bus) or directly on systemd's private socket (system mode as
// root: /run/systemd/private; a user manager has one at
// $XDG_RUNTIME_DIR/systemd/private). go-systemd's dbus package is not
// used: it opens two connections
// per Conn, loses the D-Bus signatures of properties (struct values come back
// as []any), polls ListUnits for subscriptions, escapes object paths
// differently from systemd for bytes below 0x10, and lacks several Manager
// methods (GetDefaultTarget, SetDefaultTarget, ResetFailed, GetUnitFileState).
//
// Errors from systemd are returned unchanged as dbus.Error values (name and
// message intact) so that callers can forward them verbatim; a call that runs
// out of time returns org.freedesktop.DBus.Error.NoReply.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/busconn"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
	"github.com/godbus/dbus/v5"
)

// Names on systemd's side.
const (
	BusName          = daemonapi.Systemd1ManagerBusName
	ManagerPath      = daemonapi.Systemd1ManagerPath
	ManagerInterface = daemonapi.Systemd1ManagerInterface
	UnitInterface    = daemonapi.Systemd1UnitInterface
	JobInterface     = daemonapi.Systemd1JobInterface
	UnitPathPrefix   = daemonapi.Systemd1UnitPathPrefix
	JobPathPrefix    = daemonapi.Systemd1JobPathPrefix
	PropertiesIface  = daemonapi.DBusPropertiesInterface

	// PrivateSocket is the system manager's private socket (root only).
	PrivateSocket = "/run/systemd/private"
	// DefaultCallTimeout bounds every call whose context has no deadline.
	DefaultCallTimeout = 30 * time.Second
	// ErrNoReply names the error returned when a call timed out.
	ErrNoReply = "org.freedesktop.DBus.Error.NoReply"
	// ErrNoSuchUnit is systemd's error for an unknown unit.
	ErrNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
)

// Options choose how to reach systemd.
type Options struct {
	// Address is a D-Bus address: of a message bus, or (with Private) of
	// systemd's private socket. Empty: chosen by System.
	Address string
	// System selects system-mode defaults for an empty Address: as root
	// systemd's private socket /run/systemd/private, otherwise the system
	// bus. Without System an empty Address means the user manager's private
	// socket $XDG_RUNTIME_DIR/systemd/private when it is ours, otherwise
	// DBUS_SESSION_BUS_ADDRESS.
	System bool
	// Private says that Address is systemd's private socket: a direct
	// connection, no Hello, no AddMatch (systemd sends its signals to every
	// subscribed private connection).
	Private bool
	// CallTimeout bounds calls whose context has no deadline
	// (DefaultCallTimeout if zero).
	CallTimeout time.Duration
	// EventBuffer is the capacity of the Events channel (default 1024). The
	// stream never drops events: a full channel delays later events, while
	// the connection keeps reading (events queue without bound in between,
	// so that replies keep arriving while an event waits for its job's
	// caller).
	EventBuffer int
}

// Client is a connection to one systemd manager.
type Client struct {
	conn    *wireconn.Conn
	mgr     *daemonapi.Systemd1ManagerWireClient
	unique  string // our unique name on a bus; "" on the private socket
	timeout time.Duration
	events  chan Event
	queue   *eventQueue
	closing chan struct{}
	once    sync.Once

	// gateHook, if set (tests), is called when the event stream starts
	// waiting for the caller of a job call.
	gateHook func(job dbus.ObjectPath)

	// owner is systemd's unique name on a bus (nil on the private socket,
	// where only systemd can send).
	owner atomic.Pointer[string]

	mu    sync.Mutex
	gates map[dbus.ObjectPath]map[*pendingJob]bool // guarded by mu: job path -> calls whose caller has not finished
}

// pendingJob is a job-creating call whose reply has arrived and whose
// caller has not finished with the job path yet. Events about the job path
// wait behind its gate, so that a fast JobRemoved can never overtake the
// reply that announced the job. The gate is opened on the connection's
// reader goroutine as the reply is read, before any later signal is.
type pendingJob struct {
	path dbus.ObjectPath
	gate chan struct{} // closed when the caller is done
}

// Connect opens a connection to systemd and starts the event stream (systemd
// only sends most signals after Subscribe).
func Connect(ctx context.Context, opts Options) (*Client, error) {
	addr, private := opts.Address, opts.Private
	if addr == "" {
		userPrivate := ""
		if !opts.System {
			userPrivate = userPrivateSocket()
		}
		switch {
		case opts.System && os.Geteuid() == 0:
			addr, private = "unix:path="+PrivateSocket, true
		case opts.System:
			addr = os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
			if addr == "" {
				addr = "unix:path=/run/dbus/system_bus_socket"
			}
		case userPrivate != "":
			addr, private = "unix:path="+userPrivate, true
		default:
			addr = os.Getenv("DBUS_SESSION_BUS_ADDRESS")
			if addr == "" {
				return nil, errors.New("systemd: DBUS_SESSION_BUS_ADDRESS is not set")
			}
		}
	}
	c := &Client{
		timeout: opts.CallTimeout,
		gates:   map[dbus.ObjectPath]map[*pendingJob]bool{},
	}
	if c.timeout <= 0 {
		c.timeout = DefaultCallTimeout
	}
	buf := opts.EventBuffer
	if buf <= 0 {
		buf = 1024
	}
	c.events = make(chan Event, buf)
	c.closing = make(chan struct{})
	c.queue = newEventQueue()

	// The whole handshake goes out in one write (wireconn's client): the
	// private socket is an sd-bus server, and sd-bus 252 left a first call
	// that arrived in one read with BEGIN unprocessed until more bytes
	// came.
	wopts := wireconn.Options{
		Mechanism: transport.MechanismExternal,
		Signal:    c.signal,
		Closed:    func(*wireconn.Conn, error) { c.queue.close() },
	}
	if private {
		wopts.VerifyPeer = checkPeerUID
	}
	conn, err := wireconn.Dial(ctx, addr, wopts)
	if err != nil {
		return nil, fmt.Errorf("systemd: connect %s: %w", addr, err)
	}
	c.conn = conn
	c.mgr = daemonapi.NewSystemd1ManagerWireClient(conn, BusName, string(ManagerPath))
	conn.Start()
	fail := func(what string, err error) (*Client, error) {
		conn.Close()
		return nil, fmt.Errorf("systemd: %s on %s: %w", what, addr, err)
	}
	if !private {
		bus := daemonapi.NewDBusWireClient(conn, daemonapi.DBusBusName, string(daemonapi.DBusPath))
		if c.unique, err = await(c, ctx, bus.GoHello); err != nil {
			return fail("hello", err)
		}
		for _, rule := range busMatches() {
			if err := await0(c, ctx, func(ctx context.Context, done func(error)) { bus.GoAddMatch(ctx, rule, done) }); err != nil {
				return fail("add match", err)
			}
		}
		// On a bus anyone may send a signal to us: only systemd's own
		// unique name is believed (see dispatch).
		owner, err := await(c, ctx, func(ctx context.Context, done func(string, error)) { bus.GoGetNameOwner(ctx, BusName, done) })
		if err != nil {
			return fail("find systemd on the bus", err)
		}
		c.owner.Store(&owner)
	}
	go c.dispatch()
	return c, nil
}

// busMatches are the match rules for systemd's signals (and changes of
// its name's owner) on a message bus.
func busMatches() []string {
	props := func(prefix string) string {
		return busconn.MatchRule{Sender: BusName, Interface: PropertiesIface, Member: daemonapi.DBusPropertiesSignalPropertiesChanged,
			PathNamespace: strings.TrimSuffix(prefix, "/")}.String()
	}
	return []string{
		busconn.MatchRule{Sender: BusName, Path: string(ManagerPath), Interface: ManagerInterface}.String(),
		props(UnitPathPrefix),
		props(JobPathPrefix),
		busconn.MatchRule{Sender: daemonapi.DBusBusName, Interface: daemonapi.DBusInterface,
			Member: daemonapi.DBusSignalNameOwnerChanged, Arg0: BusName}.String(),
	}
}

// userPrivateSocket returns the user manager's private socket if there is
// one in $XDG_RUNTIME_DIR owned by this user. Talking to it directly spares
// every call and signal the hop through the session bus, as the system
// manager's private socket does in system mode.
func userPrivateSocket() string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, "systemd", "private")
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return ""
	}
	return p
}

// Conn is the underlying connection (for calls this package lacks).
func (c *Client) Conn() *wireconn.Conn { return c.conn }

// UniqueName is the client's unique name on a message bus ("" on a
// private socket).
func (c *Client) UniqueName() string { return c.unique }

// Close ends the connection; the Events channel is closed after the last
// event.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.closing) })
	return c.conn.Close()
}

// Done is closed when the connection has ended (Close or lost).
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// openGate holds back the events about path until closeGate. It runs on
// the reader goroutine, with the reply that announced the job.
func (c *Client) openGate(path dbus.ObjectPath) *pendingJob {
	pj := &pendingJob{path: path, gate: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Several calls can get the same job path: systemd merges a request
	// into a job already queued for the unit and returns that job.
	if c.gates[path] == nil {
		c.gates[path] = map[*pendingJob]bool{}
	}
	c.gates[path][pj] = true
	return pj
}

// closeGate releases the events held back by pj.
func (c *Client) closeGate(pj *pendingJob) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if set := c.gates[pj.path]; set != nil {
		delete(set, pj)
		if len(set) == 0 {
			delete(c.gates, pj.path)
		}
	}
	close(pj.gate)
}

// waitGate blocks while a job call that announced path is still being
// handled by its caller.
func (c *Client) waitGate(path dbus.ObjectPath) {
	for {
		var pj *pendingJob
		c.mu.Lock()
		for p := range c.gates[path] {
			pj = p
			break
		}
		c.mu.Unlock()
		if pj == nil {
			return
		}
		if c.gateHook != nil {
			c.gateHook(path)
		}
		select {
		case <-pj.gate:
		case <-c.conn.Done():
			return
		}
	}
}

// withTimeout applies the default call timeout to a context without a
// deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// release lets a caller serving requests in order start its next one: the
// request to systemd is on the wire, only its reply is awaited.
func release(ctx context.Context) {
	wireconn.Release(ctx) // a handler of a peer link (the agent's controller connection)
	dbusrt.Release(ctx)   // a handler of an ordered godbus server
}

// callError turns what ended a call into the error this package returns:
// systemd's error replies as dbus.Error values (name and message intact),
// a deadline as NoReply.
func callError(err error) error {
	var we *wireconn.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we):
		e := dbus.Error{Name: we.Name}
		if we.Message != "" {
			e.Body = []any{we.Message}
		}
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return dbus.Error{Name: ErrNoReply, Body: []any{"Method call timed out"}}
	}
	return fmt.Errorf("systemd: %w", err)
}

// invoke sends a method call and waits for its reply.
func (c *Client) invoke(ctx context.Context, req *wireconn.Request) (*wireconn.Reply, error) {
	if req.Destination == "" {
		req.Destination = BusName // sd-bus drops messages with an empty one
	}
	return await(c, ctx, func(ctx context.Context, done func(*wireconn.Reply, error)) {
		c.conn.Go(ctx, req, func(m *wire.Message, err error) {
			if err != nil {
				done(nil, err)
				return
			}
			done(&wireconn.Reply{Signature: m.Signature, Body: append([]byte(nil), m.Body...), BigEndian: m.BigEndian}, nil)
		})
	})
}

// call sends a method call with args encoded by godbus's codec and
// returns the reply body decoded by it.
func (c *Client) call(ctx context.Context, path dbus.ObjectPath, iface, member string, args ...any) ([]any, error) {
	sig, body, err := encodeArgs(args...)
	if err != nil {
		return nil, err
	}
	r, err := c.invoke(ctx, &wireconn.Request{Path: string(path), Interface: iface, Member: member, Signature: sig, Body: body})
	if err != nil {
		return nil, err
	}
	return decodeBody(r.Signature, r.Body, r.BigEndian)
}

// Call is the escape hatch for any method of systemd: it returns the reply
// body as received (variants keep their signatures).
func (c *Client) Call(ctx context.Context, path dbus.ObjectPath, iface, member string, args ...any) ([]any, error) {
	return c.call(ctx, path, iface, member, args...)
}

// await starts a call with start (which puts it on the wire and arranges
// for done to get its result), releases an ordered caller and waits for
// the result. The default timeout applies; errors are as callError makes
// them.
func await[T any](c *Client, ctx context.Context, start func(ctx context.Context, done func(T, error))) (T, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, callError(err) // nothing is sent
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	start(ctx, func(v T, err error) { ch <- result{v, err} })
	release(ctx)
	r := <-ch
	return r.v, callError(r.err)
}

// await0 is await for calls without results.
func await0(c *Client, ctx context.Context, start func(ctx context.Context, done func(error))) error {
	_, err := await(c, ctx, func(ctx context.Context, done func(struct{}, error)) {
		start(ctx, func(err error) { done(struct{}{}, err) })
	})
	return err
}

// jobCall runs a job-creating Manager method started by start. track (may
// be nil) runs with the job path before any event about the job (JobNew,
// job PropertiesChanged, JobRemoved) is delivered on Events: the reply's
// done callback opens the job's gate on the reader goroutine, before any
// later signal is read.
func (c *Client) jobCall(ctx context.Context, track func(dbus.ObjectPath), start func(ctx context.Context, done func(dbus.ObjectPath, error))) (dbus.ObjectPath, error) {
	pj, err := await(c, ctx, func(ctx context.Context, done func(*pendingJob, error)) {
		start(ctx, func(job dbus.ObjectPath, err error) {
			if err != nil {
				done(nil, err)
				return
			}
			done(c.openGate(job), nil)
		})
	})
	if err != nil {
		return "", err
	}
	defer c.closeGate(pj)
	if track != nil {
		track(pj.path)
	}
	return pj.path, nil
}

// StartUnit asks systemd to start a unit (Manager.StartUnit) and returns the
// job path. track, if not nil, runs with the job path before any event about
// that job is delivered on Events: record the job there to never miss its
// JobRemoved. track must not wait for Events.
func (c *Client) StartUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, func(ctx context.Context, done func(dbus.ObjectPath, error)) {
		c.mgr.GoStartUnit(ctx, name, mode, done)
	})
}

// StopUnit is Manager.StopUnit; see StartUnit for track.
func (c *Client) StopUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, func(ctx context.Context, done func(dbus.ObjectPath, error)) {
		c.mgr.GoStopUnit(ctx, name, mode, done)
	})
}

// RestartUnit is Manager.RestartUnit; see StartUnit for track.
func (c *Client) RestartUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, func(ctx context.Context, done func(dbus.ObjectPath, error)) {
		c.mgr.GoRestartUnit(ctx, name, mode, done)
	})
}

// ReloadUnit is Manager.ReloadUnit; see StartUnit for track.
func (c *Client) ReloadUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, func(ctx context.Context, done func(dbus.ObjectPath, error)) {
		c.mgr.GoReloadUnit(ctx, name, mode, done)
	})
}

// StartTransientUnit is Manager.StartTransientUnit(s, s, a(sv), a(sa(sv))):
// properties and auxiliary units are passed through as they are.
func (c *Client) StartTransientUnit(ctx context.Context, name, mode string, props []bluechi.UnitProperty, aux []bluechi.AuxUnit) (dbus.ObjectPath, error) {
	if props == nil {
		props = []bluechi.UnitProperty{}
	}
	if aux == nil {
		aux = []bluechi.AuxUnit{}
	}
	return c.jobCall(ctx, nil, func(ctx context.Context, done func(dbus.ObjectPath, error)) {
		c.mgr.GoStartTransientUnit(ctx, name, mode, props, aux, done)
	})
}

// CancelJob cancels a job by its object path (Job.Cancel).
func (c *Client) CancelJob(ctx context.Context, job dbus.ObjectPath) error {
	j := daemonapi.NewSystemd1JobWireClient(c.conn, BusName, string(job))
	return await0(c, ctx, j.GoCancel)
}

// CancelJobID cancels a job by its systemd id (Manager.CancelJob).
func (c *Client) CancelJobID(ctx context.Context, id uint32) error {
	return await0(c, ctx, func(ctx context.Context, done func(error)) { c.mgr.GoCancelJob(ctx, id, done) })
}

// unit is a client of a unit's object.
func (c *Client) unit(name string) *daemonapi.Systemd1UnitWireClient {
	return daemonapi.NewSystemd1UnitWireClient(c.conn, BusName, string(UnitPath(name)))
}

// FreezeUnit calls Unit.Freeze on the unit's path (fails where the cgroup
// freezer is unavailable).
func (c *Client) FreezeUnit(ctx context.Context, name string) error {
	return await0(c, ctx, c.unit(name).GoFreeze)
}

// ThawUnit calls Unit.Thaw on the unit's path.
func (c *Client) ThawUnit(ctx context.Context, name string) error {
	return await0(c, ctx, c.unit(name).GoThaw)
}

// KillUnit is Manager.KillUnit(name, who, signal).
func (c *Client) KillUnit(ctx context.Context, name, who string, signal int32) error {
	return await0(c, ctx, func(ctx context.Context, done func(error)) { c.mgr.GoKillUnit(ctx, name, who, signal, done) })
}

// GetUnitProperties is Properties.GetAll(iface) on the unit's path; iface ""
// returns the properties of every interface. Values keep their D-Bus
// signatures.
func (c *Client) GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error) {
	p := daemonapi.NewDBusPropertiesWireClient(c.conn, BusName, string(UnitPath(name)))
	return await(c, ctx, func(ctx context.Context, done func(map[string]dbus.Variant, error)) { p.GoGetAll(ctx, iface, done) })
}

// GetUnitProperty is Properties.Get(iface, property) on the unit's path.
func (c *Client) GetUnitProperty(ctx context.Context, name, iface, property string) (dbus.Variant, error) {
	p := daemonapi.NewDBusPropertiesWireClient(c.conn, BusName, string(UnitPath(name)))
	return await(c, ctx, func(ctx context.Context, done func(dbus.Variant, error)) { p.GoGet(ctx, iface, property, done) })
}

// SetUnitProperties is Unit.SetProperties(runtime, props) on the unit's path.
func (c *Client) SetUnitProperties(ctx context.Context, name string, runtime bool, props []bluechi.UnitProperty) error {
	if props == nil {
		props = []bluechi.UnitProperty{}
	}
	u := c.unit(name)
	return await0(c, ctx, func(ctx context.Context, done func(error)) { u.GoSetProperties(ctx, runtime, props, done) })
}

// EnableUnitFiles is Manager.EnableUnitFiles(files, runtime, force).
func (c *Client) EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (carriesInstallInfo bool, changes []bluechi.UnitFileChange, err error) {
	if files == nil {
		files = []string{}
	}
	type result struct {
		info    bool
		changes []bluechi.UnitFileChange
	}
	r, err := await(c, ctx, func(ctx context.Context, done func(result, error)) {
		c.mgr.GoEnableUnitFiles(ctx, files, runtime, force, func(info bool, changes []bluechi.UnitFileChange, err error) {
			done(result{info, changes}, err)
		})
	})
	return r.info, r.changes, err
}

// DisableUnitFiles is Manager.DisableUnitFiles(files, runtime).
func (c *Client) DisableUnitFiles(ctx context.Context, files []string, runtime bool) ([]bluechi.UnitFileChange, error) {
	if files == nil {
		files = []string{}
	}
	return await(c, ctx, func(ctx context.Context, done func([]bluechi.UnitFileChange, error)) {
		c.mgr.GoDisableUnitFiles(ctx, files, runtime, done)
	})
}

// ListUnits is Manager.ListUnits.
func (c *Client) ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error) {
	return await(c, ctx, c.mgr.GoListUnits)
}

// SigListUnits is the signature of Manager.ListUnits's reply.
const SigListUnits = daemonapi.Systemd1ManagerListUnitsOutSig

// ListUnitsRaw is ListUnits with the reply left as bytes: the a(ssssssouso)
// in little endian, aligned from its first byte and checked as the message
// bus checks, ready to be sent on as it is.
func (c *Client) ListUnitsRaw(ctx context.Context) ([]byte, error) {
	body, err := await(c, ctx, func(ctx context.Context, done func([]byte, error)) {
		c.conn.Go(ctx, &wireconn.Request{Destination: BusName, Path: string(ManagerPath), Interface: ManagerInterface,
			Member: daemonapi.Systemd1ManagerMethodListUnits, Signature: daemonapi.Systemd1ManagerListUnitsInSig}, func(m *wire.Message, err error) {
			if err != nil {
				done(nil, err)
				return
			}
			if m.Signature != SigListUnits {
				done(nil, fmt.Errorf("reply of signature %q, want %q", m.Signature, SigListUnits))
				return
			}
			// The copy out of the read buffer is the check (and the
			// conversion to little endian).
			rd := wire.NewReader(m.Body, m.BigEndian)
			w := wire.Writer{Buf: make([]byte, 0, len(m.Body)+len(m.Body)/8)}
			if err := wire.Copy(&w, &rd, SigListUnits); err != nil {
				done(nil, err)
				return
			}
			done(w.Buf, rd.Done())
		})
	})
	return body, err
}

// ListUnitFiles is Manager.ListUnitFiles.
func (c *Client) ListUnitFiles(ctx context.Context) ([]bluechi.UnitFileInfo, error) {
	return await(c, ctx, c.mgr.GoListUnitFiles)
}

// GetUnitFileState is Manager.GetUnitFileState(file).
func (c *Client) GetUnitFileState(ctx context.Context, file string) (string, error) {
	return await(c, ctx, func(ctx context.Context, done func(string, error)) { c.mgr.GoGetUnitFileState(ctx, file, done) })
}

// Reload is Manager.Reload (daemon-reload); it returns once systemd has
// reloaded.
func (c *Client) Reload(ctx context.Context) error {
	return await0(c, ctx, c.mgr.GoReload)
}

// ResetFailed is Manager.ResetFailed (all units).
func (c *Client) ResetFailed(ctx context.Context) error {
	return await0(c, ctx, c.mgr.GoResetFailed)
}

// ResetFailedUnit is Manager.ResetFailedUnit(name).
func (c *Client) ResetFailedUnit(ctx context.Context, name string) error {
	return await0(c, ctx, func(ctx context.Context, done func(error)) { c.mgr.GoResetFailedUnit(ctx, name, done) })
}

// GetDefaultTarget is Manager.GetDefaultTarget.
func (c *Client) GetDefaultTarget(ctx context.Context) (string, error) {
	return await(c, ctx, c.mgr.GoGetDefaultTarget)
}

// SetDefaultTarget is Manager.SetDefaultTarget(target, force).
func (c *Client) SetDefaultTarget(ctx context.Context, target string, force bool) ([]bluechi.UnitFileChange, error) {
	return await(c, ctx, func(ctx context.Context, done func([]bluechi.UnitFileChange, error)) {
		c.mgr.GoSetDefaultTarget(ctx, target, force, done)
	})
}

// Subscribe is Manager.Subscribe: from now on systemd sends UnitNew,
// UnitRemoved, JobNew, JobRemoved and PropertiesChanged. Call it once; a
// second call fails with org.freedesktop.systemd1.AlreadySubscribed.
func (c *Client) Subscribe(ctx context.Context) error {
	return await0(c, ctx, c.mgr.GoSubscribe)
}

// UnitPath is the object path of a unit: UnitPathPrefix plus the name
// escaped as systemd does (bus_label_escape).
func UnitPath(name string) dbus.ObjectPath {
	return dbus.ObjectPath(UnitPathPrefix + dbusrt.EscapeLabel(name))
}

// UnitNameFromPath reverses UnitPath; ok is false for other paths.
func UnitNameFromPath(path dbus.ObjectPath) (name string, ok bool) {
	label, ok := strings.CutPrefix(string(path), UnitPathPrefix)
	if !ok || label == "" || strings.Contains(label, "/") {
		return "", false
	}
	return dbusrt.UnescapeLabel(label), true
}
