// SPDX-License-Identifier: Apache-2.0

package bluechictl

import (
	"strings"
	"testing"
)

// FuzzCommandLine runs bluechictl in-process on arbitrary command lines
// (arguments separated by NUL bytes) without a bus: option parsing
// (internal/cliopt), the command table (internal/ctl/cmdline) and every
// command's own checks of its arguments. It must never panic and must exit
// 0 or 1; a command line that reaches the bus has passed its checks
// silently, so the only complaint is the failed connection; a refused one
// says why on stderr.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"status", "-h", "help", "", "status\x00n1\x00a.service\x00-w", "list-units\x00--filter=sb-*\x00-o\x00json",
		"start\x00node\x00foo", "kill\x00node\x00a.service\x00--signal=32", "kill\x00n\x00a.service\x00--kill-whom=main\x00--signal=9",
		"set-property\x00n1\x00a.service\x00CPUWeight=50\x00MemoryMax=1.5G\x00--runtime",
		"set-property\x00n1\x00a.service\x00CPUQuota=250%\x00AllowedCPUs=0-3,6", "enable\x00n1\x00/etc/x/a.service\x00b.socket\x00-f\x00--no-reload",
		"monitor\x00*\x00a.service,*", "completion\x00bash", "--output\x00yaml\x00status", "-u\x00--\x00status\x00-x", "--fil\x00x",
		"metrics\x00enable", "log-level\x00n1\x00DEBUG", "is-enabled\x00n1\x00a.service", "daemon-reload\x00n1", "list-unit-files\x00n1",
		"--unknown", "-ufw", "status\x00-h", "freeze\x00n\x00a@.service", "get-default\x00n1", "set-default\x00n1\x00multi-user.target",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		r := run(t, nil, args...)
		if r.code != 0 && r.code != 1 {
			t.Fatalf("%q: exit %d", args, r.code)
		}
		if r.connected {
			if !strings.HasPrefix(r.stderr, "Failed to connect to bus: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("%q reached the bus after complaining:\n%s", args, r.stderr)
			}
			if r.code != 1 {
				t.Fatalf("%q: exit %d without a bus", args, r.code)
			}
			return
		}
		if r.code == 1 && strings.TrimSpace(r.stderr) == "" {
			t.Fatalf("%q refused without a word on stderr (stdout %q)", args, r.stdout)
		}
	})
}
