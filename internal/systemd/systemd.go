// SPDX-License-Identifier: Apache-2.0

// Package systemd is the agent's adapter to the local systemd manager over
// D-Bus: the calls of internal-protocol.md §7 and an ordered, event-driven
// stream of systemd's signals (no polling).
//
// It talks to systemd on one connection of our own (internal/wireconn),
// either through a message bus (user mode: the session bus; system mode without root: the
// system bus) or directly on systemd's private socket (system mode as root:
// /run/systemd/private; a user manager has one at $XDG_RUNTIME_DIR/systemd/
// private). go-systemd's dbus package is not used: it opens two connections
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
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
	"github.com/godbus/dbus/v5"
)

// Names on systemd's side.
const (
	BusName          = "org.freedesktop.systemd1"
	ManagerPath      = dbus.ObjectPath("/org/freedesktop/systemd1")
	ManagerInterface = "org.freedesktop.systemd1.Manager"
	UnitInterface    = "org.freedesktop.systemd1.Unit"
	JobInterface     = "org.freedesktop.systemd1.Job"
	UnitPathPrefix   = "/org/freedesktop/systemd1/unit/"
	JobPathPrefix    = "/org/freedesktop/systemd1/job/"
	PropertiesIface  = "org.freedesktop.DBus.Properties"

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
	conn, err := wireconn.Dial(ctx, addr, wireconn.Options{
		Mechanism: transport.MechanismExternal,
		Signal:    c.signal,
		Closed:    func(*wireconn.Conn, error) { c.queue.close() },
	})
	if err != nil {
		return nil, fmt.Errorf("systemd: connect %s: %w", addr, err)
	}
	c.conn = conn
	conn.Start()
	fail := func(what string, err error) (*Client, error) {
		conn.Close()
		return nil, fmt.Errorf("systemd: %s on %s: %w", what, addr, err)
	}
	if !private {
		if c.unique, err = c.busCall(ctx, "Hello"); err != nil {
			return fail("hello", err)
		}
		for _, rule := range busMatches() {
			if _, err := c.busCall(ctx, "AddMatch", rule); err != nil {
				return fail("add match", err)
			}
		}
		// On a bus anyone may send a signal to us: only systemd's own
		// unique name is believed (see dispatch).
		owner, err := c.busCall(ctx, "GetNameOwner", BusName)
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
	sender := "type='signal',sender='" + BusName + "',"
	props := sender + "interface='" + PropertiesIface + "',member='PropertiesChanged',path_namespace='"
	return []string{
		sender + "path='" + string(ManagerPath) + "',interface='" + ManagerInterface + "'",
		props + strings.TrimSuffix(UnitPathPrefix, "/") + "'",
		props + strings.TrimSuffix(JobPathPrefix, "/") + "'",
		"type='signal',sender='" + dbusrt.BusName + "',interface='" + dbusrt.BusInterface +
			"',member='NameOwnerChanged',arg0='" + BusName + "'",
	}
}

// busCall calls a method of the message bus with at most one string
// argument and returns its string result, if any.
func (c *Client) busCall(ctx context.Context, member string, arg ...string) (string, error) {
	req := &wireconn.Request{Destination: dbusrt.BusName, Path: string(dbusrt.BusPath), Interface: dbusrt.BusInterface, Member: member}
	if len(arg) > 0 {
		var w wire.Writer
		w.String(arg[0])
		req.Signature, req.Body = "s", w.Buf
	}
	r, err := c.invoke(ctx, req)
	if err != nil || r.Signature != "s" {
		return "", err
	}
	rd := r.Reader()
	return rd.String()
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

// send puts req on the wire; done gets the reply on the reader goroutine
// (it must not block). The caller waits for done's result, after release.
func (c *Client) send(ctx context.Context, req *wireconn.Request, done func(m *wire.Message, err error)) {
	if req.Destination == "" {
		req.Destination = BusName // sd-bus drops messages with an empty one
	}
	if err := ctx.Err(); err != nil {
		done(nil, err) // nothing is sent
		return
	}
	c.conn.Go(ctx, req, done)
	release(ctx)
}

// invoke sends a method call and waits for its reply.
func (c *Client) invoke(ctx context.Context, req *wireconn.Request) (*wireconn.Reply, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	type result struct {
		reply *wireconn.Reply
		err   error
	}
	ch := make(chan result, 1)
	c.send(ctx, req, func(m *wire.Message, err error) {
		var rep *wireconn.Reply
		if m != nil && err == nil {
			rep = &wireconn.Reply{Signature: m.Signature, Body: append([]byte(nil), m.Body...), BigEndian: m.BigEndian}
		}
		ch <- result{rep, err}
	})
	res := <-ch
	return res.reply, callError(res.err)
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

func decode(body []any, err error, ptrs ...any) error {
	if err != nil {
		return err
	}
	if err := dbusrt.Decode(body, ptrs...); err != nil {
		return fmt.Errorf("systemd: unexpected reply: %w", err)
	}
	return nil
}

// jobCall runs a job-creating Manager method with a body of signature sig.
// track (may be nil) runs with the job path before any event about the
// job (JobNew, job PropertiesChanged, JobRemoved) is delivered on Events.
func (c *Client) jobCall(ctx context.Context, track func(dbus.ObjectPath), member, sig string, body []byte) (dbus.ObjectPath, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	type result struct {
		pj  *pendingJob
		err error
	}
	ch := make(chan result, 1)
	c.send(ctx, &wireconn.Request{Path: string(ManagerPath), Interface: ManagerInterface, Member: member, Signature: sig, Body: body},
		func(m *wire.Message, err error) {
			if err != nil {
				ch <- result{nil, err}
				return
			}
			r := wire.NewReader(m.Body, m.BigEndian)
			path, err := r.String()
			if err != nil || m.Signature != "o" {
				ch <- result{nil, fmt.Errorf("systemd: unexpected reply of signature %q to %s, want a job path", m.Signature, member)}
				return
			}
			ch <- result{c.openGate(dbus.ObjectPath(path)), nil}
		})
	res := <-ch
	if res.err != nil {
		return "", callError(res.err)
	}
	defer c.closeGate(res.pj)
	if track != nil {
		track(res.pj.path)
	}
	return res.pj.path, nil
}

// unitJob runs one of the job methods of a unit name and a mode
// (StartUnit and its kin), encoded by internal/wire: they are on the path
// of every job request.
func (c *Client) unitJob(ctx context.Context, track func(dbus.ObjectPath), member, name, mode string) (dbus.ObjectPath, error) {
	if !wire.ValidString(name) || !wire.ValidString(mode) {
		return "", dbusrt.NewError(dbusrt.ErrInvalidArgs, "%s: unit name and mode must be valid UTF-8 without NUL", member)
	}
	var w wire.Writer
	w.String(name)
	w.String(mode)
	return c.jobCall(ctx, track, member, "ss", w.Buf)
}

// StartUnit asks systemd to start a unit (Manager.StartUnit) and returns the
// job path. track, if not nil, runs with the job path before any event about
// that job is delivered on Events: record the job there to never miss its
// JobRemoved. track must not wait for Events.
func (c *Client) StartUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.unitJob(ctx, track, "StartUnit", name, mode)
}

// StopUnit is Manager.StopUnit; see StartUnit for track.
func (c *Client) StopUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.unitJob(ctx, track, "StopUnit", name, mode)
}

// RestartUnit is Manager.RestartUnit; see StartUnit for track.
func (c *Client) RestartUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.unitJob(ctx, track, "RestartUnit", name, mode)
}

