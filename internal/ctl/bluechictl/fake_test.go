// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

// fakeController serves a scripted controller with nodes n1 and n2 on a
// private bus, recording what bluechictl sends.
type fakeController struct {
	daemonapi.UnimplementedControllerServer
	obj   *daemonapi.ControllerObject
	mu    sync.Mutex
	calls []string
	nodes map[string]*fakeNode
}

type fakeNode struct {
	daemonapi.UnimplementedNodeServer
	c     *fakeController
	name  string
	obj   *daemonapi.NodeObject
	props []bluechi.UnitProperty
}

func (f *fakeController) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeController) recorded() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ";")
}

func (f *fakeController) ListNodes(ctx context.Context) ([]bluechi.NodeInfo, error) {
	return []bluechi.NodeInfo{
		{Name: "n1", Path: bluechi.NodePath("n1"), Status: "online", PeerIP: "10.0.0.1"},
		{Name: "n2", Path: bluechi.NodePath("n2"), Status: "offline"},
	}, nil
}

func (f *fakeController) ListUnits(ctx context.Context) (map[string][]bluechi.UnitInfo, error) {
	return map[string][]bluechi.UnitInfo{
		"n2": {unit("b.service", "inactive", "dead")},
		"n1": {unit("a-long-name.service", "active", "running"), unit("x.socket", "active", "listening")},
	}, nil
}

func unit(name, active, sub string) bluechi.UnitInfo {
	return bluechi.UnitInfo{Name: name, ActiveState: active, SubState: sub, Path: "/", JobPath: "/"}
}

func (n *fakeNode) offline() error {
	if n.name == "n2" {
		return dbusrt.NewError(bluechi.ErrorNameOffline, "Node is offline")
	}
	return nil
}

func (n *fakeNode) StartUnit(ctx context.Context, name, mode string) (dbus.ObjectPath, error) {
	n.c.record("StartUnit " + name + " " + mode)
	if err := n.offline(); err != nil {
		return "", err
	}
	job := dbus.ObjectPath("/org/eclipse/bluechi/job/7")
	// The job ends before the reply is sent: the client must not miss it.
	n.c.obj.EmitJobRemoved(bluechi.ControllerJobRemovedSignal{ID: 6, Job: "/org/eclipse/bluechi/job/6", Node: n.name, Unit: "other.service", Result: "failed"})
	n.c.obj.EmitJobRemoved(bluechi.ControllerJobRemovedSignal{ID: 7, Job: job, Node: n.name, Unit: name, Result: "done"})
	return job, nil
}

func (n *fakeNode) StopUnit(ctx context.Context, name, mode string) (dbus.ObjectPath, error) {
	n.c.record("StopUnit " + name)
	// The node disconnects while the job runs: no JobRemoved ever comes.
	go func() {
		n.obj.SetStatus("offline")
	}()
	return "/org/eclipse/bluechi/job/8", nil
}

func (n *fakeNode) SetUnitProperties(ctx context.Context, name string, runtime bool, kv []bluechi.UnitProperty) error {
	n.c.record("SetUnitProperties " + name)
	n.c.mu.Lock()
	n.props = kv
	n.c.mu.Unlock()
	if !runtime {
		return dbusrt.NewError(dbusrt.ErrInvalidArgs, "only runtime in this test")
	}
	return nil
}

func (n *fakeNode) ResetFailed(ctx context.Context) error {
	n.c.record("ResetFailed " + n.name)
	return n.offline()
}

func (n *fakeNode) DisableUnitFiles(ctx context.Context, files []string, runtime bool) ([]bluechi.UnitFileChange, error) {
	n.c.record("DisableUnitFiles " + strings.Join(files, ","))
	return nil, dbusrt.NewError("org.freedesktop.systemd1.NoSuchUnit", "Unit file %s does not exist.", files[0])
}

func (n *fakeNode) EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (bool, []bluechi.UnitFileChange, error) {
	n.c.record("EnableUnitFiles " + strings.Join(files, ","))
	return true, []bluechi.UnitFileChange{{Type: "symlink", Filename: "/w/a.service", Destination: "/u/a.service"}, {Type: "unlink", Filename: "/old"}, {Type: "odd"}}, nil
}

func (n *fakeNode) FreezeUnit(ctx context.Context, name string) error {
	n.c.record("FreezeUnit " + name)
	return n.offline()
}

func (n *fakeNode) ThawUnit(ctx context.Context, name string) error {
	n.c.record("ThawUnit " + name)
	return n.offline()
}

func (n *fakeNode) KillUnit(ctx context.Context, name, who string, signal int32) error {
	n.c.record(fmt.Sprintf("KillUnit %s %s %d", name, who, signal))
	return n.offline()
}

