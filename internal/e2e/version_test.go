// SPDX-License-Identifier: Apache-2.0
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
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