// ReloadUnit is Manager.ReloadUnit; see StartUnit for track.
func (c *Client) ReloadUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.unitJob(ctx, track, "ReloadUnit", name, mode)
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
	sig, body, err := encodeArgs(name, mode, props, aux)
	if err != nil {
		return "", err
	}
	return c.jobCall(ctx, nil, "StartTransientUnit", sig, body)
}

// CancelJob cancels a job by its object path (Job.Cancel).
func (c *Client) CancelJob(ctx context.Context, job dbus.ObjectPath) error {
	_, err := c.call(ctx, job, JobInterface, "Cancel")
	return err
}

// CancelJobID cancels a job by its systemd id (Manager.CancelJob).
func (c *Client) CancelJobID(ctx context.Context, id uint32) error {
	_, err := c.call(ctx, ManagerPath, ManagerInterface, "CancelJob", id)
	return err
}

// FreezeUnit calls Unit.Freeze on the unit's path (fails where the cgroup
// freezer is unavailable).
func (c *Client) FreezeUnit(ctx context.Context, name string) error {
	_, err := c.call(ctx, UnitPath(name), UnitInterface, "Freeze")
	return err
}

// ThawUnit calls Unit.Thaw on the unit's path.
func (c *Client) ThawUnit(ctx context.Context, name string) error {
	_, err := c.call(ctx, UnitPath(name), UnitInterface, "Thaw")
	return err
}

