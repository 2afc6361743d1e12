// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNodeName(t *testing.T) {
	for _, ok := range []string{"", "n1", "node-foo.example_1", "nöde-ü", "节点", "a b", strings.Repeat("x", 1000)} {
		if err := CheckNodeName(ok); err != nil {
			t.Errorf("CheckNodeName(%q) = %v", ok, err)
		}
	}
	for _, tt := range []struct {
		name string
		want error
		text string
	}{
		{"\xff\xfebad", ErrNodeNameNotUTF8, "node name is not valid UTF-8"},
		{"caf\xc3", ErrNodeNameNotUTF8, "node name is not valid UTF-8"},
		{"a\x00b", ErrNodeNameControl, "node name contains a control character (U+0000)"},
		{"a\tb", ErrNodeNameControl, "node name contains a control character (U+0009)"},
		{"a\x7f", ErrNodeNameControl, "node name contains a control character (U+007F)"},
		{"a\u0085", ErrNodeNameControl, "node name contains a control character (U+0085)"},
		{"a\uFFFE", ErrNodeNameNoncharacter, "node name contains a Unicode noncharacter (U+FFFE)"},
		{"a\uFDD0b", ErrNodeNameNoncharacter, "node name contains a Unicode noncharacter (U+FDD0)"},
		{"\U0010FFFF", ErrNodeNameNoncharacter, "node name contains a Unicode noncharacter (U+10FFFF)"},
	} {
		err := CheckNodeName(tt.name)
		if !errors.Is(err, tt.want) || err.Error() != tt.text {
			t.Errorf("CheckNodeName(%q) = %v, want %q", tt.name, err, tt.text)
		}
	}
}

// TestInvalidNodeNames: node names that are not valid UTF-8 or contain a
// control character are refused when the configuration is loaded, with
// the file and line of the value.
func TestInvalidNodeNames(t *testing.T) {
	const notUTF8 = "node name is not valid UTF-8"
	tests := []struct {
		daemon string // "controller" or "agent"
		text   string // file content
		want   string // after "FILE:"; LINE counts from the first line of text
	}{
		{"controller", "[bluechi-controller]\nAllowedNodeNames=good,\xff\xfebad\n",
			`2: invalid AllowedNodeNames "\xff\xfebad": ` + notUTF8},
		{"controller", "[bluechi-controller]\nAllowedNodeNames=good,\n  a\x01b\n",
			`2: invalid AllowedNodeNames "a\x01b": node name contains a control character (U+0001)`},
		{"controller", "[bluechi-controller]\nAllowedNodeNames=good\n[node \xffbad]\nRequiredSelinuxContext=t\nAllowed=true\n",
			`5: invalid section "node \xffbad": ` + notUTF8},
		{"controller", "[bluechi-controller]\nAllowedNodeNames=good\n[node good]\nAllowDependenciesOn=other,\xfe\n",
			`4: invalid AllowDependenciesOn "\xfe": ` + notUTF8},
		{"controller", "[bluechi-controller]\n[node n2]\nAllowed=yes\nAllowDependenciesOn=x\x1by\n",
			`4: invalid AllowDependenciesOn "x\x1by": node name contains a control character (U+001B)`},
		{"agent", "[bluechi-agent]\nNodeName=\xffbad\n",
			`2: invalid NodeName "\xffbad": ` + notUTF8},
		{"agent", "[bluechi-agent]\nNodeName=a\vb\n",
			`2: invalid NodeName "a\vb": node name contains a control character (U+000B)`},
	}
	for _, tt := range tests {
		t.Run(tt.daemon+"/"+tt.want, func(t *testing.T) {
			l := newLayout(t)
			file := l.dropIn(t, "50-test.conf", tt.text)
			var err error
			if tt.daemon == "agent" {
				_, err = LoadAgent(l.opts(nil))
			} else {
				_, err = LoadController(l.opts(nil))
			}
			want := file + ":" + tt.want
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v, want %q", err, want)
			}
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Source.File != file {
				t.Fatalf("err %T is not a *ValueError from the file", err)
			}
			if !errors.Is(err, ErrNodeNameNotUTF8) && !errors.Is(err, ErrNodeNameControl) {
				t.Errorf("err does not wrap a node name sentinel: %v", err)
			}
		})
	}
}

// TestValidNodeNamesAccepted: UTF-8 names, and [node NAME] sections that
// configure no node, are not refused.
func TestValidNodeNamesAccepted(t *testing.T) {
	l := newLayout(t)
	long := strings.Repeat("n", 400)
	writeFile(t, l.loc.Admin, "[bluechi-controller]\nAllowedNodeNames=nöde,节点,"+long+
		"\n[node nöde]\nAllowDependenciesOn=节点\n[node \xffignored]\nAllowed=false\nAllowDependenciesOn=\xfe\n")
	c, err := LoadController(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.NodeNames(), ","); got != "nöde,节点,"+long {
		t.Errorf("nodes %q", got)
	}
	l2 := newLayout(t)
	writeFile(t, l2.loc.Admin, "[bluechi-agent]\nNodeName=nöde-ü\n")
	a, err := LoadAgent(l2.opts(nil))
	if err != nil || a.NodeName != "nöde-ü" || a.Check() != nil {
		t.Fatalf("agent: %v %q", err, a.NodeName)
	}
}

// TestAgentInvalidNodeNameFlag: -n/--name with an invalid name is an
// error naming the command line and leaves NodeName alone; an invalid host
// name (the default NodeName) is refused by Check unless -n replaces it.
func TestAgentInvalidNodeNameFlag(t *testing.T) {
	l := newLayout(t)
	a, err := LoadAgent(l.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) *string { return &v }
	want := `command line: invalid NodeName "\xffbad": node name is not valid UTF-8`
	if err := a.ApplyFlags(AgentFlags{Name: s("\xffbad")}); err == nil || err.Error() != want || a.NodeName != "testhost" {
		t.Errorf("ApplyFlags(-n \\xffbad) = %v, NodeName %q; want %q", err, a.NodeName, want)
	}
	if err := a.SetName("a\x01"); !errors.Is(err, ErrNodeNameControl) {
		t.Errorf("SetName(a\\x01) = %v", err)
	}

	opts := l.opts(nil)
	opts.Hostname = func() (string, error) { return "host\xff", nil }
	a, err = LoadAgent(opts)
	if err != nil {
		t.Fatalf("an invalid host name failed loading before -n could replace it: %v", err)
	}
	want = `built-in default (host name): invalid NodeName "host\xff": node name is not valid UTF-8`
	if err := a.Check(); err == nil || err.Error() != want {
		t.Errorf("Check = %v, want %q", err, want)
	}
	if err := a.SetName("n1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(); err != nil {
		t.Errorf("Check after -n n1 = %v", err)
	}
}
