// SPDX-License-Identifier: Apache-2.0

package busconn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/busnames"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

const testName = "org.example.BusconnTest"

// checkGoroutines fails the test if, once every other cleanup has run, the
// number of goroutines does not drop back to what it was when called. Call
// it first in a test so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // poll with a deadline
		}
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to bus and closes the connection (waiting for its end)
// when the test ends.
func dial(t *testing.T, bus *testbus.Bus, opts wireconn.Options) *Conn {
	t.Helper()
	b, err := Dial(testCtx(t), bus.Address, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		<-b.Done()
	})
	return b
}

// godbusConn is an ordinary bus client of another library.
func godbusConn(t *testing.T, bus *testbus.Bus) *dbus.Conn {
	t.Helper()
	g, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestDialHello(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	if !strings.HasPrefix(b.UniqueName(), ":") || CheckBusName(b.UniqueName()) != nil {
		t.Fatalf("unique name %q", b.UniqueName())
	}
	// The bus knows us by that name: another client sees it.
	g := godbusConn(t, bus)
	var has bool
	if err := g.BusObject().Call(daemonapi.DBusInterface+"."+daemonapi.DBusMethodNameHasOwner, 0, b.UniqueName()).Store(&has); err != nil || !has {
		t.Fatalf("NameHasOwner(%s) from godbus = %v, %v", b.UniqueName(), has, err)
	}
	// And our own call agrees.
	ok, err := b.NameHasOwner(testCtx(t), b.UniqueName())
	if err != nil || !ok {
		t.Fatalf("NameHasOwner(own name) = %v, %v", ok, err)
	}
	owner, err := b.GetNameOwner(testCtx(t), daemonapi.DBusBusName)
	if err != nil || owner != daemonapi.DBusBusName {
		t.Fatalf("GetNameOwner(bus) = %q, %v", owner, err)
	}
}

func TestDialForcesExternal(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t) // allows EXTERNAL only
	b := dial(t, bus, wireconn.Options{Mechanism: "ANONYMOUS"})
	if b.UniqueName() == "" {
		t.Fatal("no unique name")
	}
}

func TestDialRefused(t *testing.T) {
	checkGoroutines(t)
	addr := "unix:path=" + filepath.Join(t.TempDir(), "nobody")
	if _, err := Dial(testCtx(t), addr, wireconn.Options{}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("Dial to no bus: %v", err)
	}
}

func TestRequestName(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx := testCtx(t)
	if err := b.RequestName(ctx, testName); err != nil {
		t.Fatal(err)
	}
	if err := b.RequestName(ctx, testName); err != nil {
		t.Fatalf("asking again as its owner: %v", err)
	}
	owner, err := b.GetNameOwner(ctx, testName)
	if err != nil || owner != b.UniqueName() {
		t.Fatalf("GetNameOwner = %q, %v; want %q", owner, err, b.UniqueName())
	}
	has, err := b.NameHasOwner(ctx, testName)
	if err != nil || !has {
		t.Fatalf("NameHasOwner = %v, %v", has, err)
	}

	other := dial(t, bus, wireconn.Options{})
	err = other.RequestName(ctx, testName)
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), testName) {
		t.Fatalf("RequestName of an owned name: %v", err)
	}
	// DO_NOT_QUEUE: other is not queued, so the name is free once its
	// owner leaves.
	b.Close()
	<-b.Done()
	deadline := time.Now().Add(10 * time.Second)
	for {
		has, err := other.NameHasOwner(ctx, testName)
		if err != nil {
			t.Fatal(err)
		}
		if !has {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("name still owned after its owner closed")
		}
		time.Sleep(10 * time.Millisecond) // poll with a deadline
	}
	// The bus's own refusal comes back with its error name.
	err = other.RequestName(ctx, ":1.1")
	if n := dbusrt.ErrorName(err); n != wireconn.ErrInvalidArgs || !strings.Contains(err.Error(), ":1.1") {
		t.Fatalf("RequestName of a unique name: %v (%s)", err, n)
	}
}