// KillUnit is Manager.KillUnit(name, who, signal).
func (c *Client) KillUnit(ctx context.Context, name, who string, signal int32) error {
	_, err := c.call(ctx, ManagerPath, ManagerInterface, "KillUnit", name, who, signal)
	return err
}

// GetUnitProperties is Properties.GetAll(iface) on the unit's path; iface ""
// returns the properties of every interface. Values keep their D-Bus
// signatures (the map is the reply body itself).
func (c *Client) GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error) {
	body, err := c.call(ctx, UnitPath(name), PropertiesIface, "GetAll", iface)
	var props map[string]dbus.Variant
	if err := decode(body, err, &props); err != nil {
		return nil, err
	}
	return props, nil
}

// GetUnitProperty is Properties.Get(iface, property) on the unit's path.
func (c *Client) GetUnitProperty(ctx context.Context, name, iface, property string) (dbus.Variant, error) {
	body, err := c.call(ctx, UnitPath(name), PropertiesIface, "Get", iface, property)
	var v dbus.Variant
	if err := decode(body, err, &v); err != nil {
		return dbus.Variant{}, err
	}
	return v, nil
}

// SetUnitProperties is Unit.SetProperties(runtime, props) on the unit's path.
func (c *Client) SetUnitProperties(ctx context.Context, name string, runtime bool, props []bluechi.UnitProperty) error {
	if props == nil {
		props = []bluechi.UnitProperty{}
	}
	_, err := c.call(ctx, UnitPath(name), UnitInterface, "SetProperties", runtime, props)
	return err
}

// EnableUnitFiles is Manager.EnableUnitFiles(files, runtime, force).
func (c *Client) EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (carriesInstallInfo bool, changes []bluechi.UnitFileChange, err error) {
	if files == nil {
		files = []string{}
	}
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "EnableUnitFiles", files, runtime, force)
	err = decode(body, err, &carriesInstallInfo, &changes)
	return carriesInstallInfo, changes, err
}

// DisableUnitFiles is Manager.DisableUnitFiles(files, runtime).
func (c *Client) DisableUnitFiles(ctx context.Context, files []string, runtime bool) ([]bluechi.UnitFileChange, error) {
	if files == nil {
		files = []string{}
	}
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "DisableUnitFiles", files, runtime)
	var changes []bluechi.UnitFileChange
	err = decode(body, err, &changes)
	return changes, err
}

// ListUnits is Manager.ListUnits.
func (c *Client) ListUnits(ctx context.Context) ([]bluechi.UnitInfo, error) {
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "ListUnits")
	var units []bluechi.UnitInfo
	err = decode(body, err, &units)
	return units, err
}

