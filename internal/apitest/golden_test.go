// SPDX-License-Identifier: Apache-2.0

package apitest

import (
	"bufio"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/bluechi-go/bluechi/internal/daemonapi"
	"github.com/bluechi-go/bluechi/internal/dbusrt"
	"github.com/bluechi-go/bluechi/internal/testbus"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	idlDir    = "../../idl"
	goldenDir = "../../testdata/introspect"
	sigTable  = "../../testdata/api-signatures.tsv"
)

// Introspection data model used to compare documents independent of layout.
type xNode struct {
	Name       string   `xml:"name,attr"`
	Interfaces []xIface `xml:"interface"`
	Nodes      []xNode  `xml:"node"`
}

type xIface struct {
	Name       string    `xml:"name,attr"`
	Methods    []xMember `xml:"method"`
	Signals    []xMember `xml:"signal"`
	Properties []xProp   `xml:"property"`
}

type xMember struct {
	Name        string `xml:"name,attr"`
	Args        []xArg `xml:"arg"`
	Annotations []xAnn `xml:"annotation"`
}

type xArg struct {
	Name      string `xml:"name,attr"`
	Type      string `xml:"type,attr"`
	Direction string `xml:"direction,attr"`
}

type xProp struct {
	Name        string `xml:"name,attr"`
	Type        string `xml:"type,attr"`
	Access      string `xml:"access,attr"`
	Annotations []xAnn `xml:"annotation"`
}

type xAnn struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

func parseIntrospection(t *testing.T, what string, data []byte) xNode {
	t.Helper()
	var n xNode
	d := xml.NewDecoder(strings.NewReader(string(data)))
	d.Strict = true
	if err := d.Decode(&n); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for i := range n.Interfaces {
		for j := range n.Interfaces[i].Methods {
			for k := range n.Interfaces[i].Methods[j].Args {
				if a := &n.Interfaces[i].Methods[j].Args[k]; a.Direction == "" {
					a.Direction = "in"
				}
			}
		}
		// The IDL's own annotations (org.eclipse.bluechi.Explicit) steer the
		// generator and are not served.
		for j := range n.Interfaces[i].Properties {
			p := &n.Interfaces[i].Properties[j]
			var kept []xAnn
			for _, a := range p.Annotations {
				if !strings.HasPrefix(a.Name, "org.eclipse.bluechi.") {
					kept = append(kept, a)
				}
			}
			p.Annotations = kept
		}
	}
	return n
}

func (n xNode) iface(name string) (xIface, bool) {
	for _, i := range n.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return xIface{}, false
}

func goldenPath(iface string) string { return filepath.Join(goldenDir, iface+".xml") }

// exportAll serves every interface with no methods implemented on a private
// bus and returns the bus address and each interface's object path.
func exportAll(t *testing.T) (*testbus.Bus, *dbus.Conn, map[string]dbus.ObjectPath) {
	bus := testbus.Start(t)
	server, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	if err := dbusrt.RequestName(server, testName); err != nil {
		t.Fatal(err)
	}
	paths := map[string]dbus.ObjectPath{}
	for _, info := range daemonapi.Interfaces {
		p := dbus.ObjectPath("/org/eclipse/bluechi/test/" + strings.ReplaceAll(info.Name, ".", "_"))
		if _, err := info.ExportUnimplemented(server, p); err != nil {
			t.Fatal(err)
		}
		paths[info.Name] = p
	}
	return bus, server, paths
}

