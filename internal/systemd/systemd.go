// SPDX-License-Identifier: Apache-2.0

// Package systemd is the agent's adapter to the local systemd manager over
// D-Bus: the calls of internal-protocol.md §7 and an ordered, event-driven
// stream of systemd's signals (no polling).
//
// It talks to systemd with plain godbus on one connection, either through a
// message bus (user mode: the session bus; system mode without root: the
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
	// godbus keeps reading (its sequential signal handler queues without
	// bound).
	EventBuffer int
}

// Client is a connection to one systemd manager.
type Client struct {
	conn    *dbus.Conn
	timeout time.Duration
	events  chan Event
	queue   *eventQueue
	tap     *transport.Tap
	closing chan struct{}
	once    sync.Once

	// gateHook, if set (tests), is called when the event stream starts
	// waiting for the caller of a job call.
	gateHook func(job dbus.ObjectPath)

	// owner is systemd's unique name on a bus (nil on the private socket,
	// where only systemd can send).
	owner atomic.Pointer[string]

	mu      sync.Mutex
	pending map[uint32]*pendingJob                   // serial of a job call -> state
	gates   map[dbus.ObjectPath]map[*pendingJob]bool // job path -> calls whose caller has not finished
}

// pendingJob follows a job-creating call from the moment it is sent until
// the calling goroutine has seen (and tracked) the job path. Events about a
// job path wait behind its gate, so that a fast JobRemoved can never overtake
// the reply that announced the job.
type pendingJob struct {
	path      dbus.ObjectPath
	gate      chan struct{} // closed when the caller is done; nil until the reply arrived
	abandoned bool          // the caller gave up before the reply arrived
	reply     chan jobReply // a raw call's reply (nil for calls made through godbus)
}

// jobReply is the reply to a job call sent raw: the job path, or an error.
type jobReply struct {
	path dbus.ObjectPath
	err  error
}

// jobMethods are the Manager methods whose reply is a job path.
var jobMethods = map[string]bool{
	"StartUnit": true, "StopUnit": true, "RestartUnit": true, "ReloadUnit": true,
	"TryRestartUnit": true, "ReloadOrRestartUnit": true, "ReloadOrTryRestartUnit": true,
	"StartTransientUnit": true,
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
		pending: map[uint32]*pendingJob{},
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
	c.tap = &transport.Tap{Signal: c.rawSignal, Reply: c.rawReply}

	connOpts := append([]dbus.ConnOption{
		dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()),
		dbus.WithOutgoingInterceptor(c.outgoing),
	}, c.tap.Options(context.Background())...)
	// Both cases go through our transport: it reads with few, raw system
	// calls (godbus's unix transport reads each message in several), and
	// systemd's private socket is an sd-bus server: godbus's own client
	// handshake sends BEGIN after OK, BEGIN and the first call then often
	// arrive in one read and sd-bus 252 leaves that call unprocessed until
	// more bytes come (Subscribe hung in about 4 of 5 runs). The transport
	// dialer sends the whole handshake in one write.
	d := transport.Dialer{Mechanism: transport.MechanismExternal}
	conn, err := d.Dial(ctx, addr, connOpts...)
	if err != nil {
		return nil, fmt.Errorf("systemd: connect %s: %w", addr, err)
	}
	if !private {
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("systemd: hello on %s: %w", addr, err)
		}
	}
	fail := func(what string, err error) (*Client, error) {
		conn.Close()
		return nil, fmt.Errorf("systemd: %s on %s: %w", what, addr, err)
	}
	c.conn = conn
	go func() {
		<-conn.Context().Done()
		c.queue.close()
	}()
	if !private {
		matches := [][]dbus.MatchOption{
			{dbus.WithMatchSender(BusName), dbus.WithMatchObjectPath(ManagerPath), dbus.WithMatchInterface(ManagerInterface)},
			{dbus.WithMatchSender(BusName), dbus.WithMatchInterface(PropertiesIface), dbus.WithMatchMember("PropertiesChanged"),
				dbus.WithMatchPathNamespace(dbus.ObjectPath(strings.TrimSuffix(UnitPathPrefix, "/")))},
			{dbus.WithMatchSender(BusName), dbus.WithMatchInterface(PropertiesIface), dbus.WithMatchMember("PropertiesChanged"),
				dbus.WithMatchPathNamespace(dbus.ObjectPath(strings.TrimSuffix(JobPathPrefix, "/")))},
		}
		matches = append(matches, []dbus.MatchOption{dbus.WithMatchSender(dbusrt.BusName), dbus.WithMatchInterface(dbusrt.BusInterface),
			dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, BusName)})
		for _, m := range matches {
			if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
				return fail("add match", err)
			}
		}
		// On a bus anyone may send a signal to us: only systemd's own
		// unique name is believed (see dispatch).
		owner, err := dbusrt.NameOwner(ctx, conn, BusName)
		if err != nil {
			return fail("find systemd on the bus", err)
		}
		c.owner.Store(&owner)
	}
	go c.dispatch()
	return c, nil
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
func (c *Client) Conn() *dbus.Conn { return c.conn }

