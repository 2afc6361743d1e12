// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

const transientName = "sb-transient.service"

// env is one sandboxed user manager and a subscribed Client on its bus.
type env struct {
	t    testing.TB
	node *sandbox.Node
	c    *Client
	ctx  context.Context
}

func newEnv(t testing.TB, opts ...func(*Options)) *env {
	t.Helper()
	node := sandbox.StartT(t, sandbox.Options{Name: "sd", Units: sandbox.DemoUnits()})
	o := Options{Address: node.BusAddress}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c, err := Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Subscribe(ctx); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return &env{t: t, node: node, c: c, ctx: ctx}
}

// next waits (30 s at most) for the first event matching pred, dropping
// the others.
func (e *env) next(what string, pred func(Event) bool) Event {
	e.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-e.c.Events():
			if !ok {
				e.t.Fatalf("events closed while waiting for %s", what)
			}
			if pred(ev) {
				return ev
			}
		case <-timeout:
			e.t.Fatalf("no %s within 30s", what)
		}
	}
}

func (e *env) jobRemoved(job dbus.ObjectPath) *JobRemoved {
	e.t.Helper()
	return e.next("JobRemoved "+string(job), func(ev Event) bool {
		jr, ok := ev.(*JobRemoved)
		return ok && jr.Job == job
	}).(*JobRemoved)
}

// run starts a job with method and returns its JobRemoved result.
func (e *env) run(method func(context.Context, string, string, func(dbus.ObjectPath)) (dbus.ObjectPath, error), unit string) string {
	e.t.Helper()
	job, err := method(e.ctx, unit, "replace", nil)
	if err != nil {
		e.t.Fatalf("job on %s: %v", unit, err)
	}
	if !strings.HasPrefix(string(job), JobPathPrefix) {
		e.t.Fatalf("job path %q", job)
	}
	jr := e.jobRemoved(job)
	if jr.Unit != unit {
		e.t.Errorf("JobRemoved unit %q, want %q", jr.Unit, unit)
	}
	return jr.Result
}

func (e *env) prop(unit, iface, name string) any {
	e.t.Helper()
	v, err := e.c.GetUnitProperty(e.ctx, unit, iface, name)
	if err != nil {
		e.t.Fatalf("GetUnitProperty %s %s: %v", unit, name, err)
	}
	return v.Value()
}

