// SPDX-License-Identifier: Apache-2.0

// Package table renders the text tables of bluechictl byte for byte as
// scripts expect them: the bar-separated unit lists, the node status table
// and the tab-aligned unit status table.
package table

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Columns writes a bar-separated table: every column is left-aligned and
// padded to the widest of its header and all its values (also of rows that
// keep rejects), columns are joined by " | ", and a line of '=' follows the
// header. keep may be nil to print every row.
func Columns(w io.Writer, headers []string, rows [][]string, keep func(row []string) bool) error {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i := range widths {
			if i < len(r) && len(r[i]) > widths[i] {
				widths[i] = len(r[i])
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i := range widths {
			if i > 0 {
				b.WriteString(" | ")
			}
			cell := ""
			if i < len(cells) {
				cell = cells[i]
			}
			b.WriteString(cell)
			b.WriteString(strings.Repeat(" ", widths[i]-len(cell)))
		}
		b.WriteByte('\n')
	}
	line(headers)
	total := 3 * (len(widths) - 1)
	for _, wd := range widths {
		total += wd
	}
	b.WriteString(strings.Repeat("=", total))
	b.WriteByte('\n')
	for _, r := range rows {
		if keep == nil || keep(r) {
			line(r)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Match reports whether s matches the glob pattern as a whole. Only '*'
// (any sequence, also empty) and '?' (exactly one byte) are special.
func Match(pattern, s string) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			starP, starI = p, i
			p++
		case starP >= 0:
			starI++
			p, i = starP+1, starI
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// ClearScreen is what the watch modes print before each refresh.
const ClearScreen = "\033[2J\033[0;0H"

// NodeRow is one line of the node status table.
type NodeRow struct {
	Name, State, IP, LastSeen string
}

// fixed pads or truncates s to exactly n bytes, as printf's %-n.ns does.
func fixed(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

func nodeLine(b *strings.Builder, name, state, ip, seen string) {
	fmt.Fprintf(b, "%s| %s| %s| %s\n", fixed(name, 30), fixed(state, 10), fixed(ip, 24), fixed(seen, 28))
}

// Nodes writes the node status table, preceded by ClearScreen when clear is set.
func Nodes(w io.Writer, rows []NodeRow, clear bool) error {
	var b strings.Builder
	if clear {
		b.WriteString(ClearScreen)
	}
	nodeLine(&b, "NODE", "STATE", "IP", "LAST SEEN")
	b.WriteString(strings.Repeat("=", 90))
	b.WriteByte('\n')
	for _, r := range rows {
		nodeLine(&b, r.Name, r.State, r.IP, r.LastSeen)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// LastSeen renders the LAST SEEN column: "now" for an online node, "never"
// for an offline node never seen, else the local time of usec (µs since the
// epoch) as "2006-01-02 15:04:05,000-0700".
func LastSeen(state string, usec uint64, loc *time.Location) string {
	if state == "online" {
		return "now"
	}
	if state == "offline" && usec == 0 {
		return "never"
	}
	return FormatTimestamp(usec, loc)
}

// FormatTimestamp renders µs since the epoch in loc as BlueChi's log time stamps do.
func FormatTimestamp(usec uint64, loc *time.Location) string {
	t := time.Unix(int64(usec/1e6), int64(usec%1e6)*1000).In(loc)
	return t.Format("2006-01-02 15:04:05,000-0700")
}

// UnitStatus is one row of the unit status table; empty values print as
// "(null)", as upstream's printf of a missing string does.
type UnitStatus struct {
	ID, LoadState, ActiveState, SubState, FreezerState, UnitFileState string
}

const tabSize = 8

// NameWidth is the longest of the requested unit names, which sizes the
// unit column of the unit status table.
func NameWidth(units []string) int {
	w := 0
	for _, u := range units {
		w = max(w, len(u))
	}
	return w
}

// UnitHeader writes the two header lines of the unit status table for a
// unit column of width nameWidth.
func UnitHeader(w io.Writer, nameWidth int) error {
	tabs := (nameWidth + tabSize - 1) / tabSize
	var b strings.Builder
	b.WriteString("UNIT")
	b.WriteString(strings.Repeat("\t", tabs))
	b.WriteString("| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n")
	b.WriteString(strings.Repeat("--------", tabs))
	b.WriteString(strings.Repeat("-", 80))
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// UnitRow writes one row of the unit status table.
func UnitRow(w io.Writer, u UnitStatus, nameWidth int) error {
	var b strings.Builder
	b.WriteString(u.ID)
	if n := nameWidth - len(u.ID) + tabSize; n > 0 {
		b.WriteString(strings.Repeat("\t", n/tabSize))
	}
	for _, v := range []string{u.LoadState, u.ActiveState, u.SubState, u.FreezerState, u.UnitFileState} {
		if v == "" {
			b.WriteString("| (null)\t")
			continue
		}
		b.WriteString("| " + v + "\t")
		if len(v) < 6 {
			b.WriteByte('\t')
		}
	}
	b.WriteString("|\n")
	_, err := io.WriteString(w, b.String())
	return err
}
