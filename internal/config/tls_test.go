// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTLSKeys: the TLS keys default to off and unset, layer like every key
// (admin file, drop-ins in order, an empty value unsets, the -c file
// wins), have no environment variable, and the agent's TLSServerName
// follows ControllerHost, -H included, until it is set.
func TestTLSKeys(t *testing.T) {
	c, err := LoadController(newLayout(t).opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS != (TLS{}) {
		t.Fatalf("controller defaults: %+v", c.TLS)
	}

	l := newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nUseTLS=yes\nTLSCertificate=/etc/bluechi/admin.crt\nTLSPrivateKey=/etc/bluechi/admin.key\nTLSCA=/etc/bluechi/ca.crt\n")
	l.dropIn(t, "10-rotate.conf", "[bluechi-controller]\nTLSCertificate=/etc/bluechi/new.crt\nTLSPrivateKey=/etc/bluechi/new.key\n")
	l.dropIn(t, "20-unset.conf", "[bluechi-controller]\nTLSCA=\n")
	e := env{"BC_USE_TLS": "no", "USE_TLS": "no", "BC_TLS_CA": "/env/ca.crt"}
	c, err = LoadController(l.opts(e))
	if err != nil {
		t.Fatal(err)
	}
	want := TLS{Use: true, Certificate: "/etc/bluechi/new.crt", PrivateKey: "/etc/bluechi/new.key"}
	if diff := cmp.Diff(want, c.TLS); diff != "" {
		t.Errorf("layered (-want +got):\n%s", diff)
	}
	if v, _ := c.Settings.Lookup(SectionController, KeyTLSCertificate); !strings.HasSuffix(v.Source.File, "10-rotate.conf") {
		t.Errorf("TLSCertificate from %v, want the drop-in", v.Source)
	}
	opts := l.opts(e)
	opts.ConfigFile = writeFile(t, l.dir+"/extra.conf", "[bluechi-controller]\nUseTLS=off\nTLSCA=/run/ca.crt\n")
	if c, err = LoadController(opts); err != nil {
		t.Fatal(err)
	}
	if c.TLS.Use || c.TLS.CA != "/run/ca.crt" || c.TLS.ServerName != "" {
		t.Errorf("-c file: %+v", c.TLS)
	}
	// The controller has no TLSServerName: a stray one is ignored.
	l = newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nTLSServerName=x\n")
	if c, err = LoadController(l.opts(nil)); err != nil || c.TLS.ServerName != "" || strings.Contains(c.Render(), "TLSServerName") {
		t.Errorf("controller with TLSServerName: %+v, %v", c.TLS, err)
	}

	// Agent: the server name is ControllerHost until set.
	l = newLayout(t)
	writeFile(t, l.loc.Admin, "[bluechi-agent]\nUseTLS=true\nControllerHost=10.0.0.5\nTLSCertificate=/etc/bluechi/node1.crt\n")
	a, err := LoadAgent(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !a.TLS.Use || a.TLS.Certificate != "/etc/bluechi/node1.crt" || a.TLSServerName() != "10.0.0.5" {
		t.Errorf("agent: %+v, server name %q", a.TLS, a.TLSServerName())
	}
	host := "controller.example"
	if err := a.ApplyFlags(AgentFlags{Host: &host}); err != nil {
		t.Fatal(err)
	}
	if a.TLSServerName() != host || !strings.Contains(a.Render(), "\nTLSServerName=controller.example\n") {
		t.Errorf("after -H: server name %q\n%s", a.TLSServerName(), a.Render())
	}
	l.dropIn(t, "tls.conf", "[bluechi-agent]\nTLSServerName=bluechi-controller\n")
	if a, err = LoadAgent(l.opts(nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyFlags(AgentFlags{Host: &host}); err != nil {
		t.Fatal(err)
	}
	if a.TLSServerName() != "bluechi-controller" {
		t.Errorf("set TLSServerName after -H: %q", a.TLSServerName())
	}
}
