// SPDX-License-Identifier: Apache-2.0

package cliopt

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

var opts = []Option{{Short: 'h', Long: "help"}, {Short: 'p', Long: "port", HasArg: true}, {Short: 'u', Long: "user"}, {Long: "filter", HasArg: true}}

func TestParse(t *testing.T) {
	r, err := Parse(opts, []string{"start", "-up", "842", "node", "--port=9", "--filter", "*.service", "--", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Value("port"); v != "9" || !r.Has("user") || r.Has("help") {
		t.Fatalf("%+v", r)
	}
	if v, _ := r.Value("filter"); v != "*.service" {
		t.Fatalf("filter %q", v)
	}
	if !reflect.DeepEqual(r.Args, []string{"start", "node", "-x"}) {
		t.Fatalf("args %q", r.Args)
	}
	if r, _ := Parse(opts, []string{"-p8420", "--us"}); !r.Has("user") || r.Set["port"][0] != "8420" {
		t.Fatalf("%+v", r)
	}
	if r, _ := Parse(opts, []string{"--user", "-h", "--port=1", "-u"}); !reflect.DeepEqual(r.Order, []string{"user", "help", "port", "user"}) {
		t.Fatalf("order %q", r.Order)
	}
	ambiguous := []Option{{Long: "filter", HasArg: true}, {Short: 'f', Long: "force"}}
	if _, err := Parse(ambiguous, []string{"--f"}); err == nil || err.Error() != "option '--f' is ambiguous; possibilities: '--filter' '--force'" {
		t.Errorf("ambiguous: %v", err)
	}
	if r, err := Parse(ambiguous, []string{"--fo"}); err != nil || !r.Has("force") {
		t.Errorf("unique prefix: %v", err)
	}
	for args, want := range map[string]string{
		"-Q":       "invalid option -- 'Q'",
		"--QWERTY": "unrecognized option '--QWERTY'",
		"-p":       "option requires an argument -- 'p'",
		"--port":   "option '--port' requires an argument",
		"--help=x": "option '--help' doesn't allow an argument",
	} {
		if _, err := Parse(opts, []string{args}); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", args, err, want)
		}
	}
}

func TestDaemon(t *testing.T) {
	usage := func(w io.Writer) { io.WriteString(w, "Usage: d\n") }
	opts := []Option{{Short: 'h', Long: "help"}, {Short: 'v', Long: "version"}, {Short: 'c', Long: "config", HasArg: true}}
	for _, tc := range []struct {
		args           []string
		code           int
		done           bool
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, true, "Usage: d\n", ""},
		{[]string{"--version"}, 0, true, "d version 1.0\n", ""},
		{[]string{"-Q"}, 1, true, "", "d: invalid option -- 'Q'\nUsage: d\n"},
		{[]string{"extra"}, 1, true, "", "d: unexpected argument 'extra'\nUsage: d\n"},
		{[]string{"-c", "f"}, 0, false, "", ""},
	} {
		var out, errOut strings.Builder
		r, code, done := Daemon("d", "1.0", opts, tc.args, usage, &out, &errOut)
		if code != tc.code || done != tc.done || out.String() != tc.stdout || errOut.String() != tc.stderr {
			t.Errorf("%v: code %d done %v stdout %q stderr %q", tc.args, code, done, out.String(), errOut.String())
		}
		if !done {
			if v, _ := r.Value("config"); v != "f" {
				t.Errorf("config %q", v)
			}
		}
	}
}
