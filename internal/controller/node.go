// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"errors"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/unitname"
	"github.com/bluechi-go/bluechi/internal/wireconn"
)

// node is one configured node; its connection fields are guarded by c.mu.
type node struct {
	c    *Controller
	name string
	path dbus.ObjectPath
	obj  *daemonapi.NodeObject

	// Guarded by c.mu: the registered connection, its agent client and
	// when it was last heard of.
	peer         *peer
	agent        *daemonapi.InternalAgentWireClient // peer's agent
	lastSeenMono time.Duration

	// Guarded by c.emu: the registered connection as monitors see it,
	// and the unit names (or "*") subscriptions want from this node.
	ev       *peer
	interest map[string]*interest

	// Cross-node dependencies (proxies.go), guarded by c.emu: the proxies
	// this node holds, and the units other nodes' proxies need here.
	proxies   map[proxyKey]*proxyRec
	deps      map[string]int
	allowDeps map[string]bool // AllowDependenciesOn; set in New
	depCheck  *time.Timer     // the pending checkDeps of the connection; guarded by c.emu

	// selinuxType is the RequiredSelinuxContext a registering peer's
	// SELinux type must equal; empty: any peer.
	selinuxType string

	units  unitList      // what ListUnits last found (unitcache.go)
	sink   *subscription // the cache's "*" on this node; guarded by c.emu
	sinkOn bool          // sink is subscribed; guarded by c.emu
}

// attachLocked binds a registered connection to the node. Its signals
// reach the node from then on (peer.signal).
func (n *node) attachLocked(p *peer) {
	n.peer, n.agent = p, p.agent
	p.node = n
	touch(n)
	n.obj.SetPeerIP(p.ip)
	n.obj.SetStatus("online")
}

// detachLocked unbinds the node from its connection and returns its jobs.
// The node's properties still say online: offlineLocked reports it.
func (n *node) detachLocked() []*job {
	n.units.invalidate()
	n.peer, n.agent = nil, nil
	var jobs []*job
	for _, j := range n.c.jobs {
		if j.node == n {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// offlineLocked clears the peer IP and reports the node offline.
func (n *node) offlineLocked() {
	n.obj.SetPeerIP("")
	n.obj.SetStatus("offline")
}

// agentFor returns the node's agent client, or Offline.
func (n *node) agentFor() (*daemonapi.InternalAgentWireClient, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.closed {
		return nil, failed("Request not allowed: node is in shutdown state")
	}
	if n.agent == nil {
		return nil, dbusrt.NewError(bluechi.ErrorNameOffline, "Node is offline")
	}
	return n.agent, nil
}

// nodeAPI serves org.eclipse.bluechi.Node for one node (but ListUnits,
// which Controller.nodeListUnits serves from the unit cache).
type nodeAPI struct {
	daemonapi.UnimplementedNodeServer
	n *node
}

func callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, AgentCallTimeout)
}

// ready puts the offline rule first: an offline node answers Offline before
// its arguments are looked at; otherwise it returns invalid.
func (a *nodeAPI) ready(invalid error) error {
	if _, err := a.n.agentFor(); err != nil {
		return err
	}
	return invalid
}

// relay checks the node is online, then runs fn against its agent.
func (a *nodeAPI) relay(ctx context.Context, fn func(context.Context, *daemonapi.InternalAgentWireClient) error) error {
	agent, err := a.n.agentFor()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(ctx)
	defer cancel()
	return fromAgent(fn(ctx, agent))
}

// onWire makes one call to an agent: start sends it with a generated GoM
// whose completion calls done. Once the request is on the wire (start
// returned), the API call's turn in the ordered bus handlers is released
// (dbusrt.Release), so that the client's next call starts while this one
// waits for the agent, and an agent gets the requests in the order the
// calls came. Then it waits for done.
func onWire(ctx context.Context, start func(done func(error))) error {
	ch := make(chan error, 1)
	start(func(err error) { ch <- err })
	dbusrt.Release(ctx)
	return <-ch
}

// fromAgent turns an agent's error reply into the D-Bus error the API
// answers with (same name and message), and a call the agent's connection
// took down with it (the controller shutting down, the node going away)
// into Failed "Request cancelled" (behaviours.md §9); other errors pass
// unchanged.
func fromAgent(err error) error {
	var we *wireconn.Error
	if errors.As(err, &we) {
		return dbusrt.NewError(we.Name, "%s", we.Message)
	}
	if errors.Is(err, wireconn.ErrClosed) {
		return dbusrt.NewError(dbusrt.ErrFailed, "Request cancelled")
	}
	return err
}

func (a *nodeAPI) StartUnit(ctx context.Context, name, mode string) (dbus.ObjectPath, error) {
	return a.n.c.lifecycle(ctx, a.n, "start", name, mode)
}

func (a *nodeAPI) StopUnit(ctx context.Context, name, mode string) (dbus.ObjectPath, error) {
	return a.n.c.lifecycle(ctx, a.n, "stop", name, mode)
}

func (a *nodeAPI) RestartUnit(ctx context.Context, name, mode string) (dbus.ObjectPath, error) {
	return a.n.c.lifecycle(ctx, a.n, "restart", name, mode)
}

func (a *nodeAPI) ReloadUnit(ctx context.Context, name, mode string) (dbus.ObjectPath, error) {
	return a.n.c.lifecycle(ctx, a.n, "reload", name, mode)
}

func (a *nodeAPI) StartTransientUnit(ctx context.Context, name, mode string, props []bluechi.UnitProperty, aux []bluechi.AuxUnit) (job dbus.ObjectPath, err error) {
	err = checkUnit(name) // the mode goes to systemd unchanged (api.md §2)
	if err == nil {
		err = checkProperties(props)
	}
	if err == nil && len(aux) > maxAuxUnits {
		err = invalid("Too many auxiliary units: %d (at most %d)", len(aux), maxAuxUnits)
	}
	for i := 0; err == nil && i < len(aux); i++ {
		err = checkProperties(aux[i].Properties)
	}
	if err = a.ready(err); err != nil {
		return "", err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoStartTransientUnit(ctx, name, mode, props, aux, func(j dbus.ObjectPath, err error) { job = j; done(err) })
		})
	})
	return job, err
}

