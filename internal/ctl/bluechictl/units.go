// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"sort"

	bluechi "github.com/bluechi-go/bluechi/gen/bluechi"
	"github.com/bluechi-go/bluechi/internal/ctl/table"
	"github.com/bluechi-go/bluechi/internal/ctl/unitprop"
	"github.com/bluechi-go/bluechi/internal/version"
)

func unitpropNames() []string { return unitprop.Names() }

func runVersion(a *app) int {
	a.printf("%s version %s\n", Prog, version.Version)
	return 0
}

// UnitJSON is one row of "list-units -o json".
type UnitJSON struct {
	Node        string `json:"node"`
	Unit        string `json:"unit"`
	Description string `json:"description"`
	LoadState   string `json:"load_state"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
}

// UnitFileJSON is one row of "list-unit-files -o json".
type UnitFileJSON struct {
	Node  string `json:"node"`
	Path  string `json:"path"`
	State string `json:"state"`
}

// nodeOrder returns the keys of a per-node map in the controller's node
// order (cli.md §1.3: rows in the order returned). The D-Bus dictionary
// carries that order but the generated client's map does not keep it, so
// it is taken from ListNodes, which answers in the same order. Names
// ListNodes does not list (a node it could not report) follow in name
// order, as all do if ListNodes fails.
func nodeOrder[T any](a *app, m map[string]T) []string {
	var nodes []bluechi.NodeInfo
	_ = a.call(func(ctx context.Context) (err error) {
		nodes, err = a.controller().ListNodes(ctx)
		return
	})
	names := make([]string, 0, len(m))
	placed := make(map[string]bool, len(m))
	for _, n := range nodes {
		if _, ok := m[n.Name]; ok && !placed[n.Name] {
			names, placed[n.Name] = append(names, n.Name), true
		}
	}
	var rest []string
	for n := range m {
		if !placed[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// listUnits returns every unit of one node or, when node is "", of all.
func (a *app) listUnits(node string) (map[string][]bluechi.UnitInfo, []string, error) {
	if node != "" {
		var units []bluechi.UnitInfo
		err := a.call(func(ctx context.Context) (err error) {
			units, err = a.node(node).ListUnits(ctx)
			return
		})
		return map[string][]bluechi.UnitInfo{node: units}, []string{node}, err
	}
	var all map[string][]bluechi.UnitInfo
	err := a.call(func(ctx context.Context) (err error) {
		all, err = a.controller().ListUnits(ctx)
		return
	})
	if err != nil {
		return nil, nil, err
	}
	return all, nodeOrder(a, all), nil
}

func (a *app) listUnitFiles(node string) (map[string][]bluechi.UnitFileInfo, []string, error) {
	if node != "" {
		var files []bluechi.UnitFileInfo
		err := a.call(func(ctx context.Context) (err error) {
			files, err = a.node(node).ListUnitFiles(ctx)
			return
		})
		return map[string][]bluechi.UnitFileInfo{node: files}, []string{node}, err
	}
	var all map[string][]bluechi.UnitFileInfo
	err := a.call(func(ctx context.Context) (err error) {
		all, err = a.controller().ListUnitFiles(ctx)
		return
	})
	if err != nil {
		return nil, nil, err
	}
	return all, nodeOrder(a, all), nil
}

func (a *app) optionalNode() string {
	if len(a.args) > 0 {
		return a.args[0]
	}
	return ""
}

func (a *app) filter() func(string) bool {
	glob, ok := a.opts.Value("filter")
	if !ok {
		return func(string) bool { return true }
	}
	return func(s string) bool { return table.Match(glob, s) }
}

func runListUnits(a *app) int {
	if a.bus() == nil {
		return 1
	}
	node := a.optionalNode()
	all, order, err := a.listUnits(node)
	if err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	keep := a.filter()
	var rows [][]string
	out := []UnitJSON{}
	for _, n := range order {
		for _, u := range all[n] {
			rows = append(rows, []string{n, u.Name, u.ActiveState, u.SubState})
			if keep(u.Name) {
				out = append(out, UnitJSON{n, u.Name, u.Description, u.LoadState, u.ActiveState, u.SubState})
			}
		}
	}
	if a.json {
		a.writeJSON(out, false)
		return 0
	}
	table.Columns(a.env.Stdout, []string{"NODE", "ID", "ACTIVE", "SUB"}, rows, func(r []string) bool { return keep(r[1]) })
	return 0
}

func runListUnitFiles(a *app) int {
	if a.bus() == nil {
		return 1
	}
	node := a.optionalNode()
	all, order, err := a.listUnitFiles(node)
	if err != nil {
		a.errorf("Failed to issue method call: %s", message(err, node))
		return 1
	}
	keep := a.filter()
	var rows [][]string
	out := []UnitFileJSON{}
	for _, n := range order {
		for _, f := range all[n] {
			rows = append(rows, []string{n, f.Path, f.State})
			if keep(f.Path) {
				out = append(out, UnitFileJSON{n, f.Path, f.State})
			}
		}
	}
	if a.json {
		a.writeJSON(out, false)
		return 0
	}
	table.Columns(a.env.Stdout, []string{"NODE", "PATH", "IS-ENABLED"}, rows, func(r []string) bool { return keep(r[1]) })
	return 0
}