// TestRequestNameReplaces checks REPLACE_EXISTING on a real bus: an owner
// of another library that allowed replacement loses the name to us, and
// hears NameLost.
func TestRequestNameReplaces(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	ctx := testCtx(t)
	old := godbusConn(t, bus)
	lost := make(chan *dbus.Signal, 4)
	old.Signal(lost)
	if r, err := old.RequestName(testName, dbus.NameFlagAllowReplacement|dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("godbus RequestName = %v, %v", r, err)
	}
	b := dial(t, bus, wireconn.Options{})
	if err := b.RequestName(ctx, testName); err != nil {
		t.Fatalf("taking over a replaceable name: %v", err)
	}
	owner, err := b.GetNameOwner(ctx, testName)
	if err != nil || owner != b.UniqueName() {
		t.Fatalf("GetNameOwner = %q, %v; want %q", owner, err, b.UniqueName())
	}
	for {
		select {
		case s := <-lost:
			if s.Name == busnames.DBusInterface+"."+busnames.DBusSignalNameLost && len(s.Body) == 1 && s.Body[0] == testName {
				return
			}
		case <-ctx.Done():
			t.Fatal("the replaced owner never heard NameLost")
		}
	}
}

func TestNoOwner(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx := testCtx(t)
	has, err := b.NameHasOwner(ctx, testName)
	if err != nil || has {
		t.Fatalf("NameHasOwner = %v, %v", has, err)
	}
	_, err = b.GetNameOwner(ctx, testName)
	if n := dbusrt.ErrorName(err); n != "org.freedesktop.DBus.Error.NameHasNoOwner" || !strings.Contains(err.Error(), testName) {
		t.Fatalf("GetNameOwner of a free name: %v (%s)", err, n)
	}
}

// ownerChange is one call of a WatchNameOwner callback.
type ownerChange struct{ old, new string }

// changes collects the callbacks of a watch.
type changes struct {
	mu  sync.Mutex
	got []ownerChange
	ch  chan struct{} // signalled on each change
}

func newChanges() *changes { return &changes{ch: make(chan struct{}, 100)} }

func (c *changes) add(old, new string) {
	c.mu.Lock()
	c.got = append(c.got, ownerChange{old, new})
	c.mu.Unlock()
	c.ch <- struct{}{}
}

// wait waits for the n-th change and returns it.
func (c *changes) wait(t *testing.T, n int) ownerChange {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.got) >= n {
			x := c.got[n-1]
			c.mu.Unlock()
			return x
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-timeout:
			t.Fatalf("change %d did not come", n)
		}
	}
}

func (c *changes) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestWatchNameOwner(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	var mu sync.Mutex
	var passed []string // NameOwnerChanged passed on to the caller's Signal
	b := dial(t, bus, wireconn.Options{Signal: func(_ *wireconn.Conn, m *wire.Message) {
		if m.Member == daemonapi.DBusSignalNameOwnerChanged {
			mu.Lock()
			passed = append(passed, m.Sender)
			mu.Unlock()
		}
	}})
	ctx := testCtx(t)
	got := newChanges()
	stop, err := b.WatchNameOwner(ctx, testName, got.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	// A godbus client takes the name, drops it, takes it again and
	// disconnects.
	g := godbusConn(t, bus)
	take := func() {
		r, err := g.RequestName(testName, dbus.NameFlagDoNotQueue)
		if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("godbus RequestName = %v, %v", r, err)
		}
	}
	take()
	if c := got.wait(t, 1); c != (ownerChange{"", g.Names()[0]}) {
		t.Fatalf("take: %+v, want new owner %s", c, g.Names()[0])
	}
	if r, err := g.ReleaseName(testName); err != nil || r != dbus.ReleaseNameReplyReleased {
		t.Fatalf("godbus ReleaseName = %v, %v", r, err)
	}
	if c := got.wait(t, 2); c != (ownerChange{g.Names()[0], ""}) {
		t.Fatalf("drop: %+v", c)
	}
	take()
	got.wait(t, 3)
	unique := g.Names()[0]
	g.Close()
	if c := got.wait(t, 4); c != (ownerChange{unique, ""}) {
		t.Fatalf("disconnect: %+v", c)
	}
	// A reply read after the last signal: its handlers have all run.
	if _, err := b.NameHasOwner(ctx, testName); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(passed) < 4 || passed[0] != daemonapi.DBusBusName {
		t.Fatalf("signals passed on to Options.Signal: %v", passed)
	}
}

