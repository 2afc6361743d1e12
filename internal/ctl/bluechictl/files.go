// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"strings"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/ctl/table"
	"github.com/bluechi-go/bluechi/internal/ctl/unitprop"
)

// printChanges reports symlink changes on stderr, as upstream does.
func (a *app) printChanges(changes []bluechi.UnitFileChange) {
	var b strings.Builder
	for _, c := range changes {
		switch c.Type {
		case "symlink":
			b.WriteString("Created symlink " + c.Filename + " -> " + c.Destination + "\n")
		case "unlink":
			b.WriteString("Removed \"" + c.Filename + "\".\n")
		default:
			b.WriteString("Unknown operation: " + c.Type + "\n")
		}
	}
	a.env.Stderr.Write([]byte(b.String()))
}

// reload runs daemon-reload on node.
func (a *app) reload(node string) int {
	if err := a.call(func(ctx context.Context) error { return a.node(node).Reload(ctx) }); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	return 0
}

func runEnable(a *app) int {
	node, files := a.args[0], a.args[1:]
	if !a.checkFiles(files...) || a.bus() == nil {
		return 1
	}
	var carries bool
	var changes []bluechi.UnitFileChange
	if err := a.call(func(ctx context.Context) (err error) {
		carries, changes, err = a.node(node).EnableUnitFiles(ctx, files, a.opts.Has("runtime"), a.opts.Has("force"))
		return
	}); err != nil {
		a.errorf("Failed to enable the units on node [%s] - %s", node, message(err, node))
		return 1
	}
	if carries {
		a.errorf("The unit files included enablement information")
	} else {
		a.errorf("The unit files did not include any enablement information")
	}
	a.printChanges(changes)
	if a.opts.Has("no-reload") {
		return 0
	}
	return a.reload(node)
}

func runDisable(a *app) int {
	node, files := a.args[0], a.args[1:]
	if !a.checkFiles(files...) || a.bus() == nil {
		return 1
	}
	code := 0
	var changes []bluechi.UnitFileChange
	if err := a.call(func(ctx context.Context) (err error) {
		changes, err = a.node(node).DisableUnitFiles(ctx, files, false)
		return
	}); err != nil {
		a.errorf("Failed to disable the units on node [%s] - %s", node, message(err, node))
		code = 1
	} else {
		a.printChanges(changes)
	}
	if a.opts.Has("no-reload") {
		return code
	}
	// Upstream reloads even after a failed disable and exits with the
	// reload's status.
	return a.reload(node)
}

// enabledStates are the states is-enabled answers 0 for, as systemctl does.
var enabledStates = map[string]bool{
	"enabled": true, "enabled-runtime": true, "static": true, "alias": true, "indirect": true, "generated": true,
}

func runIsEnabled(a *app) int {
	node, file := a.args[0], a.args[1]
	if !a.checkFiles(file) || a.bus() == nil {
		return 1
	}
	var state string
	if err := a.call(func(ctx context.Context) (err error) {
		state, err = a.node(node).GetUnitFileState(ctx, file)
		return
	}); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	a.printf("%s\n", state)
	if enabledStates[state] {
		return 0
	}
	return 1
}

func runDaemonReload(a *app) int {
	if a.bus() == nil {
		return 1
	}
	return a.reload(a.args[0])
}

func runSetProperty(a *app) int {
	node, unit := a.args[0], a.args[1]
	if !a.checkUnits(unit) {
		return 1
	}
	props, err := unitprop.Parse(a.args[2:])
	if err != nil {
		a.errorf("%s", capitalize(err.Error()))
		return 1
	}
	if a.bus() == nil {
		return 1
	}
	if err := a.call(func(ctx context.Context) error {
		return a.node(node).SetUnitProperties(ctx, unit, a.opts.Has("runtime"), props)
	}); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	return 0
}

func runGetDefault(a *app) int {
	node := a.args[0]
	if a.bus() == nil {
		return 1
	}
	var target string
	if err := a.call(func(ctx context.Context) (err error) {
		target, err = a.node(node).GetDefaultTarget(ctx)
		return
	}); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	a.printf("%s\n", target)
	return 0
}

func runSetDefault(a *app) int {
	node, target := a.args[0], a.args[1]
	if !table.Match("*target", target) {
		// Upstream exits 0 here; exit 1 is what cli.md recommends.
		a.errorf("Error: Unit '%s' is not a target unit", target)
		return 1
	}
	if !a.checkUnits(target) || a.bus() == nil {
		return 1
	}
	var changes []bluechi.UnitFileChange
	if err := a.call(func(ctx context.Context) (err error) {
		changes, err = a.node(node).SetDefaultTarget(ctx, target, true)
		return
	}); err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	var b strings.Builder
	b.WriteString("[")
	for _, c := range changes {
		b.WriteString("(" + c.Type + " " + c.Filename + " " + c.Destination + "),")
	}
	b.WriteString("]\n")
	a.printf("%s", b.String())
	return 0
}

// LogLevels are the levels the daemons accept (case-sensitive).
var LogLevels = []string{"DEBUG", "INFO", "WARN", "ERROR"}

func runSetLogLevel(a *app) int {
	level := a.args[len(a.args)-1]
	valid := false
	for _, l := range LogLevels {
		valid = valid || l == level
	}
	if !valid {
		a.errorf("Invalid log level '%s': expected one of %s", level, strings.Join(LogLevels, ", "))
		return 1
	}
	if a.bus() == nil {
		return 1
	}
	node := ""
	err := a.call(func(ctx context.Context) error {
		if len(a.args) == 2 {
			node = a.args[0]
			return a.node(node).SetLogLevel(ctx, level)
		}
		return a.controller().SetLogLevel(ctx, level)
	})
	if err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	return 0
}
