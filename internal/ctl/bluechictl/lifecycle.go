// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/ctl/progress"
	"github.com/bluechi-go/bluechi/internal/unitname"
)

// checkUnits reports the first invalid unit name.
func (a *app) checkUnits(units ...string) bool {
	for _, u := range units {
		if err := unitname.Check(u); err != nil {
			a.errorf("%s", capitalize(err.Error()))
			return false
		}
	}
	return true
}

// checkFiles reports the first invalid unit file name or path.
func (a *app) checkFiles(files ...string) bool {
	for _, f := range files {
		if err := unitname.CheckFile(f); err != nil {
			a.errorf("%s", capitalize(err.Error()))
			return false
		}
	}
	return true
}

// jobWatch collects JobRemoved results and the node's going offline.
type jobWatch struct {
	mu      sync.Mutex
	results map[dbus.ObjectPath]*bluechi.ControllerJobRemovedSignal
	offline bool
	changed chan struct{}
}

func (w *jobWatch) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

const progressTick = 250 * time.Millisecond

// lifecycle returns the command for one of the four job-creating Node methods.
func lifecycle(method string) func(a *app) int {
	return func(a *app) int {
		node, unit := a.args[0], a.args[1]
		if !a.checkUnits(unit) || a.bus() == nil {
			return 1
		}
		w := &jobWatch{results: map[dbus.ObjectPath]*bluechi.ControllerJobRemovedSignal{}, changed: make(chan struct{}, 1)}
		// Subscribe before the call: the job may end before its reply arrives.
		sub, err := a.controller().OnJobRemoved(a.ctx, func(s *bluechi.ControllerJobRemovedSignal) {
			w.mu.Lock()
			w.results[s.Job] = s
			w.mu.Unlock()
			w.poke()
		})
		if err != nil {
			a.errorf("Failed to match signal: %v", err)
			return 1
		}
		defer sub.Close()
		// Jobs of a node that disconnects vanish without JobRemoved: stop
		// waiting then instead of waiting forever.
		n := a.node(node)
		if sub, err := n.OnPropertiesChanged(a.ctx, func(p *bluechi.NodePropertiesChanged) {
			if s, ok := p.Status(); ok && s == "offline" {
				w.mu.Lock()
				w.offline = true
				w.mu.Unlock()
				w.poke()
			}
		}); err == nil {
			defer sub.Close()
		}
		var job dbus.ObjectPath
		err = a.call(func(ctx context.Context) (err error) {
			switch method {
			case "StartUnit":
				job, err = n.StartUnit(ctx, unit, "replace")
			case "StopUnit":
				job, err = n.StopUnit(ctx, unit, "replace")
			case "RestartUnit":
				job, err = n.RestartUnit(ctx, unit, "replace")
			default:
				job, err = n.ReloadUnit(ctx, unit, "replace")
			}
			return
		})
		if err != nil {
			a.errorf("Failed to issue method call: %s", message(err, node))
			return 1
		}
		// On a terminal, a wait of more than ProgressDelay shows a one-line
		// indicator, erased before the result is printed.
		stop := func() {}
		if a.env.StdoutIsTerminal {
			stop = progress.Start(a.env.Stdout, fmt.Sprintf("%s %s on %s: waiting for job %s", method, unit, node, job), ProgressDelay, progressTick).Stop
		}
		defer stop()
		for {
			w.mu.Lock()
			res, offline := w.results[job], w.offline
			w.mu.Unlock()
			if res != nil {
				stop()
				a.printf("Unit %s %s operation result: %s\n", res.Unit, method, res.Result)
				return 0
			}
			if offline {
				stop()
				a.errorf("Node %s went offline while job %s was running; its result is unknown", node, job)
				return 1
			}
			select {
			case <-w.changed:
			case <-a.ctx.Done():
				return 1
			}
		}
	}
}

func runFreeze(a *app) int {
	node, unit := a.args[0], a.args[1]
	if !a.checkUnits(unit) || a.bus() == nil {
		return 1
	}
	if err := a.call(func(ctx context.Context) error { return a.node(node).FreezeUnit(ctx, unit) }); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	a.printf("Unit %s freeze operation done\n", unit)
	return 0
}

func runThaw(a *app) int {
	node, unit := a.args[0], a.args[1]
	if !a.checkUnits(unit) || a.bus() == nil {
		return 1
	}
	if err := a.call(func(ctx context.Context) error { return a.node(node).ThawUnit(ctx, unit) }); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	a.printf("Unit %s thaw operation done\n", unit)
	return 0
}

func runKill(a *app) int {
	node, unit := a.args[0], a.args[1]
	whom := "all"
	if v, ok := a.opts.Value("kill-whom"); ok {
		whom = v
	}
	if whom != "all" && whom != "main" && whom != "control" {
		a.errorf("Value '%s' of option --kill-whom is invalid", whom)
		return 1
	}
	signal := int64(15)
	if v, ok := a.opts.Value("signal"); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if v == "" {
			n, err = 0, nil
		}
		if err != nil || n < 1 || n > 31 {
			a.errorf("Value '%s' of option --signal is invalid", v)
			return 1
		}
		signal = n
	}
	if !a.checkUnits(unit) || a.bus() == nil {
		return 1
	}
	if err := a.call(func(ctx context.Context) error { return a.node(node).KillUnit(ctx, unit, whom, int32(signal)) }); err != nil {
		a.errorf("Failed to issue method call for KillUnit: %s", message(err, node))
		return 1
	}
	return 0
}

func runResetFailed(a *app) int {
	if len(a.args) > 1 && !a.checkUnits(a.args[1:]...) {
		return 1
	}
	if a.bus() == nil {
		return 1
	}
	resetNode := func(node string) int {
		if err := a.call(func(ctx context.Context) error { return a.node(node).ResetFailed(ctx) }); err != nil {
			a.errorf("Couldn't reset failed state of all units on node '%s': %s", node, message(err, node))
			return 1
		}
		return 0
	}
	switch len(a.args) {
	case 0:
		var nodes []bluechi.NodeInfo
		if err := a.call(func(ctx context.Context) (err error) {
			nodes, err = a.controller().ListNodes(ctx)
			return
		}); err != nil {
			a.errorf("Failed to issue method call: %s", message(err, ""))
			return 1
		}
		code := 0
		for _, n := range nodes {
			code = resetNode(n.Name) // upstream: the status of the last node counts
		}
		return code
	case 1:
		return resetNode(a.args[0])
	}
	node := a.args[0]
	for i, unit := range a.args[1:] {
		a.printf("%d %s\n", i+1, unit)
		if err := a.call(func(ctx context.Context) error { return a.node(node).ResetFailedUnit(ctx, unit) }); err != nil {
			a.errorf("Failed to issue method call: %s", message(err, node))
			return 1
		}
	}
	return 0
}