func TestWatchOnlyBelievesTheBus(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx := testCtx(t)
	got := newChanges()
	stop, err := b.WatchNameOwner(ctx, testName, got.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// A peer sends a forged NameOwnerChanged straight to us, then a real
	// change follows.
	g := godbusConn(t, bus)
	forged := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(daemonapi.DBusPath),
		dbus.FieldInterface:   dbus.MakeVariant(daemonapi.DBusInterface),
		dbus.FieldMember:      dbus.MakeVariant(daemonapi.DBusSignalNameOwnerChanged),
		dbus.FieldDestination: dbus.MakeVariant(b.UniqueName()),
	}, Body: []any{testName, "", ":9.9"}}
	forged.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(testName, "", ":9.9"))
	if err := g.Send(forged, nil).Err; err != nil {
		t.Fatal(err)
	}
	if r, err := g.RequestName(testName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("godbus RequestName = %v, %v", r, err)
	}
	if c := got.wait(t, 1); c != (ownerChange{"", g.Names()[0]}) {
		t.Fatalf("first change %+v: the forged signal was believed", c)
	}
}

func TestWatchStop(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx := testCtx(t)
	stopped, kept := newChanges(), newChanges()
	stop, err := b.WatchNameOwner(ctx, testName, stopped.add)
	if err != nil {
		t.Fatal(err)
	}
	stopKept, err := b.WatchNameOwner(ctx, testName, kept.add)
	if err != nil {
		t.Fatal(err)
	}
	defer stopKept()
	stop()
	stop() // twice is fine

	// The rule is gone from the bus: removing it once more fails (the
	// other watch's rule is the same string, so one copy remains: remove
	// that one, then nothing is left). Calls are answered in order, so
	// this runs after stop's RemoveMatch.
	rule := nameOwnerRule(testName)
	if err := b.RemoveMatch(ctx, rule); err != nil {
		t.Fatalf("the other watch's rule: %v", err)
	}
	err = b.RemoveMatch(ctx, rule)
	if n := dbusrt.ErrorName(err); n != "org.freedesktop.DBus.Error.MatchRuleNotFound" {
		t.Fatalf("RemoveMatch after stop: %v (%s)", err, n)
	}
	if err := b.AddMatch(ctx, rule); err != nil { // give the kept watch its rule back
		t.Fatal(err)
	}

	g := godbusConn(t, bus)
	if r, err := g.RequestName(testName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("godbus RequestName = %v, %v", r, err)
	}
	kept.wait(t, 1) // the signal was read: the stopped watch had its chance
	if n := stopped.count(); n != 0 {
		t.Fatalf("stopped watch called %d times", n)
	}
	b.mu.Lock()
	n := len(b.names[testName].watchers)
	b.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d watches left, want 1", n)
	}
}