func (a *nodeAPI) FreezeUnit(ctx context.Context, name string) error {
	if err := a.ready(checkUnit(name)); err != nil {
		return err
	}
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoFreezeUnit(ctx, name, done) })
	})
}

func (a *nodeAPI) ThawUnit(ctx context.Context, name string) error {
	if err := a.ready(checkUnit(name)); err != nil {
		return err
	}
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoThawUnit(ctx, name, done) })
	})
}

func (a *nodeAPI) KillUnit(ctx context.Context, name, who string, signal int32) error {
	if err := a.ready(checkUnit(name)); err != nil {
		return err
	}
	// who ("main", "control", "all", ...) is systemd's to check: its set
	// grows with its versions.
	if signal <= 0 || signal > 64 {
		return invalid("Signal number out of range: %d", signal)
	}
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoKillUnit(ctx, name, who, signal, done) })
	})
}

func (a *nodeAPI) GetUnitProperties(ctx context.Context, name, iface string) (props map[string]dbus.Variant, err error) {
	if err = a.ready(checkUnit(name)); err != nil {
		return nil, err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoGetUnitProperties(ctx, name, iface, func(p map[string]dbus.Variant, err error) { props = p; done(err) })
		})
	})
	return props, err
}

func (a *nodeAPI) GetUnitProperty(ctx context.Context, name, iface, property string) (v dbus.Variant, err error) {
	if err = a.ready(checkUnit(name)); err != nil {
		return v, err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoGetUnitProperty(ctx, name, iface, property, func(x dbus.Variant, err error) { v = x; done(err) })
		})
	})
	return v, err
}

func (a *nodeAPI) SetUnitProperties(ctx context.Context, name string, runtime bool, kv []bluechi.UnitProperty) error {
	err := checkUnit(name)
	if err == nil {
		err = checkProperties(kv)
	}
	if err := a.ready(err); err != nil {
		return err
	}
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoSetUnitProperties(ctx, name, runtime, kv, done) })
	})
}