func TestJobsDoneAndFailed(t *testing.T) {
	e := newEnv(t)
	c := e.c
	if r := e.run(c.StartUnit, sandbox.SimpleServiceName); r != "done" {
		t.Errorf("start simple: %q", r)
	}
	if s := e.prop(sandbox.SimpleServiceName, UnitInterface, "ActiveState"); s != "active" {
		t.Errorf("ActiveState after start %v", s)
	}
	if r := e.run(c.RestartUnit, sandbox.SimpleServiceName); r != "done" {
		t.Errorf("restart simple: %q", r)
	}
	if r := e.run(c.StopUnit, sandbox.SimpleServiceName); r != "done" {
		t.Errorf("stop simple: %q", r)
	}
	if r := e.run(c.StartUnit, sandbox.OneshotServiceName); r != "done" {
		t.Errorf("start oneshot: %q", r)
	}
	if r := e.run(c.StartUnit, sandbox.FailingServiceName); r != "failed" {
		t.Errorf("start failing: %q", r)
	}
	if s := e.prop(sandbox.FailingServiceName, UnitInterface, "ActiveState"); s != "failed" {
		t.Errorf("ActiveState of failing unit %v", s)
	}
	// reload of a unit without ExecReload is refused by systemd
	_, err := c.ReloadUnit(e.ctx, sandbox.SimpleServiceName, "replace", nil)
	if name := dbusrt.ErrorName(err); name == "" {
		t.Errorf("ReloadUnit of a unit that cannot reload: %v, want a D-Bus error", err)
	}
	if err := c.ResetFailedUnit(e.ctx, sandbox.FailingServiceName); err != nil {
		t.Fatal(err)
	}
	if s := e.prop(sandbox.FailingServiceName, UnitInterface, "ActiveState"); s != "inactive" {
		t.Errorf("ActiveState after ResetFailedUnit %v", s)
	}
	if r := e.run(c.StartUnit, sandbox.FailingServiceName); r != "failed" {
		t.Errorf("start failing: %q", r)
	}
	if err := c.ResetFailed(e.ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.prop(sandbox.FailingServiceName, UnitInterface, "ActiveState"); s != "inactive" {
		t.Errorf("ActiveState after ResetFailed %v", s)
	}
}

func TestErrorsKeepNameAndMessage(t *testing.T) {
	e := newEnv(t)
	_, err := e.c.StartUnit(e.ctx, "no-such-unit.service", "replace", func(dbus.ObjectPath) {
		t.Error("track called for a failed call")
	})
	var de dbus.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %T %v is not a dbus.Error", err, err)
	}
	if de.Name != ErrNoSuchUnit {
		t.Errorf("error name %q, want %q", de.Name, ErrNoSuchUnit)
	}
	if msg := dbusrt.ErrorMessage(err); msg != "Unit no-such-unit.service not found." {
		t.Errorf("error message %q", msg)
	}
	_, err = e.c.StartUnit(e.ctx, sandbox.SimpleServiceName, "no-such-mode", nil)
	if n := dbusrt.ErrorName(err); n != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Errorf("bad mode: %v (%s)", err, n)
	}
	// a timed-out call is NoReply
	c2, err := Connect(e.ctx, Options{Address: e.node.BusAddress, CallTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.ListUnits(context.Background()); dbusrt.ErrorName(err) != ErrNoReply {
		t.Errorf("timed-out call: %v", err)
	}
}

func TestPropertiesKeepSignatures(t *testing.T) {
	e := newEnv(t)
	if r := e.run(e.c.StartUnit, sandbox.SimpleServiceName); r != "done" {
		t.Fatalf("start: %q", r)
	}
	for _, iface := range []string{"", "org.freedesktop.systemd1.Service"} {
		props, err := e.c.GetUnitProperties(e.ctx, sandbox.SimpleServiceName, iface)
		if err != nil {
			t.Fatalf("GetUnitProperties(%q): %v", iface, err)
		}
		es, ok := props["ExecStart"]
		if !ok {
			t.Fatalf("GetUnitProperties(%q): no ExecStart among %d properties", iface, len(props))
		}
		if sig := es.Signature().String(); sig != "a(sasbttttuii)" {
			t.Errorf("GetUnitProperties(%q): ExecStart signature %s", iface, sig)
		}
		if iface == "" {
			// all interfaces: Unit properties are there too
			if v, ok := props["ActiveState"]; !ok || v.Value() != "active" {
				t.Errorf("ActiveState in all-interface GetAll: %v", v)
			}
		}
		// the map can be sent on as is
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath: dbus.MakeVariant(dbus.ObjectPath("/x")), dbus.FieldInterface: dbus.MakeVariant("x.y"),
			dbus.FieldMember: dbus.MakeVariant("Z"), dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(props)),
		}, Body: []any{props}}
		if err := msg.EncodeTo(io.Discard, binary.LittleEndian); err != nil {
			t.Errorf("re-encoding GetAll(%q): %v", iface, err)
		}
	}
	v, err := e.c.GetUnitProperty(e.ctx, sandbox.SimpleServiceName, "org.freedesktop.systemd1.Service", "ExecStart")
	if err != nil {
		t.Fatal(err)
	}
	if sig := v.Signature().String(); sig != "a(sasbttttuii)" {
		t.Errorf("GetUnitProperty ExecStart signature %s", sig)
	}
	// an unknown property keeps systemd's error
	_, err = e.c.GetUnitProperty(e.ctx, sandbox.SimpleServiceName, UnitInterface, "NoSuchProperty")
	if n := dbusrt.ErrorName(err); n != "org.freedesktop.DBus.Error.UnknownProperty" {
		t.Errorf("unknown property: %v", err)
	}
	// GetAll on a unit that does not exist: systemd loads a not-found unit
	props, err := e.c.GetUnitProperties(e.ctx, "no-such-unit.service", UnitInterface)
	if err != nil {
		t.Fatal(err)
	}
	if ls := props["LoadState"].Value(); ls != "not-found" {
		t.Errorf("LoadState of a missing unit %v", ls)
	}
}