// Close ends the connection; the Events channel is closed after the last
// event.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.closing) })
	return c.conn.Close()
}

// Done is closed when the connection has ended (Close or lost).
func (c *Client) Done() <-chan struct{} { return c.conn.Context().Done() }

// outgoing runs in the sending goroutine before a message is written: it
// registers job-creating calls by serial.
func (c *Client) outgoing(msg *dbus.Message) {
	if msg.Type != dbus.TypeMethodCall {
		return
	}
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	member, _ := msg.Headers[dbus.FieldMember].Value().(string)
	if path != ManagerPath || !jobMethods[member] {
		return
	}
	c.mu.Lock()
	c.pending[msg.Serial()] = &pendingJob{}
	c.mu.Unlock()
}

// finishJobCall releases the gate of a job call (after success, after the
// caller's track function ran; after failure, at once).
func (c *Client) finishJobCall(serial uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pj := c.pending[serial]
	if pj == nil {
		return
	}
	if pj.gate == nil {
		// no reply yet (the caller gave up): let rawReply drop it
		pj.abandoned = true
		return
	}
	delete(c.pending, serial)
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
		case <-c.conn.Context().Done():
			return
		}
	}
}

// newCall builds a method call to systemd (always with a destination: sd-bus
// drops messages with an empty one).
func newCall(path dbus.ObjectPath, iface, member string, args ...any) *dbus.Message {
	msg := &dbus.Message{
		Type: dbus.TypeMethodCall,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(BusName),
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(member),
		},
		Body: args,
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return msg
}

// call sends a method call and waits for its reply body.
func (c *Client) call(ctx context.Context, path dbus.ObjectPath, iface, member string, args ...any) ([]any, error) {
	body, _, err := c.callSerial(ctx, path, iface, member, args...)
	return body, err
}

