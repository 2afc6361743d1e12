// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/bluechi-go/bluechi/internal/ctl/cmdline"
	"github.com/bluechi-go/bluechi/internal/syncbuf"
)

type result struct {
	code           int
	stdout, stderr string
	connected      bool
}

// run runs bluechictl in-process; connect may be nil (no bus).
func run(t *testing.T, connect func(bool) (*dbus.Conn, error), args ...string) result {
	t.Helper()
	var out, errb syncbuf.Buffer
	var r result
	env := cmdline.Env{Prog: "bluechictl", Args: args, Stdout: &out, Stderr: &errb,
		Connect: func(user bool) (*dbus.Conn, error) {
			r.connected = true
			if connect == nil {
				return nil, errors.New("no bus in this test")
			}
			return connect(user)
		}}
	r.code = Main(context.Background(), env)
	r.stdout, r.stderr = out.String(), errb.String()
	return r
}

// TestLocalErrors: bad input is refused before anything is sent.
func TestLocalErrors(t *testing.T) {
	for _, c := range []struct {
		args   string
		stderr string
	}{
		{"start node foo", `Invalid unit name "foo": no unit type suffix`},
		{"stop node foo.bar", `unknown unit type "bar"`},
		{"freeze node a/b.service", "not allowed"},
		{"thaw node .service", "no unit type suffix"},
		{"restart node", "Too few arguments for method restart"},
		{"reload node a.service b", "Too many arguments for method reload"},
		{"kill node a.service --signal=0", "Value '0' of option --signal is invalid"},
		{"kill node a.service --signal=32", "Value '32' of option --signal is invalid"},
		{"kill node a.service --signal=x", "Value 'x' of option --signal is invalid"},
		{"kill node a.service --signal=", "Value '' of option --signal is invalid"},
		{"kill node a.service --kill-whom=some", "Value 'some' of option --kill-whom is invalid"},
		{"set-property node a.service Bogus=1", "Unknown or unsupported property 'Bogus'"},
		{"set-property node a.service CPUWeight=0", "Invalid value '0' for CPUWeight"},
		{"set-property node a.service MemoryMax", "expected PROPERTY=VALUE"},
		{"set-property node bad CPUWeight=1", "Invalid unit name"},
		{"set-loglevel INF", "Invalid log level 'INF'"},
		{"set-loglevel node debug", "Invalid log level 'debug'"},
		{"set-default node foo.service", "Error: Unit 'foo.service' is not a target unit"},
		{"metrics foo", "Unknown metrics command: foo"},
		{"status node a.service bad", "Invalid unit name"},
		{"list-units -o yaml", "Value 'yaml' of option --output is invalid"},
		{"list-units --filter", "option '--filter' requires an argument"},
		{"monitor node a.service,bad", "Invalid unit name"},
		{"monitor node a.service,,b.service", "Empty unit name"},
		{"enable node bad", "Invalid unit name"},
		{"disable node /etc/systemd/bad", "Invalid unit name"},
		{"is-enabled node bad", "Invalid unit name"},
		{"reset-failed node a.service bad", "Invalid unit name"},
		{"start node a.service --watch", "Unsupported option 'watch' for method 'start'"},
		{"disable node a.service --runtime", "Unsupported option 'runtime' for method 'disable'"},
		{"status -o json --filter=x", "Unsupported option 'filter' for method 'status'"},
		{"completion frobnicate", "Unknown completion request"},
		{"nope", "Method nope not found"},
		{"", "No command given"},
		{"--f", "option '--f' is ambiguous; possibilities: '--filter' '--force'"},
	} {
		r := run(t, nil, strings.Fields(c.args)...)
		if r.code != 1 || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.stderr)
		}
		if r.connected {
			t.Errorf("%q: connected to the bus", c.args)
		}
		if first := strings.SplitN(r.stderr, "\n", 2)[0]; !strings.Contains(first, c.stderr) {
			t.Errorf("%q: the first stderr line %q does not name the problem", c.args, first)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	h, help := run(t, nil, "-h"), run(t, nil, "--help")
	if h.code != 0 || h.stdout != help.stdout || !strings.Contains(h.stdout, "Usage") || h.connected {
		t.Fatalf("-h/--help: %+v", h)
	}
	if r := run(t, nil, "help"); r.code != 0 || r.stdout != h.stdout {
		t.Fatalf("help: %+v", r)
	}
	for _, c := range commands {
		a, b := run(t, nil, c.name, "-h"), run(t, nil, "--help", c.name)
		if a.code != 0 || a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "Usage: bluechictl "+c.name) {
			t.Errorf("%s -h: %+v", c.name, a)
		}
		if !strings.Contains(h.stdout, "\n  "+c.name+" ") {
			t.Errorf("global usage misses %s", c.name)
		}
	}
	if r := run(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "bluechictl version ") || r.connected {
		t.Fatalf("version: %+v", r)
	}
	if r := run(t, nil, "-Q"); r.code != 1 || r.stderr != "bluechictl: invalid option -- 'Q'\n" || r.stdout != h.stdout {
		t.Fatalf("-Q: %+v", r)
	}
	if r := run(t, nil, "--QWERTY"); r.code != 1 || r.stderr != "bluechictl: unrecognized option '--QWERTY'\n" {
		t.Fatalf("--QWERTY: %+v", r)
	}
	if r := run(t, nil, "status"); r.code != 1 || !strings.HasPrefix(r.stderr, "Failed to connect to bus: ") {
		t.Fatalf("no bus: %+v", r)
	}
}

func TestCompletionScript(t *testing.T) {
	r := run(t, nil, "completion", "bash")
	if r.code != 0 || r.connected || !strings.Contains(r.stdout, "complete -F _bluechictl bluechictl") {
		t.Fatalf("%+v", r)
	}
	for _, c := range commands {
		if !strings.Contains(r.stdout, c.name) {
			t.Errorf("script misses %s", c.name)
		}
	}
}