func (n *fakeNode) SetLogLevel(ctx context.Context, level string) error {
	n.c.record("SetLogLevel " + n.name + " " + level)
	return nil
}

func (n *fakeNode) Reload(ctx context.Context) error {
	n.c.record("Reload " + n.name)
	return n.offline()
}

func (n *fakeNode) GetUnitFileState(ctx context.Context, file string) (string, error) {
	return map[string]string{"a.service": "enabled", "b.service": "disabled", "c.service": "static"}[file], nil
}

func (n *fakeNode) GetUnitProperties(ctx context.Context, name, iface string) (map[string]dbus.Variant, error) {
	if name == "gone.service" {
		return map[string]dbus.Variant{"Id": dbus.MakeVariant(name), "LoadState": dbus.MakeVariant("not-found")}, nil
	}
	return map[string]dbus.Variant{"Id": dbus.MakeVariant(name), "LoadState": dbus.MakeVariant("loaded"),
		"ActiveState": dbus.MakeVariant("active"), "SubState": dbus.MakeVariant("running"), "FreezerState": dbus.MakeVariant("running"),
		"UnitFileState": dbus.MakeVariant(""), "NRestarts": dbus.MakeVariant(uint32(3))}, n.offline()
}

func startFake(t *testing.T) (*fakeController, func(bool) (*dbus.Conn, error)) {
	bus := testbus.Start(t)
	conn, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeController{nodes: map[string]*fakeNode{}}
	if f.obj, err = daemonapi.ExportController(conn, bluechi.ControllerPath, f, bluechi.ControllerProperties{Status: "degraded"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n1", "n2"} {
		n := &fakeNode{c: f, name: name}
		status := map[string]string{"n1": "online", "n2": "offline"}[name]
		if n.obj, err = daemonapi.ExportNode(conn, bluechi.NodePath(name), n, bluechi.NodeProperties{Name: name, Status: status, LastSeenTimestamp: 1700000000123456}); err != nil {
			t.Fatal(err)
		}
		f.nodes[name] = n
	}
	if err := dbusrt.RequestName(conn, bluechi.ControllerBusName); err != nil {
		t.Fatal(err)
	}
	return f, func(user bool) (*dbus.Conn, error) {
		if !user {
			t.Error("bluechictl asked for the system bus despite -u")
		}
		c, _, err := dbusrt.ConnectBus(bus.Address)
		return c, err
	}
}

func TestAgainstFakeController(t *testing.T) {
	f, connect := startFake(t)
	ctl := func(args ...string) result { return run(t, connect, append([]string{"-u"}, args...)...) }

	if r := ctl("start", "n1", "a.service"); r.code != 0 || r.stdout != "Unit a.service StartUnit operation result: done\n" {
		t.Errorf("start: %+v", r)
	}
	if r := ctl("start", "n2", "a.service"); r.code != 1 || r.stderr != "Failed to issue method call: Node is offline\n" {
		t.Errorf("start offline: %+v", r)
	}
	if r := ctl("start", "ghost", "a.service"); r.code != 1 ||
		r.stderr != "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/ghost'. (no node named 'ghost')\n" {
		t.Errorf("unknown node: %+v", r)
	}
	if r := ctl("stop", "n1", "a.service"); r.code != 1 || !strings.Contains(r.stderr, "Node n1 went offline while job /org/eclipse/bluechi/job/8 was running") {
		t.Errorf("stop with disconnect: %+v", r)
	}
	f.nodes["n1"].obj.SetStatus("online")

	if r := ctl("set-property", "n1", "a.service", "CPUWeight=200", "MemoryMax=1G", "AllowedCPUs=0-1", "--runtime"); r.code != 0 || r.stdout != "" {
		t.Errorf("set-property: %+v", r)
	}
	f.mu.Lock()
	got := f.nodes["n1"].props
	f.mu.Unlock()
	if len(got) != 3 || got[0].Name != "CPUWeight" || got[0].Value.Value() != uint64(200) || got[1].Value.Value() != uint64(1<<30) ||
		got[2].Value.Signature().String() != "ay" {
		t.Errorf("properties sent: %+v", got)
	}
	if r := ctl("set-property", "n1", "a.service", "CPUWeight=200"); r.code != 1 || r.stderr != "Failed to issue method call: only runtime in this test\n" {
		t.Errorf("set-property error: %+v", r)
	}

	// reset-failed: every node, the last one's status counts.
	if r := ctl("reset-failed"); r.code != 1 || r.stderr != "Couldn't reset failed state of all units on node 'n2': Node is offline\n" {
		t.Errorf("reset-failed: %+v", r)
	}
	if r := ctl("reset-failed", "n1"); r.code != 0 {
		t.Errorf("reset-failed n1: %+v", r)
	}

	// disable: a failed disable still reloads, and the reload's status counts.
	if r := ctl("disable", "n1", "a.service"); r.code != 0 || !strings.Contains(r.stderr, "Failed to disable the units on node [n1] - Unit file a.service does not exist.") {
		t.Errorf("disable: %+v", r)
	}
	if r := ctl("disable", "n1", "a.service", "--no-reload"); r.code != 1 {
		t.Errorf("disable --no-reload: %+v", r)
	}
	if r := ctl("enable", "n1", "a.service"); r.code != 0 || r.stderr != "The unit files included enablement information\n"+
		"Created symlink /w/a.service -> /u/a.service\nRemoved \"/old\".\nUnknown operation: odd\n" {
		t.Errorf("enable: %+v", r)
	}
	if r := ctl("enable", "n2", "a.service"); r.code != 1 || r.stderr != "The unit files included enablement information\n"+
		"Created symlink /w/a.service -> /u/a.service\nRemoved \"/old\".\nUnknown operation: odd\nFailed to issue method call: Node is offline\n" {
		t.Errorf("enable with failing reload: %+v", r)
	}
	for file, code := range map[string]int{"a.service": 0, "b.service": 1, "c.service": 0} {
		if r := ctl("is-enabled", "n1", file); r.code != code {
			t.Errorf("is-enabled %s: %+v", file, r)
		}
	}

	want := "NODE | ID                  | ACTIVE   | SUB      \n" +
		"=================================================\n" +
		"n1   | a-long-name.service | active   | running  \n" +
		"n1   | x.socket            | active   | listening\n" +
		"n2   | b.service           | inactive | dead     \n"
	if r := ctl("list-units"); r.code != 0 || r.stdout != want {
		t.Errorf("list-units:\n%s", r.stdout)
	}
	if r := ctl("list-units", "--filter", "*.service", "-o", "json"); r.code != 0 || strings.Contains(r.stdout, "x.socket") || !strings.Contains(r.stdout, `"unit": "b.service"`) {
		t.Errorf("list-units json: %s", r.stdout)
	}

	if r := ctl("status", "n1", "a.service", "gone.service"); r.code != 0 || r.stderr != "Unit gone.service could not be found.\n" ||
		!strings.Contains(r.stdout, "a.service\t| loaded\t| active\t| running\t| running\t| (null)\t|\n") {
		t.Errorf("status units: %+v", r)
	}
	if r := ctl("status", "n2", "a.service"); r.code != 1 || r.stderr != "Failed to get status of unit a.service on node n2 - Node is offline\n" {
		t.Errorf("status offline: %+v", r)
	}
	if r := ctl("status", "n9"); r.code != 1 || r.stderr != "Node n9 not found\n" {
		t.Errorf("status n9: %+v", r)
	}
	if r := ctl("status"); r.code != 0 || !strings.Contains(r.stdout, "n1                            | online    | 10.0.0.1                | now") {
		t.Errorf("status: %+v", r)
	}
	if r := ctl("completion", "nodes"); r.code != 0 || r.stdout != "n1\nn2\n" {
		t.Errorf("completion nodes: %+v", r)
	}
	if r := ctl("freeze", "n1", "a.service"); r.code != 0 || r.stdout != "Unit a.service freeze operation done\n" {
		t.Errorf("freeze: %+v", r)
	}
	if r := ctl("thaw", "n1", "a.service"); r.code != 0 || r.stdout != "Unit a.service thaw operation done\n" {
		t.Errorf("thaw: %+v", r)
	}
	if r := ctl("thaw", "n2", "a.service"); r.code != 1 || r.stdout != "" || r.stderr != "Failed to issue method call: Node is offline\n" {
		t.Errorf("thaw offline: %+v", r)
	}
	if r := ctl("kill", "n1", "a.service"); r.code != 0 || r.stdout != "" {
		t.Errorf("kill: %+v", r)
	}
	if r := ctl("kill", "n2", "a.service", "--signal=9", "--kill-whom=main"); r.code != 1 || r.stderr != "Failed to issue method call for KillUnit: Node is offline\n" {
		t.Errorf("kill offline: %+v", r)
	}
	if r := ctl("set-loglevel", "n1", "WARN"); r.code != 0 || r.stdout != "" {
		t.Errorf("set-loglevel: %+v", r)
	}
	calls := f.recorded()
	for _, c := range []string{"StartUnit a.service replace", "ResetFailed n1;ResetFailed n2", "DisableUnitFiles a.service;Reload n1",
		"KillUnit a.service all 15", "KillUnit a.service main 9", "SetLogLevel n1 WARN"} {
		if !strings.Contains(calls, c) {
			t.Errorf("calls %s: missing %s", calls, c)
		}
	}
}