func (c *Client) callSerial(ctx context.Context, path dbus.ObjectPath, iface, member string, args ...any) ([]any, uint32, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	for i, a := range args {
		args[i] = dbusrt.FixVariants(a) // forwarded struct-valued variants must re-encode
	}
	msg := newCall(path, iface, member, args...)
	call := c.conn.SendWithContext(ctx, msg, make(chan *dbus.Call, 1))
	dbusrt.Release(ctx) // on the wire: an ordered caller may start its next request
	<-call.Done
	serial := msg.Serial()
	if call.Err != nil {
		if errors.Is(call.Err, context.DeadlineExceeded) {
			return nil, serial, &dbus.Error{Name: ErrNoReply, Body: []any{"Method call timed out"}}
		}
		return nil, serial, call.Err
	}
	return call.Body, serial, nil
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

// jobCall runs a job-creating Manager method. track (may be nil) runs with
// the job path before any event about the job (JobNew, job
// PropertiesChanged, JobRemoved) is delivered on Events.
func (c *Client) jobCall(ctx context.Context, track func(dbus.ObjectPath), member string, args ...any) (dbus.ObjectPath, error) {
	if len(args) == 2 {
		name, ok1 := args[0].(string)
		mode, ok2 := args[1].(string)
		if ok1 && ok2 && wire.ValidString(name) && wire.ValidString(mode) {
			return c.rawJobCall(ctx, track, member, name, mode)
		}
	}
	body, serial, err := c.callSerial(ctx, ManagerPath, ManagerInterface, member, args...)
	defer c.finishJobCall(serial)
	var job dbus.ObjectPath
	if err := decode(body, err, &job); err != nil {
		return "", err
	}
	if track != nil {
		track(job)
	}
	return job, nil
}

// rawJobCall is jobCall for the methods of two strings (StartUnit and
// its kin), encoded by internal/wire and answered through rawReply: on the
// path of every job request, godbus's encoding and decoding cost more than
// the write. Errors are the dbus.Error values godbus would have returned.
func (c *Client) rawJobCall(ctx context.Context, track func(dbus.ObjectPath), member, name, mode string) (dbus.ObjectPath, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return "", err // as godbus: nothing is sent
	}
	serial := c.tap.GetSerial()
	reply := make(chan jobReply, 1)
	pj := &pendingJob{reply: reply}
	c.mu.Lock()
	c.pending[serial] = pj
	c.mu.Unlock()
	defer c.finishJobCall(serial)
	var w wire.Writer
	w.String(name)
	w.String(mode)
	err := c.tap.Send(wire.AppendCall(nil, serial, BusName, string(ManagerPath), ManagerInterface, member, "ss", w.Buf))
	dbusrt.Release(ctx) // on the wire: an ordered caller may start its next request
	if err != nil {
		c.mu.Lock()
		delete(c.pending, serial) // no reply will come to remove it
		c.mu.Unlock()
		return "", dbus.ErrClosed
	}
	select {
	case r := <-reply:
		if r.err != nil {
			return "", r.err
		}
		if track != nil {
			track(r.path)
		}
		return r.path, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return "", ctx.Err() // as godbus; only a deadline is NoReply
		}
		return "", &dbus.Error{Name: ErrNoReply, Body: []any{"Method call timed out"}}
	case <-c.conn.Context().Done():
		return "", dbus.ErrClosed
	}
}

// StartUnit asks systemd to start a unit (Manager.StartUnit) and returns the
// job path. track, if not nil, runs with the job path before any event about
// that job is delivered on Events: record the job there to never miss its
// JobRemoved. track must not wait for Events.
func (c *Client) StartUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, "StartUnit", name, mode)
}

// StopUnit is Manager.StopUnit; see StartUnit for track.
func (c *Client) StopUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, "StopUnit", name, mode)
}

// RestartUnit is Manager.RestartUnit; see StartUnit for track.
func (c *Client) RestartUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, "RestartUnit", name, mode)
}

// ReloadUnit is Manager.ReloadUnit; see StartUnit for track.
func (c *Client) ReloadUnit(ctx context.Context, name, mode string, track func(job dbus.ObjectPath)) (dbus.ObjectPath, error) {
	return c.jobCall(ctx, track, "ReloadUnit", name, mode)
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
	return c.jobCall(ctx, nil, "StartTransientUnit", name, mode, props, aux)
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	serial := c.tap.GetSerial()
	r, err := c.tap.Call(ctx, serial, wire.AppendCall(nil, serial, BusName, string(ManagerPath), ManagerInterface, "ListUnits", "", nil))
	dbusrt.Release(ctx) // on the wire: an ordered caller may start its next request
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, &dbus.Error{Name: ErrNoReply, Body: []any{"Method call timed out"}}
	}
	if err != nil {
		return nil, fmt.Errorf("systemd: ListUnits: %w", err)
	}
	body, err := r.Value(SigListUnits)
	var re *transport.RawError
	if errors.As(err, &re) {
		return nil, dbusrt.NewError(re.Name, "%s", re.Message)
	}
	if err != nil {
		return nil, fmt.Errorf("systemd: ListUnits: %w", err)
	}
	return body, nil
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
