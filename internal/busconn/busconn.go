// SPDX-License-Identifier: Apache-2.0

// Package busconn is a message-bus client connection on wireconn: it
// connects to a dbus-daemon, authenticates with EXTERNAL, says Hello and
// offers the bus's own calls (names, match rules) and watches of a name's
// owner. Every call to the bus goes through the generated
// org.freedesktop.DBus wire client of internal/daemonapi (idl/systemd).
//
// Concurrency: the methods of Conn are safe for concurrent use. The
// blocking ones (RequestName, NameHasOwner, GetNameOwner, AddMatch,
// RemoveMatch, WatchNameOwner) wait for the bus's reply, so they must not
// be called from the connection's reader goroutine (a signal handler or a
// WatchNameOwner callback); a watch's stop does not wait and may be called
// from anywhere.
package busconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// DefaultSystemBusAddress is the system bus's address when
// DBUS_SYSTEM_BUS_ADDRESS is not set (the D-Bus specification's default).
const DefaultSystemBusAddress = "unix:path=/var/run/dbus/system_bus_socket"

// RequestName's flags and replies (D-Bus specification, "Message Bus
// Messages").
const (
	nameFlagReplaceExisting = 2
	nameFlagDoNotQueue      = 4
	nameReplyPrimaryOwner   = 1
	nameReplyInQueue        = 2
	nameReplyExists         = 3
	nameReplyAlreadyOwner   = 4
)

// ErrNameTaken is the error RequestName wraps when another connection owns
// the name.
var ErrNameTaken = errors.New("the name is owned by another connection")

// Conn is a connection to a message bus (dbus-daemon) on wireconn.
type Conn struct {
	wc     *wireconn.Conn
	bus    *daemonapi.DBusWireClient
	unique string                              // set by Dial before it returns; read-only after
	signal func(*wireconn.Conn, *wire.Message) // the caller's Options.Signal, or nil

	// mu guards names and each entry's watchers. The slices are never
	// changed in place (copy on write), so the reader goroutine iterates
	// one it read under mu without holding it.
	mu    sync.Mutex
	names map[string]*nameWatch // name -> its owner watches
}

// nameWatch is the owner watches of one name, which share one match rule
// on the bus (a bus bounds the rules of a connection: 512 by default).
type nameWatch struct {
	watchers []*watcher
	ready    chan struct{} // closed once the rule's AddMatch was answered
	err      error         // AddMatch's error; written before ready is closed
}

// watcher is one WatchNameOwner.
type watcher struct {
	fn      func(oldOwner, newOwner string)
	stopped atomic.Bool // set by stop; the reader checks it before each call
}

// Dial connects to the bus at address (a D-Bus address string as
// wireconn.Dial takes, e.g. "unix:path=/run/dbus/system_bus_socket"),
// authenticates with EXTERNAL, starts the reader and calls Hello. opts are
// passed to wireconn: its Mechanism is forced to EXTERNAL, BusShim off
// (the real bus answers for itself) and RefuseOverflow on (a client that
// floods is refused, the others are not cut off); every signal goes to
// opts.Signal (if set) after busconn has routed it to the name watches;
// opts.Closed is called as wireconn calls it. ctx bounds the handshake and Hello. The
// reader runs when Dial returns: export objects on Wire() before asking
// for the name callers know them by.
func Dial(ctx context.Context, address string, opts wireconn.Options) (*Conn, error) {
	b := &Conn{signal: opts.Signal, names: map[string]*nameWatch{}}
	opts.Mechanism = transport.MechanismExternal
	opts.BusShim = false
	opts.RefuseOverflow = true
	opts.Signal = b.route
	wc, err := wireconn.Dial(ctx, address, opts)
	if err != nil {
		return nil, fmt.Errorf("busconn: %w", err)
	}
	b.wc = wc
	b.bus = daemonapi.NewDBusWireClient(wc, daemonapi.DBusBusName, string(daemonapi.DBusPath))
	wc.Start()
	if b.unique, err = b.bus.Hello(ctx); err != nil {
		wc.Close()
		<-wc.Done()
		return nil, fmt.Errorf("busconn: hello to the bus at %s: %w", address, err)
	}
	return b, nil
}

