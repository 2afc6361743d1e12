// SPDX-License-Identifier: Apache-2.0
package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bluechi-go/bluechi/internal/version"
)

// TestEveryBinaryVersion: every command in cmd/ prints "NAME version V"
// for -v and --version and exits 0, as CLIs do.
func TestEveryBinaryVersion(t *testing.T) {
	entries, err := os.ReadDir(binDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 5 {
		t.Fatalf("only %d binaries built in %s", len(entries), binDir)
	}
	for _, e := range entries {
		for _, flag := range []string{"-v", "--version"} {
			out, err := exec.Command(filepath.Join(binDir, e.Name()), flag).Output()
			if want := e.Name() + " version " + version.Version + "\n"; err != nil || string(out) != want {
				t.Errorf("%s %s: %q, %v; want %q and status 0", e.Name(), flag, out, err, want)
			}
		}
	}
}

// TestEveryBinaryHelpAndBadOption (upstream's bluechi-help-option-provided
// and bluechi-unsupported-option-error): every command in cmd/ prints the
// same usage for -h and --help and exits 0; an unknown short or long
// option gets getopt's diagnostic, the usage, and exit status 1.
func TestEveryBinaryHelpAndBadOption(t *testing.T) {
	entries, err := os.ReadDir(binDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		bin := filepath.Join(binDir, e.Name())
		var help []string
		for _, flag := range []string{"-h", "--help"} {
			out, err := exec.Command(bin, flag).Output()
			if err != nil || !strings.Contains(string(out), "Usage") {
				t.Errorf("%s %s: %v\n%s", e.Name(), flag, err, out)
			}
			help = append(help, string(out))
		}
		if help[0] != help[1] {
			t.Errorf("%s: -h and --help differ:\n%s\n---\n%s", e.Name(), help[0], help[1])
		}
		for flag, want := range map[string]string{"-Q": "invalid option -- 'Q'", "--QWERTY": "unrecognized option '--QWERTY'"} {
			out, err := exec.Command(bin, flag).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), want) || !strings.Contains(string(out), "Usage") {
				t.Errorf("%s %s: %v, want exit 1 with %q and the usage:\n%s", e.Name(), flag, err, want, out)
			}
		}
	}
}