// SigListUnits is the signature of Manager.ListUnits's reply.
const SigListUnits = "a(ssssssouso)"

// ListUnitsRaw is ListUnits with the reply left as bytes: the a(ssssssouso)
// in little endian, aligned from its first byte and checked as the message
// bus checks, ready to be sent on as it is.
func (c *Client) ListUnitsRaw(ctx context.Context) ([]byte, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	c.send(ctx, &wireconn.Request{Path: string(ManagerPath), Interface: ManagerInterface, Member: "ListUnits"}, func(m *wire.Message, err error) {
		if err != nil {
			ch <- result{nil, err}
			return
		}
		if m.Signature != SigListUnits {
			ch <- result{nil, fmt.Errorf("reply of signature %q, want %q", m.Signature, SigListUnits)}
			return
		}
		// The copy out of the read buffer is the check (and the
		// conversion to little endian).
		rd := wire.NewReader(m.Body, m.BigEndian)
		w := wire.Writer{Buf: make([]byte, 0, len(m.Body)+len(m.Body)/8)}
		if err := wire.Copy(&w, &rd, SigListUnits); err != nil {
			ch <- result{nil, err}
			return
		}
		ch <- result{w.Buf, rd.Done()}
	})
	res := <-ch
	if res.err != nil {
		var we *wireconn.Error
		if errors.As(res.err, &we) || errors.Is(res.err, context.DeadlineExceeded) {
			return nil, callError(res.err)
		}
		return nil, fmt.Errorf("systemd: ListUnits: %w", res.err)
	}
	return res.body, nil
}

// ListUnitFiles is Manager.ListUnitFiles.
func (c *Client) ListUnitFiles(ctx context.Context) ([]bluechi.UnitFileInfo, error) {
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "ListUnitFiles")
	var files []bluechi.UnitFileInfo
	err = decode(body, err, &files)
	return files, err
}

// GetUnitFileState is Manager.GetUnitFileState(file).
func (c *Client) GetUnitFileState(ctx context.Context, file string) (string, error) {
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "GetUnitFileState", file)
	var state string
	err = decode(body, err, &state)
	return state, err
}

// Reload is Manager.Reload (daemon-reload); it returns once systemd has
// reloaded.
func (c *Client) Reload(ctx context.Context) error {
	_, err := c.call(ctx, ManagerPath, ManagerInterface, "Reload")
	return err
}

// ResetFailed is Manager.ResetFailed (all units).
func (c *Client) ResetFailed(ctx context.Context) error {
	_, err := c.call(ctx, ManagerPath, ManagerInterface, "ResetFailed")
	return err
}

// ResetFailedUnit is Manager.ResetFailedUnit(name).
func (c *Client) ResetFailedUnit(ctx context.Context, name string) error {
	_, err := c.call(ctx, ManagerPath, ManagerInterface, "ResetFailedUnit", name)
	return err
}

// GetDefaultTarget is Manager.GetDefaultTarget.
func (c *Client) GetDefaultTarget(ctx context.Context) (string, error) {
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "GetDefaultTarget")
	var target string
	err = decode(body, err, &target)
	return target, err
}

// SetDefaultTarget is Manager.SetDefaultTarget(target, force).
func (c *Client) SetDefaultTarget(ctx context.Context, target string, force bool) ([]bluechi.UnitFileChange, error) {
	body, err := c.call(ctx, ManagerPath, ManagerInterface, "SetDefaultTarget", target, force)
	var changes []bluechi.UnitFileChange
	err = decode(body, err, &changes)
	return changes, err
}

// Subscribe is Manager.Subscribe: from now on systemd sends UnitNew,
// UnitRemoved, JobNew, JobRemoved and PropertiesChanged. Call it once; a
// second call fails with org.freedesktop.systemd1.AlreadySubscribed.
func (c *Client) Subscribe(ctx context.Context) error {
	_, err := c.call(ctx, ManagerPath, ManagerInterface, "Subscribe")
	return err
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
