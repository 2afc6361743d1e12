// SPDX-License-Identifier: Apache-2.0

package cmdline

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/bluechi-go/bluechi/internal/cliopt"
)

func spec() *Spec {
	usage := func(name string) func(io.Writer) {
		return func(w io.Writer) { fmt.Fprintf(w, "Usage: prog %s\n", name) }
	}
	return &Spec{
		Prog:    "/usr/bin/prog",
		Options: []cliopt.Option{{Short: 'h', Long: "help"}, {Long: "filter", HasArg: true}, {Short: 'f', Long: "force"}, {Short: 'u', Long: "user"}},
		Global:  []string{"user"},
		Methods: []*Method{
			{Name: "list", Min: 0, Max: 1, Options: []string{"filter"}, Usage: usage("list")},
			{Name: "enable", Min: 2, Max: Any, Options: []string{"force"}, Usage: usage("enable")},
		},
		Usage: func(w io.Writer) { fmt.Fprintln(w, "Usage: prog COMMAND") },
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args           string
		code           int
		stdout, stderr string
		run            bool
	}{
		{"-Q", 1, "Usage: prog COMMAND\n", "/usr/bin/prog: invalid option -- 'Q'\n", false},
		{"--QWERTY list", 1, "Usage: prog COMMAND\n", "/usr/bin/prog: unrecognized option '--QWERTY'\n", false},
		{"list --filter", 1, "Usage: prog COMMAND\n", "/usr/bin/prog: option '--filter' requires an argument\n", false},
		{"", 1, "Usage: prog COMMAND\n", "No command given\n", false},
		{"-u", 1, "Usage: prog COMMAND\n", "No command given\n", false},
		{"-h", 0, "Usage: prog COMMAND\n", "", false},
		{"--help", 0, "Usage: prog COMMAND\n", "", false},
		{"nope", 1, "Usage: prog COMMAND\n", "Method nope not found\n", false},
		{"nope -h", 1, "Usage: prog COMMAND\n", "Method nope not found\n", false},
		{"list -h", 0, "Usage: prog list\n", "", false},
		{"enable --help x", 0, "Usage: prog enable\n", "", false},
		{"enable n", 1, "", "Too few arguments for method enable\nUsage: prog enable\n", false},
		{"list a b", 1, "", "Too many arguments for method list\nUsage: prog list\n", false},
		{"list --force", 1, "", "Unsupported option 'force' for method 'list'\n", false},
		{"list n --filter=x* -f", 1, "", "Unsupported option 'force' for method 'list'\n", false},
		{"list -u n --filter x*", 0, "", "", true},
		{"enable n a b c -f", 0, "", "", true},
	} {
		var out, errb strings.Builder
		inv, code := spec().Parse(strings.Fields(c.args), &out, &errb)
		if code != c.code || out.String() != c.stdout || errb.String() != c.stderr || (inv != nil) != c.run {
			t.Errorf("%q: code %d run %v\nstdout %q\nstderr %q", c.args, code, inv != nil, out.String(), errb.String())
		}
	}
	inv, _ := spec().Parse([]string{"list", "-u", "n", "--filter", "x*"}, io.Discard, io.Discard)
	if inv.Method.Name != "list" || len(inv.Args) != 1 || inv.Args[0] != "n" {
		t.Fatalf("%+v", inv)
	}
	if v, _ := inv.Opts.Value("filter"); v != "x*" || !inv.Opts.Has("user") {
		t.Fatalf("%+v", inv.Opts)
	}
}
