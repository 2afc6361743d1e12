// SPDX-License-Identifier: Apache-2.0
package bluechictl

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFishCompletion runs the fish script in a real fish (Debian package
// fish) against a stand-in bluechictl that answers the completion words.
func TestFishCompletion(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Fatalf("fish not found (install Debian package fish): %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "bluechictl.fish")
	if err := os.WriteFile(script, []byte(FishCompletion()), 0o644); err != nil {
		t.Fatal(err)
	}
	stub := "#!/bin/sh\n[ \"$1\" = --user ] && shift\ncase \"$2\" in nodes) printf 'n1\\nn2\\n';; units) printf \"a.service\\nb.target\\non-$3.service\\n\";; esac\n"
	if err := os.WriteFile(filepath.Join(dir, "bluechictl"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ line, want string }{
		{"bluechictl sta", "start status"},
		{"bluechictl start ", "n1 n2"},
		{"bluechictl -u start n1 ", "a.service b.target on-n1.service"},
		{"bluechictl start n1 a.service ", ""},
		{"bluechictl status n2 x.service ", "a.service b.target on-n2.service"},
		{"bluechictl set-default n1 ", "b.target"},
		{"bluechictl set-loglevel n1 ", "DEBUG ERROR INFO WARN"},
		{"bluechictl metrics ", "disable enable listen"},
		{"bluechictl -o ", "json table"},
		{"bluechictl list-units --filter x ", "n1 n2"},
		{"bluechictl --no-", "--no-reload"},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", script, c.line)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("fish %q: %v", c.line, err)
		}
		var words []string
		for l := range strings.Lines(string(out)) {
			w, _, _ := strings.Cut(strings.TrimSpace(l), "\t")
			words = append(words, w)
		}
		if got := strings.Join(words, " "); got != c.want {
			t.Errorf("%q: got %q, want %q", c.line, got, c.want)
		}
	}
}