func TestWatchStopFromCallback(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx := testCtx(t)
	got := newChanges()
	var stop func()
	ready := make(chan struct{})
	stop, err := b.WatchNameOwner(ctx, testName, func(old, new string) {
		<-ready
		stop() // on the reader goroutine: must not wait for the bus
		got.add(old, new)
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	g := godbusConn(t, bus)
	if _, err := g.RequestName(testName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1)
	if _, err := g.ReleaseName(testName); err != nil {
		t.Fatal(err)
	}
	// The connection still answers (the reader was not blocked), and the
	// rule is gone.
	err = b.RemoveMatch(ctx, nameOwnerRule(testName))
	if n := dbusrt.ErrorName(err); n != "org.freedesktop.DBus.Error.MatchRuleNotFound" {
		t.Fatalf("RemoveMatch after stop: %v (%s)", err, n)
	}
	if n := got.count(); n != 1 {
		t.Fatalf("callback ran %d times after stop", n)
	}
}

func TestWatchBadName(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	for _, name := range []string{"", "org", "org.example'", "org.example',arg1='x", "org..example", "org.1example", ".org.example", strings.Repeat("a.", 128) + "a"} {
		if _, err := b.WatchNameOwner(testCtx(t), name, func(string, string) {}); err == nil || !strings.Contains(err.Error(), "bad bus name") {
			t.Errorf("WatchNameOwner(%q): %v", name, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.names) != 0 {
		t.Fatalf("watches left: %v", b.names)
	}
}

func TestCloseEndsDone(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	closed := make(chan error, 1)
	b, err := Dial(testCtx(t), bus.Address, wireconn.Options{Closed: func(_ *wireconn.Conn, err error) { closed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := b.WatchNameOwner(testCtx(t), testName, func(string, string) {})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after Close")
	}
	if err := <-closed; !errors.Is(err, wireconn.ErrClosed) {
		t.Fatalf("Closed got %v", err)
	}
	stop() // after the end: nothing to send, no error, no hang
	if _, err := b.NameHasOwner(testCtx(t), testName); err == nil {
		t.Fatal("a call on a closed connection succeeded")
	}
}

func TestBusGoneEndsDone(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	bus.Stop()
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the bus went away")
	}
}

func TestAddresses(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "")
	if a := SystemBusAddress(); a != DefaultSystemBusAddress {
		t.Errorf("SystemBusAddress() = %q", a)
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/x")
	if a := SystemBusAddress(); a != "unix:path=/x" {
		t.Errorf("SystemBusAddress() = %q", a)
	}

	dir := t.TempDir()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if a, err := SessionBusAddress(); err == nil {
		t.Errorf("SessionBusAddress() without a bus = %q", a)
	}
	if err := os.WriteFile(filepath.Join(dir, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := SessionBusAddress(); err != nil || a != "unix:path="+filepath.Join(dir, "bus") {
		t.Errorf("SessionBusAddress() = %q, %v", a, err)
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/y")
	if a, err := SessionBusAddress(); err != nil || a != "unix:path=/y" {
		t.Errorf("SessionBusAddress() = %q, %v", a, err)
	}
}

func TestMatchRule(t *testing.T) {
	for _, c := range []struct {
		r    MatchRule
		want string
	}{
		{MatchRule{}, "type='signal'"},
		{MatchRule{Sender: "org.a", PathNamespace: "/a", Member: "M"}, "type='signal',sender='org.a',path_namespace='/a',member='M'"},
		{MatchRule{Arg0: "it's"}, `type='signal',arg0='it'\''s'`},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v: %s, want %s", c.r, got, c.want)
		}
	}
}

func TestCheckBusName(t *testing.T) {
	for _, ok := range []string{"org.example.A", ":1.42", "a.b", "org.foo-bar._x9", ":1.0a", daemonapi.DBusBusName} {
		if err := CheckBusName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", ":1", "a..b", "a.b.", ".a.b", "a.9b", "a.b/c", "a.b c", "ä.b", strings.Repeat("x", 250) + ".abcde"} {
		if err := CheckBusName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWatchCancelled(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.WatchNameOwner(ctx, testName, func(string, string) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchNameOwner with a cancelled ctx: %v", err)
	}
	b.mu.Lock()
	n := len(b.names)
	b.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d watches left", n)
	}
	// No rule is left behind, and the connection still works.
	err := b.RemoveMatch(testCtx(t), nameOwnerRule(testName))
	if n := dbusrt.ErrorName(err); n != "org.freedesktop.DBus.Error.MatchRuleNotFound" {
		t.Fatalf("RemoveMatch after a cancelled watch: %v (%s)", err, n)
	}
}

func TestBusShimOff(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{BusShim: true})
	// A peer calling Hello on our connection's /org/freedesktop/DBus gets
	// no made-up unique name from us.
	g := godbusConn(t, bus)
	var name string
	err := g.Object(b.UniqueName(), daemonapi.DBusPath).Call(daemonapi.DBusInterface+"."+daemonapi.DBusMethodHello, 0).Store(&name)
	if err == nil {
		t.Fatalf("our connection answered Hello with %q", name)
	}
}

// TestWatchesShareRule: a thousand watches of one name cost the bus one
// match rule (it allows 512 per connection), all see the change, and the
// rule goes with the last.
func TestWatchesShareRule(t *testing.T) {
	checkGoroutines(t)
	bus := testbus.Start(t)
	b := dial(t, bus, wireconn.Options{})
	ctx := testCtx(t)
	got := newChanges()
	var stops []func()
	for range 1000 {
		stop, err := b.WatchNameOwner(ctx, testName, got.add)
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	g := godbusConn(t, bus)
	if _, err := g.RequestName(testName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1000)
	for _, stop := range stops[1:] {
		stop()
	}
	rule := nameOwnerRule(testName)
	// One rule is left for the last watch: removing it by hand works
	// once; put it back.
	if err := b.RemoveMatch(ctx, rule); err != nil {
		t.Fatalf("the last watch's rule: %v", err)
	}
	if err := b.AddMatch(ctx, rule); err != nil {
		t.Fatal(err)
	}
	stops[0]()
	if err := b.RemoveMatch(ctx, rule); dbusrt.ErrorName(err) != "org.freedesktop.DBus.Error.MatchRuleNotFound" {
		t.Fatalf("RemoveMatch after the last stop: %v", err)
	}
}
