package cliopt

import (
	"reflect"
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
