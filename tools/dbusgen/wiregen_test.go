// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestClientOnlyStaysOut proves that the client-only interfaces
// (idl/systemd) add wire files to the daemons' package and change nothing
// else: not the public package, not the docs, not the other files.
func TestClientOnlyStaysOut(t *testing.T) {
	ifs, err := LoadDirAs(repoIDL, "idl")
	if err != nil {
		t.Fatal(err)
	}
	client, err := LoadDirAs(repoIDL+"/systemd", "idl/systemd")
	if err != nil {
		t.Fatal(err)
	}
	plain := generateFrom(t, repoIDL, pubImport)
	g := newGoGen("bluechi", pubImport, "daemonapi", rtPath, "org.eclipse.bluechi.")
	pub, api, err := Generate(ifs, client, g)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.clientOnlyFiles(client, api); err != nil {
		t.Fatal(err)
	}
	for name, data := range pub {
		if !bytes.Equal(data, plain.pub[name]) {
			t.Errorf("public %s changed by the client-only interfaces", name)
		}
	}
	if !bytes.Equal(markdown(ifs), plain.docs) {
		t.Error("docs changed")
	}
	added := 0
	for name, data := range api {
		old, ok := plain.api[name]
		if !ok {
			if !strings.HasPrefix(name, "wire_systemd1_") && !strings.HasPrefix(name, "wire_dbus") {
				t.Errorf("unexpected new file %s", name)
			}
			added++
			continue
		}
		if !bytes.Equal(data, old) {
			t.Errorf("daemonapi/%s changed by the client-only interfaces", name)
		}
	}
	if added != len(client) {
		t.Errorf("%d files added for %d interfaces", added, len(client))
	}
	for _, want := range []string{"func NewSystemd1ManagerWireClient(", "func (c *Systemd1ManagerWireClient) GoStartUnit(",
		"Systemd1ManagerJobRemovedSig = \"uoss\"", "func DecodeSystemd1ManagerJobRemoved(", "Systemd1UnitPathPrefix = ",
		"func Systemd1JobPath(id uint32)", "DBusBusName = \"org.freedesktop.DBus\"", "DBusPath dbus.ObjectPath = \"/org/freedesktop/DBus\"",
		"func (c *DBusWireClient) GetConnectionUnixUser(ctx context.Context, busName string) (uid uint32, err error)",
		"DBusNameOwnerChangedSig = \"sss\"", "func DecodeDBusNameOwnerChanged("} {
		found := false
		for _, data := range api {
			found = found || bytes.Contains(data, []byte(want))
		}
		if !found {
			t.Errorf("generated code lacks %q", want)
		}
	}
	for name, data := range api {
		if (strings.HasPrefix(name, "wire_systemd1_") || strings.HasPrefix(name, "wire_dbus")) && bytes.Contains(data, []byte("WireInterface(")) {
			t.Errorf("%s: a server for a client-only interface", name)
		}
	}
}

// TestNamesLeaf checks the leaf package of the client-only interfaces'
// names (-names): it spells every name and signature and imports nothing,
// and the daemons' package takes its constants' values from it.
func TestNamesLeaf(t *testing.T) {
	ifs, err := LoadDirAs(repoIDL, "idl")
	if err != nil {
		t.Fatal(err)
	}
	client, err := LoadDirAs(repoIDL+"/systemd", "idl/systemd")
	if err != nil {
		t.Fatal(err)
	}
	g := newGoGen("bluechi", pubImport, "daemonapi", rtPath, "org.eclipse.bluechi.")
	g.namesPkg, g.namesImport = "busnames", "example.com/m/internal/busnames"
	_, api, err := Generate(ifs, client, g)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.clientOnlyFiles(client, api); err != nil {
		t.Fatal(err)
	}
	leaf, err := g.namesFile(client, "busnames")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(leaf, []byte("\nimport")) {
		t.Error("the leaf package imports something")
	}
	for _, want := range []string{"package busnames\n", "DBusPath = \"/org/freedesktop/DBus\"\n", "DBusMethodHello = \"Hello\"\n",
		"DBusPeerMethodGetMachineID = \"GetMachineId\"\n", "DBusPropertiesGetAllOutSig = \"a{sv}\"\n", "Systemd1ManagerJobRemovedSig = \"uoss\"\n"} {
		if !bytes.Contains(leaf, []byte(want)) {
			t.Errorf("leaf package lacks %q", want)
		}
	}
	dbusFile := string(api["wire_dbus.go"])
	for _, want := range []string{"\"example.com/m/internal/busnames\"", "DBusPath dbus.ObjectPath = busnames.DBusPath\n",
		"DBusMethodHello = busnames.DBusMethodHello\n", "DBusHelloOutSig = busnames.DBusHelloOutSig\n"} {
		if !strings.Contains(dbusFile, want) {
			t.Errorf("wire_dbus.go lacks %q", want)
		}
	}
	if strings.Contains(dbusFile, "= \"org.freedesktop.DBus\"") {
		t.Error("wire_dbus.go spells a name the leaf package has")
	}
}

// TestClientOnlyNewStruct refuses a client-only interface that needs a
// struct type the public package does not have.
func TestClientOnlyNewStruct(t *testing.T) {
	doc := `<node>
  <!--
    org.freedesktop.Example: x.
    @path: /x
    @bus: peer
  -->
  <interface name="org.freedesktop.Example">
    <!--
      M: x.
      @v: x.
    -->
    <method name="M"><arg name="v" type="(yyy)" direction="in"/></method>
  </interface>
</node>`
	ifs, err := Parse(strings.NewReader(doc), "idl/systemd/x.xml")
	if err != nil {
		t.Fatal(err)
	}
	g := newGoGen("bluechi", pubImport, "daemonapi", rtPath, "org.eclipse.bluechi.")
	err = g.clientOnlyFiles(ifs, map[string][]byte{})
	if err == nil || !strings.Contains(err.Error(), "(yyy)") {
		t.Fatalf("got %v", err)
	}
}
