// SPDX-License-Identifier: Apache-2.0

package daemonapi

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/sandbox"
	"github.com/bluechi-go/bluechi/internal/transport"
	"github.com/bluechi-go/bluechi/internal/wire"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// TestSystemdWireClient drives a real systemd (a sandboxed user manager)
// through the generated systemd clients on its private socket, as the
// agent does: every signature of idl/systemd it uses is checked against
// systemd itself.
func TestSystemdWireClient(t *testing.T) {
	node := sandbox.StartT(t, sandbox.Options{Name: "wire", Units: map[string]string{
		"wiretest.service": "[Unit]\nDescription=wire test\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=default.target\n",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	jobs := make(chan Systemd1ManagerJobRemovedSignal, 16)
	props := make(chan DBusPropertiesPropertiesChangedSignal, 64)
	conn, err := wireconn.Dial(ctx, "unix:path="+filepath.Join(node.RuntimeDir, "systemd", "private"), wireconn.Options{
		Mechanism: transport.MechanismExternal,
		Signal: func(c *wireconn.Conn, m *wire.Message) {
			switch {
			case m.Interface == Systemd1ManagerInterface && m.Member == Systemd1ManagerSignalJobRemoved:
				s, err := DecodeSystemd1ManagerJobRemoved(m)
				if err != nil {
					t.Error(err)
					return
				}
				jobs <- s
			case m.Interface == DBusPropertiesInterface && m.Member == DBusPropertiesSignalPropertiesChanged:
				s, err := DecodeDBusPropertiesPropertiesChanged(m)
				if err != nil {
					t.Error(err)
					return
				}
				select {
				case props <- s:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.Start()
	defer conn.Close()
	mgr := NewSystemd1ManagerWireClient(conn, "", string(Systemd1ManagerPath))
	if err := mgr.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	unit, err := mgr.LoadUnit(ctx, "wiretest.service")
	if err != nil || unit != Systemd1UnitPath("wiretest.service") {
		t.Fatalf("LoadUnit: %v %v", unit, err)
	}
	if state, err := mgr.GetUnitFileState(ctx, "wiretest.service"); err != nil || state != "disabled" {
		t.Fatalf("GetUnitFileState: %q %v", state, err)
	}
	carries, changes, err := mgr.EnableUnitFiles(ctx, []string{"wiretest.service"}, false, false)
	if err != nil || !carries || len(changes) == 0 {
		t.Fatalf("EnableUnitFiles: %v %v %v", carries, changes, err)
	}
	if changes, err := mgr.DisableUnitFiles(ctx, []string{"wiretest.service"}, false); err != nil || len(changes) == 0 {
		t.Fatalf("DisableUnitFiles: %v %v", changes, err)
	}
	job, err := mgr.StartUnit(ctx, "wiretest.service", "replace")
	if err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case s := <-jobs:
			if s.Job == job {
				if s.Unit != "wiretest.service" || s.Result != "done" {
					t.Fatalf("JobRemoved %+v", s)
				}
				done = true
			}
		case <-ctx.Done():
			t.Fatal("no JobRemoved")
		}
	}
	units, err := mgr.ListUnits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *bluechi.UnitInfo
	for k := range units {
		if units[k].Name == "wiretest.service" {
			found = &units[k]
		}
	}
	if found == nil || found.ActiveState != "active" || found.Path != unit {
		t.Fatalf("ListUnits: %+v", found)
	}
	files, err := mgr.ListUnitFiles(ctx)
	if err != nil || len(files) == 0 {
		t.Fatalf("ListUnitFiles: %d %v", len(files), err)
	}
	pc := NewDBusPropertiesWireClient(conn, "", string(unit))
	all, err := pc.GetAll(ctx, Systemd1UnitInterface)
	if err != nil || all["ActiveState"].Value() != "active" {
		t.Fatalf("GetAll: %v %v", all["ActiveState"], err)
	}
	v, err := pc.Get(ctx, Systemd1UnitInterface, "Description")
	if err != nil || v.Value() != "wire test" {
		t.Fatalf("Get: %v %v", v, err)
	}
	if err := mgr.SetUnitProperties(ctx, "wiretest.service", true, []bluechi.UnitProperty{{Name: "Description", Value: dbus.MakeVariant("changed")}}); err != nil {
		t.Fatal(err)
	}
	if v, err := pc.Get(ctx, Systemd1UnitInterface, "Description"); err != nil || v.Value() != "changed" {
		t.Fatalf("Get after SetUnitProperties: %v %v", v, err)
	}
	tj, err := mgr.StartTransientUnit(ctx, "wiretransient.service", "replace",
		[]bluechi.UnitProperty{{Name: "ExecStart", Value: dbus.MakeVariant([]struct {
			Path       string
			Args       []string
			IgnoreFail bool
		}{{"/bin/sleep", []string{"/bin/sleep", "30"}, false}})}}, nil)
	if err != nil || tj == "" {
		t.Fatalf("StartTransientUnit: %v %v", tj, err)
	}
	if err := mgr.KillUnit(ctx, "wiretransient.service", "all", 15); err != nil {
		t.Fatalf("KillUnit: %v", err)
	}
	if _, err := mgr.StopUnit(ctx, "wiretest.service", "replace"); err != nil {
		t.Fatal(err)
	}
	if err := mgr.ResetFailed(ctx); err != nil {
		t.Fatal(err)
	}
	// systemd's errors come back with their names.
	var we *wireconn.Error
	if err := mgr.ResetFailedUnit(ctx, "nosuch.service"); !errors.As(err, &we) || we.Name != "org.freedesktop.systemd1.NoSuchUnit" {
		t.Fatalf("ResetFailedUnit of a missing unit: %v", err)
	}
	if _, err := mgr.GetUnit(ctx, "nosuch.service"); !errors.As(err, &we) || we.Name != "org.freedesktop.systemd1.NoSuchUnit" {
		t.Fatalf("GetUnit of a missing unit: %v", err)
	}
	if target, err := mgr.GetDefaultTarget(ctx); err != nil || target == "" {
		t.Fatalf("GetDefaultTarget: %q %v", target, err)
	}
	if err := mgr.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// A job to cancel: the start of a oneshot service that takes long.
	if err := node.WriteUnit("slow.service", "[Service]\nType=oneshot\nExecStart=/bin/sleep 30\n"); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	sj, err := mgr.StartUnit(ctx, "slow.service", "replace")
	if err != nil {
		t.Fatal(err)
	}
	if err := NewSystemd1JobWireClient(conn, "", string(sj)).Cancel(ctx); err != nil {
		t.Fatalf("Job.Cancel: %v", err)
	}
	for done := false; !done; {
		select {
		case s := <-jobs:
			if s.Job == sj {
				if s.Result != "canceled" {
					t.Fatalf("cancelled job: %+v", s)
				}
				done = true
			}
		case <-ctx.Done():
			t.Fatal("no JobRemoved for the cancelled job")
		}
	}
	// The unit and job objects signalled their changes meanwhile.
	select {
	case s := <-props:
		if s.InterfaceName == "" {
			t.Fatalf("PropertiesChanged %+v", s)
		}
	case <-ctx.Done():
		t.Fatal("no PropertiesChanged")
	}
	if err := mgr.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
}