func (a *nodeAPI) EnableUnitFiles(ctx context.Context, files []string, runtime, force bool) (carries bool, changes []bluechi.UnitFileChange, err error) {
	if err = a.ready(checkFiles(files)); err != nil {
		return false, nil, err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoEnableUnitFiles(ctx, files, runtime, force, func(c bool, ch []bluechi.UnitFileChange, err error) { carries, changes = c, ch; done(err) })
		})
	})
	return carries, changes, err
}

func (a *nodeAPI) DisableUnitFiles(ctx context.Context, files []string, runtime bool) (changes []bluechi.UnitFileChange, err error) {
	if err = a.ready(checkFiles(files)); err != nil {
		return nil, err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoDisableUnitFiles(ctx, files, runtime, func(ch []bluechi.UnitFileChange, err error) { changes = ch; done(err) })
		})
	})
	return changes, err
}

func (a *nodeAPI) ListUnitFiles(ctx context.Context) (files []bluechi.UnitFileInfo, err error) {
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoListUnitFiles(ctx, func(f []bluechi.UnitFileInfo, err error) { files = f; done(err) })
		})
	})
	return files, err
}

func (a *nodeAPI) GetUnitFileState(ctx context.Context, file string) (state string, err error) {
	if err = a.ready(checkFiles([]string{file})); err != nil {
		return "", err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoGetUnitFileState(ctx, file, func(st string, err error) { state = st; done(err) })
		})
	})
	return state, err
}

func (a *nodeAPI) Reload(ctx context.Context) error {
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoReload(ctx, done) })
	})
}

func (a *nodeAPI) SetLogLevel(ctx context.Context, level string) error {
	if !validLevel(level) {
		return a.ready(invalid("Invalid input for log level"))
	}
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoSetLogLevel(ctx, level, done) })
	})
}

func (a *nodeAPI) ResetFailed(ctx context.Context) error {
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoResetFailed(ctx, done) })
	})
}

func (a *nodeAPI) ResetFailedUnit(ctx context.Context, name string) error {
	if err := a.ready(checkUnit(name)); err != nil {
		return err
	}
	return a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) { ag.GoResetFailedUnit(ctx, name, done) })
	})
}

func (a *nodeAPI) GetDefaultTarget(ctx context.Context) (target string, err error) {
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoGetDefaultTarget(ctx, func(t string, err error) { target = t; done(err) })
		})
	})
	return target, err
}

func (a *nodeAPI) SetDefaultTarget(ctx context.Context, target string, force bool) (out []bluechi.UnitFileChange, err error) {
	if err = a.ready(checkUnit(target)); err != nil {
		return nil, err
	}
	err = a.relay(ctx, func(ctx context.Context, ag *daemonapi.InternalAgentWireClient) error {
		return onWire(ctx, func(done func(error)) {
			ag.GoSetDefaultTarget(ctx, target, force, func(o []bluechi.UnitFileChange, err error) { out = o; done(err) })
		})
	})
	return out, err
}

func checkUnit(name string) error {
	if err := unitname.Check(name); err != nil {
		return invalid("%s", err.Error())
	}
	return nil
}

// maxFiles bounds the unit file lists of Enable/DisableUnitFiles.
const maxFiles = 1024

// maxProperties bounds the property lists of SetUnitProperties and
// StartTransientUnit (per unit), maxAuxUnits the auxiliary units of the
// latter: far above what any unit needs, low enough that no request makes
// the controller and agent carry megabytes on to systemd.
const (
	maxProperties = 1024
	maxAuxUnits   = 64
)

// checkProperties refuses an oversize property list.
func checkProperties(props []bluechi.UnitProperty) error {
	if len(props) > maxProperties {
		return invalid("Too many properties: %d (at most %d)", len(props), maxProperties)
	}
	return nil
}

// checkFiles refuses an oversize or malformed file list; an empty one goes
// to systemd, which answers it with no changes.
func checkFiles(files []string) error {
	if len(files) > maxFiles {
		return invalid("Too many unit files: %d (at most %d)", len(files), maxFiles)
	}
	for _, f := range files {
		if err := unitname.CheckFile(f); err != nil {
			return invalid("%s", err.Error())
		}
	}
	return nil
}

func validLevel(l string) bool {
	switch l {
	case "DEBUG", "INFO", "WARN", "ERROR":
		return true
	}
	return false
}