// SystemBusAddress returns the system bus's address:
// $DBUS_SYSTEM_BUS_ADDRESS, else DefaultSystemBusAddress.
func SystemBusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return DefaultSystemBusAddress
}

// SessionBusAddress returns the session bus's address:
// $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus if it exists.
func SessionBusAddress() (string, error) {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		p := filepath.Join(dir, "bus")
		if _, err := os.Stat(p); err == nil {
			return "unix:path=" + p, nil
		}
	}
	return "", errors.New("busconn: no session bus: DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus")
}

// Wire returns the underlying connection (to export objects, call other
// services and emit signals on it).
func (b *Conn) Wire() *wireconn.Conn { return b.wc }

// Bus returns the generated client of the bus's own interface on this
// connection, for the calls Conn has no method for.
func (b *Conn) Bus() *daemonapi.DBusWireClient { return b.bus }

// UniqueName returns the name the bus assigned in reply to Hello.
func (b *Conn) UniqueName() string { return b.unique }

// Close ends the connection; pending calls fail. It does not wait: Done is
// closed once the connection has ended.
func (b *Conn) Close() error { return b.wc.Close() }

// Done is closed when the connection has ended.
func (b *Conn) Done() <-chan struct{} { return b.wc.Done() }

// RequestName asks for name with REPLACE_EXISTING and DO_NOT_QUEUE (api.md
// §1): it takes the name over from an owner that allowed replacement, and
// never waits in the queue. It returns nil when the connection became the
// name's primary owner or already was; an error wrapping ErrNameTaken when
// another connection owns it and did not allow replacement; the bus's
// error (a *wireconn.Error) when the bus refused.
func (b *Conn) RequestName(ctx context.Context, name string) error {
	r, err := b.bus.RequestName(ctx, name, nameFlagReplaceExisting|nameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("busconn: request name %s: %w", name, err)
	}
	switch r {
	case nameReplyPrimaryOwner, nameReplyAlreadyOwner:
		return nil
	case nameReplyExists:
		return fmt.Errorf("busconn: request name %s: %w", name, ErrNameTaken)
	case nameReplyInQueue: // not with DO_NOT_QUEUE, but the bus decides
		return fmt.Errorf("busconn: request name %s: queued behind its owner", name)
	default:
		return fmt.Errorf("busconn: request name %s: unknown reply %d", name, r)
	}
}

// NameHasOwner reports whether a connection owns name.
func (b *Conn) NameHasOwner(ctx context.Context, name string) (bool, error) {
	has, err := b.bus.NameHasOwner(ctx, name)
	if err != nil {
		return false, fmt.Errorf("busconn: does %s have an owner: %w", name, err)
	}
	return has, nil
}

// GetNameOwner returns the unique name of name's owner. When name has no
// owner the error wraps the bus's org.freedesktop.DBus.Error.NameHasNoOwner
// (a *wireconn.Error).
func (b *Conn) GetNameOwner(ctx context.Context, name string) (string, error) {
	owner, err := b.bus.GetNameOwner(ctx, name)
	if err != nil {
		return "", fmt.Errorf("busconn: owner of %s: %w", name, err)
	}
	return owner, nil
}

// AddMatch adds a match rule (see MatchRule) to the connection.
func (b *Conn) AddMatch(ctx context.Context, rule string) error {
	if err := b.bus.AddMatch(ctx, rule); err != nil {
		return fmt.Errorf("busconn: add match %s: %w", rule, err)
	}
	return nil
}

// RemoveMatch removes a match rule added before (the same string).
func (b *Conn) RemoveMatch(ctx context.Context, rule string) error {
	if err := b.bus.RemoveMatch(ctx, rule); err != nil {
		return fmt.Errorf("busconn: remove match %s: %w", rule, err)
	}
	return nil
}

// nameOwnerRule is the match rule of the NameOwnerChanged signals about
// name.
func nameOwnerRule(name string) string {
	return MatchRule{Sender: daemonapi.DBusBusName, Path: string(daemonapi.DBusPath), Interface: daemonapi.DBusInterface,
		Member: daemonapi.DBusSignalNameOwnerChanged, Arg0: name}.String()
}