// TestIntrospectionGolden proves that live objects introspect exactly to the
// golden files (the API-compatibility contract), that the golden files equal
// the IDL, and that busctl, a client we did not write, sees the same.
func TestIntrospectionGolden(t *testing.T) {
	bus, _, paths := exportAll(t)
	client, _, err := dbusrt.ConnectBus(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if len(daemonapi.Interfaces) != 10 {
		t.Errorf("want 10 interfaces, have %d", len(daemonapi.Interfaces))
	}
	for _, info := range daemonapi.Interfaces {
		t.Run(info.Name, func(t *testing.T) {
			var live string
			if err := client.Object(testName, paths[info.Name]).Call(dbusrt.IntrospectableInterface+".Introspect", 0).Store(&live); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(goldenPath(info.Name), []byte(live), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(goldenPath(info.Name))
			if err != nil {
				t.Fatalf("%v (run go test ./internal/apitest -update to create it)", err)
			}
			g := parseIntrospection(t, "golden", golden)
			if d := cmp.Diff(g, parseIntrospection(t, "live", []byte(live))); d != "" {
				t.Errorf("live introspection differs from %s (-golden +live); if the IDL change is intended, run go test ./internal/apitest -update:\n%s", goldenPath(info.Name), d)
			}
			for _, std := range []string{dbusrt.PeerInterface, dbusrt.IntrospectableInterface, dbusrt.PropertiesInterface} {
				if _, ok := g.iface(std); !ok {
					t.Errorf("golden lacks standard interface %s", std)
				}
			}

			idlData, err := os.ReadFile(filepath.Join(idlDir, info.Name+".xml"))
			if err != nil {
				t.Fatal(err)
			}
			idl := parseIntrospection(t, "idl", idlData)
			want, ok := idl.iface(info.Name)
			if !ok {
				t.Fatalf("idl file does not declare %s", info.Name)
			}
			got, ok := g.iface(info.Name)
			if !ok {
				t.Fatalf("golden does not declare %s", info.Name)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("golden differs from idl (-idl +golden):\n%s", d)
			}

			// busctl's own XML dump parses to the same document.
			out := busctl(t, bus.Address, "introspect", "--xml-interface", testName, string(paths[info.Name]))
			if d := cmp.Diff(g, parseIntrospection(t, "busctl", out)); d != "" {
				t.Errorf("busctl --xml-interface differs from golden:\n%s", d)
			}
			// busctl's table: members, kinds, signatures and flags as the IDL says.
			table := busctl(t, bus.Address, "introspect", "--no-pager", "--no-legend", testName, string(paths[info.Name]), info.Name)
			if d := cmp.Diff(expectedBusctlRows(want), parseBusctlTable(string(table))); d != "" {
				t.Errorf("busctl introspect table differs from idl (-idl +busctl):\n%s", d)
			}
		})
	}
}

func busctl(t *testing.T, address string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("busctl")
	if err != nil {
		t.Fatalf("busctl not found (install Debian package systemd): %v", err)
	}
	cmd := exec.Command(bin, append([]string{"--address=" + address}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("busctl %v: %v %s", args, err, msg)
	}
	return out
}

// busctlRow is one member line of `busctl introspect` output.
type busctlRow struct {
	Name, Kind, Sig, Result, Flags string
}

func parseBusctlTable(s string) []busctlRow {
	var rows []busctlRow
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], ".") {
			continue
		}
		r := busctlRow{Name: f[0][1:], Kind: f[1], Sig: f[2]}
		if r.Kind == "property" {
			// The value column may contain spaces; flags are the last field.
			r.Flags = f[len(f)-1]
		} else {
			r.Result = f[3]
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

func expectedBusctlRows(i xIface) []busctlRow {
	sig := func(args []xArg, dir string) string {
		var b strings.Builder
		for _, a := range args {
			if dir == "" || a.Direction == dir {
				b.WriteString(a.Type)
			}
		}
		if b.Len() == 0 {
			return "-"
		}
		return b.String()
	}
	var rows []busctlRow
	for _, m := range i.Methods {
		rows = append(rows, busctlRow{Name: m.Name, Kind: "method", Sig: sig(m.Args, "in"), Result: sig(m.Args, "out")})
	}
	for _, m := range i.Signals {
		rows = append(rows, busctlRow{Name: m.Name, Kind: "signal", Sig: sig(m.Args, ""), Result: "-"})
	}
	for _, p := range i.Properties {
		flags := "emits-change"
		for _, a := range p.Annotations {
			if a.Name == "org.freedesktop.DBus.Property.EmitsChangedSignal" {
				switch a.Value {
				case "const":
					flags = "const"
				case "false":
					flags = "-"
				case "invalidates":
					flags = "emits-invalidation"
				}
			}
		}
		rows = append(rows, busctlRow{Name: p.Name, Kind: "property", Sig: p.Type, Flags: flags})
	}
	sort.Slice(rows, func(a, b int) bool { return rows[a].Name < rows[b].Name })
	return rows
}

// TestSignatureTable proves the IDL declares exactly the members, argument
// names, types, directions, access and annotations of the upstream
// signature table (a copy kept in testdata/).
func TestSignatureTable(t *testing.T) {
	data, err := os.ReadFile(sigTable)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 9 {
			t.Fatalf("%s:%d: %d columns", sigTable, i+1, len(f))
		}
		if f[0] == "org.freedesktop.DBus" {
			continue // Hello of the peer-connection shim, not an IDL interface
		}
		want = append(want, strings.Join(f[:9], "|"))
	}
	var got []string
	files, _ := filepath.Glob(filepath.Join(idlDir, "*.xml"))
	for _, file := range files {
		d, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n := parseIntrospection(t, file, d)
		for _, i := range n.Interfaces {
			row := func(kind, member, idx, name, dir, typ, access, ann string) {
				got = append(got, strings.Join([]string{i.Name, kind, member, idx, name, dir, typ, access, ann}, "|"))
			}
			members := func(kind string, ms []xMember) {
				for _, m := range ms {
					if len(m.Args) == 0 {
						row(kind, m.Name, "", "", "-", "", "", "")
					}
					for k, a := range m.Args {
						dir := a.Direction
						if kind == "signal" {
							dir = "-"
						}
						row(kind, m.Name, fmt.Sprint(k), a.Name, dir, a.Type, "", "")
					}
				}
			}
			members("method", i.Methods)
			members("signal", i.Signals)
			for _, p := range i.Properties {
				var anns []string
				for _, a := range p.Annotations {
					anns = append(anns, a.Name+"="+a.Value)
				}
				row("property", p.Name, "", p.Name, "-", p.Type, p.Access, strings.Join(anns, ","))
			}
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("IDL differs from %s (-table +idl):\n%s", sigTable, d)
	}
}

// TestBusTree proves intermediate paths list their children so busctl tree works.
func TestBusTree(t *testing.T) {
	bus, _, _ := exportAll(t)
	out := string(busctl(t, bus.Address, "tree", "--list", testName))
	for _, info := range daemonapi.Interfaces {
		p := "/org/eclipse/bluechi/test/" + strings.ReplaceAll(info.Name, ".", "_")
		if !strings.Contains(out, p+"\n") {
			t.Errorf("busctl tree lacks %s:\n%s", p, out)
		}
	}
	for _, p := range []string{"/org/eclipse/bluechi\n", "/org/eclipse/bluechi/test\n"} {
		if !strings.Contains(out, p) {
			t.Errorf("busctl tree lacks intermediate %s", p)
		}
	}
	_ = context.Background
}