func TestSetUnitProperties(t *testing.T) {
	e := newEnv(t)
	if r := e.run(e.c.StartUnit, sandbox.SimpleServiceName); r != "done" {
		t.Fatalf("start: %q", r)
	}
	err := e.c.SetUnitProperties(e.ctx, sandbox.SimpleServiceName, true, []bluechi.UnitProperty{
		{Name: "CPUWeight", Value: dbus.MakeVariant(uint64(321))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := e.prop(sandbox.SimpleServiceName, "org.freedesktop.systemd1.Service", "CPUWeight"); w != uint64(321) {
		t.Errorf("CPUWeight %v", w)
	}
	err = e.c.SetUnitProperties(e.ctx, sandbox.SimpleServiceName, true, []bluechi.UnitProperty{
		{Name: "NoSuchProperty", Value: dbus.MakeVariant("x")},
	})
	if dbusrt.ErrorName(err) == "" {
		t.Errorf("unknown property accepted: %v", err)
	}
}

func TestEnableDisableAndUnitFiles(t *testing.T) {
	e := newEnv(t)
	c := e.c
	unit := sandbox.SimpleServiceName
	if st, err := c.GetUnitFileState(e.ctx, unit); err != nil || st != "disabled" {
		t.Fatalf("state before enable: %q %v", st, err)
	}
	carries, changes, err := c.EnableUnitFiles(e.ctx, []string{unit}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(e.node.UnitDir, "default.target.wants", unit)
	want := []bluechi.UnitFileChange{{Type: "symlink", Filename: link, Destination: filepath.Join(e.node.UnitDir, unit)}}
	if !carries || !slices.Equal(changes, want) {
		t.Errorf("enable: %v %+v, want true %+v", carries, changes, want)
	}
	if st, err := c.GetUnitFileState(e.ctx, unit); err != nil || st != "enabled" {
		t.Errorf("state after enable: %q %v", st, err)
	}
	files, err := c.ListUnitFiles(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, bluechi.UnitFileInfo{Path: filepath.Join(e.node.UnitDir, unit), State: "enabled"}) {
		t.Errorf("ListUnitFiles lacks the enabled unit: %+v", files)
	}
	changes, err = c.DisableUnitFiles(e.ctx, []string{unit}, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bluechi.UnitFileChange{{Type: "unlink", Filename: link}}; !slices.Equal(changes, want) {
		t.Errorf("disable: %+v, want %+v", changes, want)
	}
	if st, err := c.GetUnitFileState(e.ctx, unit); err != nil || st != "disabled" {
		t.Errorf("state after disable: %q %v", st, err)
	}
	_, _, err = c.EnableUnitFiles(e.ctx, []string{"no-such-unit.service"}, false, false)
	if dbusrt.ErrorName(err) == "" {
		t.Errorf("enabling a missing unit: %v", err)
	}
	if _, err := c.GetUnitFileState(e.ctx, "no-such-unit.service"); dbusrt.ErrorName(err) == "" {
		t.Errorf("state of a missing unit file: %v", err)
	}
}

func TestDefaultTargetAndReload(t *testing.T) {
	e := newEnv(t)
	c := e.c
	target, err := c.GetDefaultTarget(e.ctx)
	if err != nil || target != "default.target" {
		t.Fatalf("GetDefaultTarget %q %v", target, err)
	}
	changes, err := c.SetDefaultTarget(e.ctx, "basic.target", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 || changes[0].Type != "symlink" {
		t.Errorf("SetDefaultTarget changes %+v", changes)
	}
	if target, err := c.GetDefaultTarget(e.ctx); err != nil || target != "basic.target" {
		t.Errorf("after SetDefaultTarget: %q %v", target, err)
	}
	if _, err := c.SetDefaultTarget(e.ctx, "no-such.target", false); dbusrt.ErrorName(err) == "" {
		t.Errorf("missing target accepted: %v", err)
	}

	// a unit file written after start is seen after Reload
	const late = "sb-late.service"
	if err := e.node.WriteUnit(late, sandbox.OneshotService); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.next("Reloading(false)", func(ev Event) bool { r, ok := ev.(*Reloading); return ok && !r.Active })
	if r := e.run(c.StartUnit, late); r != "done" {
		t.Errorf("start of a unit added before Reload: %q", r)
	}
}

func TestUnitEvents(t *testing.T) {
	e := newEnv(t)
	unit := sandbox.SimpleServiceName
	path := UnitPath(unit)
	var jobPath dbus.ObjectPath
	_, err := e.c.StartUnit(e.ctx, unit, "replace", func(j dbus.ObjectPath) { jobPath = j })
	if err != nil {
		t.Fatal(err)
	}
	// in order: UnitNew (not loaded before), JobNew, state changes, JobRemoved
	var seen []string
	var active bool
	e.next("JobRemoved", func(ev Event) bool {
		switch x := ev.(type) {
		case *UnitNew:
			if x.ID == unit {
				if x.Path != path {
					t.Errorf("UnitNew path %s, want %s", x.Path, path)
				}
				seen = append(seen, "UnitNew")
			}
		case *JobNew:
			if x.Job == jobPath {
				seen = append(seen, "JobNew")
			}
		case *PropertiesChanged:
			if x.Path == path && x.Interface == UnitInterface {
				if x.Unit != unit {
					t.Errorf("PropertiesChanged unit %q", x.Unit)
				}
				if v, ok := x.String("ActiveState"); ok && v == "active" && !active {
					active = true
					seen = append(seen, "active")
				}
			}
		case *JobRemoved:
			if x.Job == jobPath {
				seen = append(seen, "JobRemoved:"+x.Result)
				return true
			}
		}
		return false
	})
	if want := []string{"UnitNew", "JobNew", "active", "JobRemoved:done"}; !slices.Equal(seen, want) {
		t.Errorf("events %v, want %v", seen, want)
	}

	// stopping from elsewhere (systemctl in the node) is seen too
	if _, err := e.node.Exec(e.ctx, "systemctl", "--user", "stop", unit); err != nil {
		t.Fatal(err)
	}
	e.next("ActiveState inactive", func(ev Event) bool {
		pc, ok := ev.(*PropertiesChanged)
		if !ok || pc.Unit != unit || pc.Interface != UnitInterface {
			return false
		}
		v, ok := pc.String("ActiveState")
		return ok && v == "inactive"
	})
}

func TestKillFreezeTransientCancel(t *testing.T) {
	e := newEnv(t)
	c := e.c
	unit := sandbox.SimpleServiceName
	if r := e.run(c.StartUnit, unit); r != "done" {
		t.Fatalf("start: %q", r)
	}
	// Freeze/Thaw: the cgroup freezer may be missing (hybrid cgroups); then
	// systemd's error must come through intact.
	if err := c.FreezeUnit(e.ctx, unit); err != nil {
		if dbusrt.ErrorName(err) == "" {
			t.Errorf("FreezeUnit: %v is not a D-Bus error", err)
		}
		t.Logf("FreezeUnit here: %v (%s)", err, dbusrt.ErrorName(err))
	} else {
		if s := e.prop(unit, UnitInterface, "FreezerState"); s != "frozen" {
			t.Errorf("FreezerState after Freeze %v", s)
		}
		if err := c.ThawUnit(e.ctx, unit); err != nil {
			t.Errorf("ThawUnit: %v", err)
		}
	}
	if err := c.KillUnit(e.ctx, unit, "all", 15); err != nil {
		t.Fatal(err)
	}
	e.next("inactive after KillUnit", func(ev Event) bool {
		pc, ok := ev.(*PropertiesChanged)
		v, _ := pc.String("ActiveState")
		return ok && pc.Unit == unit && pc.Interface == UnitInterface && v == "inactive"
	})
	if err := c.KillUnit(e.ctx, "no-such-unit.service", "all", 15); dbusrt.ErrorName(err) == "" {
		t.Errorf("KillUnit of a missing unit: %v", err)
	}

	// transient unit with an a(sasb) ExecStart and an empty aux list
	job, err := c.StartTransientUnit(e.ctx, transientName, "replace", []bluechi.UnitProperty{
		{Name: "Description", Value: dbus.MakeVariant("transient test")},
		{Name: "ExecStart", Value: dbus.MakeVariant([]execCmd{{"/bin/sleep", []string{"/bin/sleep", "infinity"}, false}})},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.jobRemoved(job).Result; r != "done" {
		t.Errorf("transient start %q", r)
	}
	if d := e.prop(transientName, UnitInterface, "Description"); d != "transient test" {
		t.Errorf("transient Description %v", d)
	}
	if tr := e.prop(transientName, UnitInterface, "Transient"); tr != true {
		t.Errorf("Transient %v", tr)
	}

	// cancel a running job by path and by id
	for _, byID := range []bool{false, true} {
		var jobID uint32
		job, err := c.StartUnit(e.ctx, sandbox.SlowServiceName, "replace", nil)
		if err != nil {
			t.Fatal(err)
		}
		e.next("JobNew", func(ev Event) bool {
			jn, ok := ev.(*JobNew)
			if ok && jn.Job == job {
				jobID = jn.ID
			}
			return ok && jn.Job == job
		})
		if byID {
			err = c.CancelJobID(e.ctx, jobID)
		} else {
			err = c.CancelJob(e.ctx, job)
		}
		if err != nil {
			t.Fatalf("cancel (by id %v): %v", byID, err)
		}
		if r := e.jobRemoved(job).Result; r != "canceled" {
			t.Errorf("cancelled job result %q", r)
		}
	}
	if err := c.CancelJobID(e.ctx, 999999); dbusrt.ErrorName(err) != "org.freedesktop.systemd1.NoSuchJob" {
		t.Errorf("cancel of a missing job: %v", err)
	}
}

// execCmd is the (sasb) of ExecStart in StartTransientUnit.
type execCmd struct {
	Path          string
	Argv          []string
	IgnoreFailure bool
}

func TestListUnits(t *testing.T) {
	e := newEnv(t)
	if r := e.run(e.c.StartUnit, sandbox.SimpleServiceName); r != "done" {
		t.Fatalf("start: %q", r)
	}
	units, err := e.c.ListUnits(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, u := range units {
		if u.Name == sandbox.SimpleServiceName {
			found = true
			if u.ActiveState != "active" || u.SubState != "running" || u.LoadState != "loaded" || u.Path != UnitPath(u.Name) {
				t.Errorf("unit record %+v", u)
			}
		}
		if strings.HasPrefix(u.Name, "mnt-") || strings.HasPrefix(u.Name, "gpg-agent") {
			t.Errorf("host unit %s in a sandboxed node", u.Name)
		}
	}
	if !found {
		t.Errorf("ListUnits lacks %s: %+v", sandbox.SimpleServiceName, units)
	}
	t.Logf("%d units loaded in a fresh sandbox node", len(units))

	// The same list as bytes decodes to the same records (nothing changes
	// in between: the node is idle).
	raw, err := e.c.ListUnitsRaw(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dbus.DecodeMessage(bytes.NewReader(wire.AppendSignal(nil, 1, "/", "a.b", "C", "", SigListUnits, raw)))
	if err != nil {
		t.Fatal(err)
	}
	var fromRaw []bluechi.UnitInfo
	if err := dbus.Store(msg.Body, &fromRaw); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(units, fromRaw); diff != "" {
		t.Errorf("ListUnitsRaw differs from ListUnits:\n%s", diff)
	}
}

// UnitPath must be the path systemd itself uses for any unit name.
func TestUnitPathMatchesSystemd(t *testing.T) {
	e := newEnv(t)
	names := []string{
		sandbox.SimpleServiceName, "foo@bar-baz.service", `x\x2dy.service`, "0lead.service",
		"a:b.service", "with_underscore.service", "dev-sda1.device", "-.mount",
	}
	for _, n := range names {
		body, err := e.c.Call(e.ctx, ManagerPath, ManagerInterface, "LoadUnit", n)
		if err != nil {
			t.Errorf("LoadUnit %q: %v", n, err)
			continue
		}
		if got := body[0].(dbus.ObjectPath); got != UnitPath(n) {
			t.Errorf("UnitPath(%q) = %s, systemd says %s", n, UnitPath(n), got)
		}
		if back, ok := UnitNameFromPath(UnitPath(n)); !ok || back != n {
			t.Errorf("UnitNameFromPath(UnitPath(%q)) = %q %v", n, back, ok)
		}
	}
	if _, ok := UnitNameFromPath(ManagerPath); ok {
		t.Error("manager path taken for a unit path")
	}
}

// The private socket (system mode as root uses /run/systemd/private; a user
// manager has one in its runtime folder) works without a bus daemon.
func TestPrivateSocket(t *testing.T) {
	node := sandbox.StartT(t, sandbox.Options{Name: "priv", Units: sandbox.DemoUnits()})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{Address: "unix:path=" + filepath.Join(node.RuntimeDir, "systemd", "private"), Private: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := &env{t: t, node: node, c: c, ctx: ctx}
	if err := c.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListUnits(ctx); err != nil {
		t.Fatal(err)
	}
	if r := e.run(c.StartUnit, sandbox.SimpleServiceName); r != "done" {
		t.Errorf("start over the private socket: %q", r)
	}
	if r := e.run(c.StartUnit, sandbox.FailingServiceName); r != "failed" {
		t.Errorf("failing start over the private socket: %q", r)
	}
	props, err := c.GetUnitProperties(ctx, sandbox.SimpleServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	if sig := props["ExecStart"].Signature().String(); sig != "a(sasbttttuii)" {
		t.Errorf("ExecStart signature over the private socket %s", sig)
	}
	if _, err := c.StartUnit(ctx, "no-such-unit.service", "replace", nil); dbusrt.ErrorName(err) != ErrNoSuchUnit {
		t.Errorf("missing unit over the private socket: %v", err)
	}
}

// A JobRemoved never overtakes the track function of the call that created
// the job, even when systemd has long sent it: each track function holds on
// until an independent observer has seen the JobRemoved and then until
// either the client's event stream waits for it (right) or the event was
// delivered (wrong).
func TestJobRemovedWaitsForTrack(t *testing.T) {
	e := newEnv(t)
	obs, err := e.node.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	obsCh := make(chan *dbus.Signal, 1024)
	obs.Signal(obsCh)
	if err := obs.AddMatchSignal(dbus.WithMatchSender(BusName), dbus.WithMatchMember("JobRemoved")); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	flags := map[string]chan struct{}{} // "<kind> <job>" -> closed once it happened
	flag := func(kind string, job dbus.ObjectPath) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		k := kind + " " + string(job)
		if flags[k] == nil {
			flags[k] = make(chan struct{})
		}
		return flags[k]
	}
	raise := func(kind string, job dbus.ObjectPath) {
		ch := flag(kind, job)
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	go func() {
		for s := range obsCh {
			if len(s.Body) == 4 {
				raise("observed", s.Body[1].(dbus.ObjectPath))
			}
		}
	}()
	e.c.gateHook = func(job dbus.ObjectPath) { raise("gated", job) }

	tracked := map[dbus.ObjectPath]*atomic.Bool{}
	var received atomic.Int32
	go func() {
		for ev := range e.c.Events() {
			jr, ok := ev.(*JobRemoved)
			if !ok {
				continue
			}
			mu.Lock()
			done := tracked[jr.Job]
			mu.Unlock()
			if done == nil || !done.Load() {
				t.Errorf("JobRemoved for %s delivered before its track function finished", jr.Job)
			}
			raise("delivered", jr.Job)
			received.Add(1)
		}
	}()

	const n = 10
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.c.StartUnit(e.ctx, sandbox.OneshotServiceName, "replace", func(job dbus.ObjectPath) {
				done := &atomic.Bool{}
				mu.Lock()
				if tracked[job] == nil {
					tracked[job] = done
				} else {
					done = tracked[job] // merged into a queued job
				}
				mu.Unlock()
				timeout := time.After(30 * time.Second)
				select {
				case <-flag("observed", job):
				case <-timeout:
					t.Errorf("observer saw no JobRemoved for %s", job)
				}
				select {
				case <-flag("gated", job):
				case <-flag("delivered", job):
				case <-timeout:
					t.Errorf("JobRemoved for %s neither held nor delivered", job)
				}
				done.Store(true)
			})
			if err != nil {
				t.Errorf("start: %v", err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	jobs := len(tracked)
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for int(received.Load()) < jobs {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d JobRemoved delivered", received.Load(), jobs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d calls, %d distinct jobs (systemd merges requests into a queued job)", n, jobs)
}

func TestConnectErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Connect(ctx, Options{Address: "unix:path=/nonexistent/bus"}); err == nil {
		t.Error("connect to a missing socket succeeded")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", "") // no user manager's private socket either
	if _, err := Connect(ctx, Options{}); err == nil {
		t.Error("connect without a session bus address succeeded")
	}
}

// TestUserPrivateSocket: the user manager's private socket is used when it
// is a socket owned by us, and only then.
func TestUserPrivateSocket(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if p := userPrivateSocket(); p != "" {
		t.Errorf("without a socket: %q", p)
	}
	if err := os.Mkdir(filepath.Join(dir, "systemd"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "systemd", "private")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p := userPrivateSocket(); p != "" {
		t.Errorf("a plain file: %q", p)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p := userPrivateSocket(); p != path {
		t.Errorf("our socket: %q, want %q", p, path)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if p := userPrivateSocket(); p != "" {
			t.Errorf("another user's socket: %q", p)
		}
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if p := userPrivateSocket(); p != "" {
		t.Errorf("without XDG_RUNTIME_DIR: %q", p)
	}
}

// Closing the client ends the event stream.
func TestCloseEndsEvents(t *testing.T) {
	e := newEnv(t)
	e.c.Close()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-e.c.Events():
			if !ok {
				select {
				case <-e.c.Done():
				case <-timeout:
					t.Fatal("Done not closed")
				}
				return
			}
		case <-timeout:
			t.Fatal("events not closed after Close")
		}
	}
}

func BenchmarkStartJobRemoved(b *testing.B) {
	e := newEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		job, err := e.c.StartUnit(e.ctx, sandbox.OneshotServiceName, "replace", nil)
		if err != nil {
			b.Fatal(err)
		}
		if r := e.jobRemoved(job).Result; r != "done" {
			b.Fatalf("result %q", r)
		}
	}
}

func BenchmarkListUnits(b *testing.B) {
	e := newEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.c.ListUnits(e.ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListUnitsPrivate(b *testing.B) {
	node := sandbox.StartT(b, sandbox.Options{Name: "bench"})
	c, err := Connect(context.Background(), Options{Address: "unix:path=" + filepath.Join(node.RuntimeDir, "systemd", "private"), Private: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.ListUnits(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestForgedSignalsIgnored: on a bus, a JobRemoved sent to the client by
// someone other than systemd is not delivered as an event.
func TestForgedSignalsIgnored(t *testing.T) {
	e := newEnv(t)
	evil, _, err := dbusrt.ConnectBus(e.node.BusAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	forged := dbus.ObjectPath(JobPathPrefix + "424242")
	if err := dbusrt.EmitTo(evil, e.c.UniqueName(), ManagerPath, ManagerInterface, "JobRemoved",
		uint32(424242), forged, sandbox.OneshotServiceName, "done"); err != nil {
		t.Fatal(err)
	}
	// A real job after the forgery: its JobRemoved is the first one seen.
	job, err := e.c.StartUnit(e.ctx, sandbox.OneshotServiceName, "replace", nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := e.next("a JobRemoved", func(ev Event) bool { _, ok := ev.(*JobRemoved); return ok }).(*JobRemoved)
	if ev.Job != job {
		t.Fatalf("first JobRemoved is %s (forged %s), want %s", ev.Job, forged, job)
	}
}

// BenchmarkStartJobRemovedPrivate is BenchmarkStartJobRemoved on the user
// manager's private socket, as the agent talks to systemd, with this
// process's CPU time per job (cpu-us).
func BenchmarkStartJobRemovedPrivate(b *testing.B) {
	node := sandbox.StartT(b, sandbox.Options{Name: "bench", Units: sandbox.DemoUnits()})
	ctx := context.Background()
	c, err := Connect(ctx, Options{Address: "unix:path=" + filepath.Join(node.RuntimeDir, "systemd", "private"), Private: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx); err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, node: node, c: c, ctx: ctx}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	for b.Loop() {
		job, err := c.StartUnit(ctx, sandbox.OneshotServiceName, "replace", nil)
		if err != nil {
			b.Fatal(err)
		}
		if r := e.jobRemoved(job).Result; r != "done" {
			b.Fatalf("result %q", r)
		}
	}
	b.ReportMetric(float64((cpu()-before).Microseconds())/float64(b.N), "cpu-us")
}