// WatchNameOwner adds the match rule for NameOwnerChanged of name (arg0)
// and calls fn(oldOwner, newOwner) for each such signal from the bus
// (sender org.freedesktop.DBus only; "" stands for no owner), in wire
// order on the reader goroutine: fn must not block nor make blocking calls
// on this connection. name must be a valid bus name. The watches of one
// name share one rule. stop removes the watch, and the rule with the
// name's last watch (RemoveMatch, sent without waiting for the reply); it
// may be called more than once and from fn. Once stop has returned, fn is
// not called for signals read after that (a call in progress on the
// reader goroutine may still finish).
func (b *Conn) WatchNameOwner(ctx context.Context, name string, fn func(oldOwner, newOwner string)) (stop func(), err error) {
	if err := CheckBusName(name); err != nil {
		return nil, fmt.Errorf("busconn: watch owner: %w", err)
	}
	w := &watcher{fn: fn}
	rule := nameOwnerRule(name)
	// The watch is in place before the rule reaches the bus, so that no
	// signal the rule selects is missed.
	nw, first := b.addWatcher(name, w)
	if first {
		err = b.bus.AddMatch(ctx, rule)
		var refused *wireconn.Error
		if err != nil && !errors.As(err, &refused) {
			// No answer (ctx ended): the bus may still add the rule.
			_ = b.bus.SendRemoveMatch(rule)
		}
		b.mu.Lock()
		nw.err = err
		if err != nil && b.names[name] == nw {
			delete(b.names, name) // every watch waiting for this rule fails with it
		}
		b.mu.Unlock()
		close(nw.ready)
	} else {
		select {
		case <-nw.ready:
			err = nw.err
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		b.removeWatcher(name, nw, w)
		return nil, fmt.Errorf("busconn: watch owner of %s: add match: %w", name, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if b.removeWatcher(name, nw, w) {
				// Without waiting: stop may run on the reader
				// goroutine. A connection that has ended has no rules
				// left to remove.
				_ = b.bus.SendRemoveMatch(rule)
			}
		})
	}, nil
}

// addWatcher adds w to the watches of name; first says its rule is to be
// added.
func (b *Conn) addWatcher(name string, w *watcher) (nw *nameWatch, first bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	nw = b.names[name]
	if nw == nil {
		nw = &nameWatch{ready: make(chan struct{})}
		b.names[name] = nw
		first = true
	}
	ws := make([]*watcher, len(nw.watchers), len(nw.watchers)+1)
	copy(ws, nw.watchers)
	nw.watchers = append(ws, w)
	return nw, first
}

// removeWatcher removes w from nw, the watches of name; last says nw had
// no other watch and its rule is to be removed.
func (b *Conn) removeWatcher(name string, nw *nameWatch, w *watcher) (last bool) {
	w.stopped.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := make([]*watcher, 0, len(nw.watchers))
	for _, x := range nw.watchers {
		if x != w {
			ws = append(ws, x)
		}
	}
	nw.watchers = ws
	if len(ws) > 0 || b.names[name] != nw {
		return false
	}
	delete(b.names, name)
	return true
}

// route is the connection's signal handler (reader goroutine): it hands
// NameOwnerChanged from the bus to the watches of its name, then passes
// every signal on to the caller's handler.
func (b *Conn) route(c *wireconn.Conn, m *wire.Message) {
	if m.Sender == daemonapi.DBusBusName && m.Path == string(daemonapi.DBusPath) &&
		m.Interface == daemonapi.DBusInterface && m.Member == daemonapi.DBusSignalNameOwnerChanged {
		if s, err := daemonapi.DecodeDBusNameOwnerChanged(m); err == nil {
			var ws []*watcher
			b.mu.Lock()
			if nw := b.names[s.Name]; nw != nil {
				ws = nw.watchers
			}
			b.mu.Unlock()
			for _, w := range ws {
				if !w.stopped.Load() {
					w.fn(s.OldOwner, s.NewOwner)
				}
			}
		}
	}
	if b.signal != nil {
		b.signal(c, m)
	}
}
